/* A worker's messages to the supervisor (msg_decode_worker). */
#include <stdlib.h>

#include "fuzz.h"
#include "msg.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_worker m;
	char err[256];

	if (msg_decode_worker((const char *)data, size, &m, err, sizeof(err)) == 0)
		msg_worker_free(&m);
	else if (err[0] == '\0')
		abort();
	return 0;
}
