/*
 * slow: succeeds after a delay, to test concurrency limits (overlap in the
 * trace file), timeouts, graceful shutdown and reload while work is in
 * flight.  Sleeps option "delay_ms" (default 200), or N ms when the prompt
 * contains "slow:N".  A prompt containing "GATE" then also waits until the
 * file named by option "gate" exists (at most 10 minutes), so a test can
 * hold a run open for as long as it needs without guessing durations.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

T2I_PLUGIN("slow", "1.0", "test: succeeds after a delay");

static long delay_ms(const struct t2i_request *req)
{
	const char *p = strstr(req->prompt, "slow:");
	double d;

	if (p != NULL)
		return strtol(p + 5, NULL, 10);
	d = tp_option_num(req->options_json, "delay_ms", 200);
	return d > 0 && d < 1e9 ? (long)d : 0;
}

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	if (!tp_req_valid(req))
		return tp_ok(req, host, err);	/* reports the bad struct */
	tp_trace(req->options_json, "start", req);
	long ms = delay_ms(req);
	if (ms > 0)
		tp_sleep_ms(ms);
	tp_gate(req);
	return tp_end(req, tp_ok(req, host, err));
}
