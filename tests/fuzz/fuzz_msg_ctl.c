/* The supervisor's answers to a worker: ack and stop (msg_decode_ctl). */
#include <stdlib.h>

#include "fuzz.h"
#include "msg.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_ctl c;
	char err[256];

	if (msg_decode_ctl((const char *)data, size, &c, err, sizeof(err)) == 0)
		msg_ctl_free(&c);
	else if (err[0] == '\0')
		abort();
	return 0;
}
