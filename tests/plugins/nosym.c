/*
 * nosym: a correct t2i_plugin but no generate_image(), to prove the loader
 * refuses it with a message naming the file and the missing symbol.
 */
#include "common.h"

T2I_PLUGIN("nosym", "1.0", "test: lacks generate_image");
