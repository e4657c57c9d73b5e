/* Unit tests of the retry and failover policy (src/stage/retry.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "retry.h"
#include "run.h"
#include "t2istage/plugin.h"

static struct config
cfg_with(int attempts, double backoff, double backoff_max)
{
	struct config c;

	memset(&c, 0, sizeof(c));
	c.retry_attempts = attempts;
	c.retry_backoff = backoff;
	c.retry_backoff_max = backoff_max;
	return c;
}

static void
test_backoff_full_jitter(void **state)
{
	struct config c = cfg_with(5, 1.0, 60.0);

	(void)state;
	/* The cap doubles per attempt: 1, 2, 4, 8 s ... */
	assert_int_equal(retry_backoff_ms(&c, 1, 0, 0.5), 500);
	assert_int_equal(retry_backoff_ms(&c, 2, 0, 0.5), 1000);
	assert_int_equal(retry_backoff_ms(&c, 3, 0, 0.5), 2000);
	/* Full jitter: anywhere from 0 to the cap. */
	assert_int_equal(retry_backoff_ms(&c, 3, 0, 0.0), 0);
	assert_true(retry_backoff_ms(&c, 3, 0, 0.999) < 4000);
	/* Capped by backoff_max, even at absurd attempt numbers. */
	assert_int_equal(retry_backoff_ms(&c, 10, 0, 0.5), 30000);
	assert_int_equal(retry_backoff_ms(&c, 1000, 0, 0.5), 30000);
	/* Retry-After is a floor. */
	assert_int_equal(retry_backoff_ms(&c, 1, 7000, 0.5), 7000);
	assert_int_equal(retry_backoff_ms(&c, 3, 100, 0.5), 2000);
}

static struct run *
run_with_chain(int n)
{
	struct run *r = run_new(1);

	assert_non_null(r);
	r->nchain = n;
	for (int k = 0; k < n; k++)
		r->chain[k] = k;
	return r;
}

static void
test_decide_retry_then_failover(void **state)
{
	struct config c = cfg_with(3, 1.0, 60.0);
	struct run *r = run_with_chain(2);
	struct retry_decision d;

	(void)state;
	r->items[0].attempts = 1;
	retry_decide(&c, r, 0, T2I_ERR_TRANSIENT, 0, 0.5, &d);
	assert_int_equal(d.action, RETRY_LATER);
	assert_int_equal(d.delay_ms, 500);
	r->items[0].attempts = 2;
	retry_decide(&c, r, 0, T2I_ERR_RATE_LIMITED, 9000, 0.5, &d);
	assert_int_equal(d.action, RETRY_LATER);
	assert_int_equal(d.delay_ms, 9000);
	/* Attempts used up: the next provider. */
	r->items[0].attempts = 3;
	retry_decide(&c, r, 0, T2I_ERR_TRANSIENT, 0, 0.5, &d);
	assert_int_equal(d.action, RETRY_FAILOVER);
	assert_int_equal(d.next_pos, 1);
	/* On the last provider: failed. */
	r->items[0].chain_pos = 1;
	retry_decide(&c, r, 0, T2I_ERR_TRANSIENT, 0, 0.5, &d);
	assert_int_equal(d.action, RETRY_FAIL);
	run_free(r);
}

static void
test_decide_by_class(void **state)
{
	struct config c = cfg_with(3, 1.0, 60.0);
	struct run *r = run_with_chain(3);
	struct retry_decision d;

	(void)state;
	r->items[0].attempts = 1;
	/* Rejected: never retried, never failed over. */
	retry_decide(&c, r, 0, T2I_ERR_REJECTED, 0, 0.5, &d);
	assert_int_equal(d.action, RETRY_FAIL);
	/* Auth and quota: straight to the next provider. */
	retry_decide(&c, r, 0, T2I_ERR_AUTH, 0, 0.5, &d);
	assert_int_equal(d.action, RETRY_FAILOVER);
	assert_int_equal(d.next_pos, 1);
	retry_decide(&c, r, 0, T2I_ERR_QUOTA, 0, 0.5, &d);
	assert_int_equal(d.action, RETRY_FAILOVER);
	/* A dead provider is skipped. */
	r->chain_dead[1] = true;
	retry_decide(&c, r, 0, T2I_ERR_AUTH, 0, 0.5, &d);
	assert_int_equal(d.next_pos, 2);
	assert_int_equal(retry_next_provider(r, 0), 2);
	assert_int_equal(retry_next_provider(r, 2), -1);
	/* A transient failure on a provider that died meanwhile moves on. */
	r->chain_dead[0] = true;
	retry_decide(&c, r, 0, T2I_ERR_TRANSIENT, 0, 0.5, &d);
	assert_int_equal(d.action, RETRY_FAILOVER);
	assert_int_equal(d.next_pos, 2);
	run_free(r);
}

static void
test_single_attempt(void **state)
{
	struct config c = cfg_with(1, 1.0, 60.0);
	struct run *r = run_with_chain(1);
	struct retry_decision d;

	(void)state;
	r->items[0].attempts = 1;
	retry_decide(&c, r, 0, T2I_ERR_TRANSIENT, 0, 0.5, &d);
	assert_int_equal(d.action, RETRY_FAIL);
	run_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_full_jitter),
		cmocka_unit_test(test_decide_retry_then_failover),
		cmocka_unit_test(test_decide_by_class),
		cmocka_unit_test(test_single_attempt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
