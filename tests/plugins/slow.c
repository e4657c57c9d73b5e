/*
 * slow: succeeds after a delay, to test concurrency limits (overlap in the
 * trace file), timeouts, graceful shutdown and reload while work is in
 * flight.  Sleeps option "delay_ms" (default 200), or N ms when the prompt
 * contains "slow:N".  A prompt containing "GATE" then also waits until the
 * file named by option "gate" exists (at most 10 minutes), so a test can
 * hold a run open for as long as it needs without guessing durations.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

T2I_PLUGIN("slow", "1.0", "test: succeeds after a delay");

/* Sleeps the whole time even when signals interrupt nanosleep(). */
static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static long delay_ms(const struct t2i_request *req)
{
	const char *p = strstr(req->prompt, "slow:");
	double d;

	if (p != NULL)
		return strtol(p + 5, NULL, 10);
	d = tp_option_num(req->options_json, "delay_ms", 200);
	return d > 0 && d < 1e9 ? (long)d : 0;
}

/* Waits for the gate file when the prompt asks for it. */
static void wait_gate(const struct t2i_request *req)
{
	char path[4096];

	if (!tp_has(req, "GATE") ||
	    tp_option_str(req->options_json, "gate", NULL, path, sizeof(path)) == NULL)
		return;
	for (int i = 0; i < 60000 && access(path, F_OK) != 0; i++)
		sleep_ms(10);
}

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	if (!tp_req_valid(req))
		return tp_ok(req, host, err);	/* reports the bad struct */
	tp_trace(req->options_json, "start", req);
	long ms = delay_ms(req);
	if (ms > 0)
		sleep_ms(ms);
	wait_gate(req);
	return tp_end(req, tp_ok(req, host, err));
}
