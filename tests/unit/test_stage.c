/* Unit tests for the pure parts of the stage: stage_outcome() and
 * stage_idempotency_key() (src/stage/stage.c) and the in-memory run of
 * src/stage/run.c (ring queue, duplicate grouping, completion). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hash.h"
#include "run.h"
#include "stage.h"

/* ---- stage_outcome ---- */

static void
test_outcome(void **state)
{
	(void)state;
	assert_string_equal(stage_outcome(1, 1), "completed");
	assert_string_equal(stage_outcome(5, 5), "completed");
	assert_string_equal(stage_outcome(0, 1), "failed");
	assert_string_equal(stage_outcome(0, 5), "failed");
	assert_string_equal(stage_outcome(1, 5), "partial");
	assert_string_equal(stage_outcome(4, 5), "partial");
	assert_string_equal(stage_outcome(1, 2), "partial");
	assert_string_equal(stage_outcome(99999, 100000), "partial");
	assert_string_equal(stage_outcome(100000, 100000), "completed");

	/* 0 of 0 is "completed": nothing was asked that did not succeed.  A run
	 * never has 0 items (stage_start refuses a run without storyboards), and
	 * a project's stage is only computed after a run over at least one of
	 * its storyboards, so this is the vacuous case, decided here once: it is
	 * not "failed", which would make an empty project look broken. */
	assert_string_equal(stage_outcome(0, 0), "completed");
}

/* ---- stage_idempotency_key ---- */

static bool
lower_uuid_v8(const char *s)
{
	if (strlen(s) != 36 || s[14] != '8' || strchr("89ab", s[19]) == NULL)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : strchr("0123456789abcdef", s[i]) == NULL)
			return false;
	}
	return true;
}

static void
test_idempotency_key(void **state)
{
	struct config_provider provs[2] = { { .name = "dashscope" }, { .name = "comfy" } };
	struct config cfg = { .providers = provs, .nproviders = 2 };
	struct run *r = run_new(2);
	char a[37], b[37], c[37];
	char want[37];
	const char *text;

	(void)state;
	r->chain[0] = 0;
	r->chain[1] = 1;
	r->nchain = 2;
	snprintf(r->items[0].image_id, 37, "0190f3a2-0000-7000-8000-000000000001");
	snprintf(r->items[1].image_id, 37, "0190f3a2-0000-7000-8000-000000000002");
	memset(r->items[0].cache_key, 'a', 64);
	memcpy(r->items[1].cache_key, r->items[0].cache_key, sizeof(r->items[0].cache_key));

	stage_idempotency_key(&cfg, r, 0, a);
	assert_true(lower_uuid_v8(a));
	/* Derived from the image row, the provider's name and the parameters,
	 * nothing else: the same on every attempt and after a restart. */
	text = "0190f3a2-0000-7000-8000-000000000001\ndashscope\n"
	       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	hash_uuid(text, strlen(text), want);
	assert_string_equal(a, want);
	r->items[0].attempts = 2;
	r->items[0].state = ITEM_RUNNING;
	stage_idempotency_key(&cfg, r, 0, b);
	assert_string_equal(a, b);
	/* Another image row (another run, or another storyboard) ... */
	stage_idempotency_key(&cfg, r, 1, b);
	assert_true(lower_uuid_v8(b));
	assert_string_not_equal(a, b);
	/* ... other parameters, or another provider, give another key. */
	r->items[0].cache_key[0] = 'b';
	stage_idempotency_key(&cfg, r, 0, c);
	assert_string_not_equal(a, c);
	r->items[0].cache_key[0] = 'a';
	r->items[0].chain_pos = 1;
	stage_idempotency_key(&cfg, r, 0, c);
	assert_string_not_equal(a, c);
	run_free(r);

	/* hash_uuid: SHA-256("abc") = ba7816bf 8f01 cfea 4141 40de5dae2223...,
	 * with the version and variant bits set. */
	hash_uuid("abc", 3, c);
	assert_string_equal(c, "ba7816bf-8f01-8fea-8141-40de5dae2223");
}

/* ---- the run queue ---- */

static void
assert_pops(struct run *r, const int *want, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_int_equal(run_queue_pop(r), want[i]);
	assert_int_equal(r->qlen, 0);
	assert_int_equal(run_queue_pop(r), -1);
}

static void
test_run_new(void **state)
{
	struct run *r = run_new(4);

	(void)state;
	assert_non_null(r);
	assert_int_equal(r->nitems, 4);
	assert_int_equal(r->qlen, 0);
	assert_non_null(r->image_ids);
	assert_int_equal(json_array_size(r->image_ids), 0);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(r->items[i].leader, -1);
		assert_int_equal(r->items[i].next_follower, -1);
		assert_int_equal(r->items[i].state, ITEM_QUEUED);
	}
	assert_int_equal(run_queue_pop(r), -1);
	/* Items own their strings. */
	r->items[0].prompt = strdup("p");
	r->items[3].negative_prompt = strdup("n");
	r->items[2].options_json = strdup("{}");
	run_free(r);
	run_free(NULL);

	r = run_new(0);	/* allowed; holds nothing */
	assert_non_null(r);
	assert_int_equal(r->nitems, 0);
	assert_int_equal(run_queue_pop(r), -1);
	assert_true(run_complete(r));
	run_group_duplicates(r);
	run_free(r);
}

static void
test_queue_fifo(void **state)
{
	struct run *r = run_new(3);
	static const int want[] = { 0, 1, 2 };

	(void)state;
	for (int i = 0; i < 3; i++) {
		r->items[i].state = ITEM_FAILED;
		run_queue_push_back(r, i);
		assert_int_equal(r->items[i].state, ITEM_QUEUED);
	}
	assert_int_equal(r->qlen, 3);
	assert_pops(r, want, 3);
	run_free(r);
}

static void
test_queue_wrap(void **state)
{
	struct run *r = run_new(3);

	(void)state;
	run_queue_push_back(r, 0);
	run_queue_push_back(r, 1);
	run_queue_push_back(r, 2);
	assert_int_equal(run_queue_pop(r), 0);
	assert_int_equal(run_queue_pop(r), 1);
	/* Back at capacity again across the end of the ring. */
	run_queue_push_back(r, 0);
	run_queue_push_back(r, 1);
	assert_int_equal(r->qlen, 3);
	{
		static const int want[] = { 2, 0, 1 };

		assert_pops(r, want, 3);
	}

	/* Many laps: head and tail keep wrapping. */
	for (int lap = 0; lap < 10; lap++) {
		run_queue_push_back(r, lap % 3);
		run_queue_push_back(r, (lap + 1) % 3);
		assert_int_equal(run_queue_pop(r), lap % 3);
		assert_int_equal(run_queue_pop(r), (lap + 1) % 3);
		assert_int_equal(r->qlen, 0);
		assert_true(r->qhead < 3);
	}
	run_free(r);
}

static void
test_queue_push_front(void **state)
{
	struct run *r = run_new(4);

	(void)state;
	/* At head 0, a push to the front wraps to the last slot. */
	assert_int_equal(r->qhead, 0);
	run_queue_push_back(r, 1);
	run_queue_push_front(r, 0);
	assert_int_equal(r->qhead, 3);
	run_queue_push_back(r, 2);
	run_queue_push_back(r, 3);
	{
		static const int want[] = { 0, 1, 2, 3 };

		assert_pops(r, want, 4);
	}

	/* A crashed worker's items go back to the front in their order, ahead
	 * of the ones still waiting (scheduler.c pushes them last to first). */
	run_queue_push_back(r, 3);
	run_queue_push_back(r, 2);
	r->items[0].state = ITEM_DISPATCHED;
	r->items[1].state = ITEM_RUNNING;
	run_queue_push_front(r, 1);
	run_queue_push_front(r, 0);
	assert_int_equal(r->items[0].state, ITEM_QUEUED);
	assert_int_equal(r->items[1].state, ITEM_QUEUED);
	assert_int_equal(r->qlen, 4);
	{
		static const int want[] = { 0, 1, 3, 2 };

		assert_pops(r, want, 4);
	}

	/* Front only, from an arbitrary head. */
	run_queue_push_back(r, 0);
	assert_int_equal(run_queue_pop(r), 0);
	for (int i = 0; i < 4; i++)
		run_queue_push_front(r, i);
	{
		static const int want[] = { 3, 2, 1, 0 };

		assert_pops(r, want, 4);
	}
	run_free(r);
}

/* ---- duplicates ---- */

static struct run *
run_with_keys(const char *const *keys, size_t n)
{
	struct run *r = run_new(n);

	assert_non_null(r);
	for (size_t i = 0; i < n; i++)
		snprintf(r->items[i].cache_key, sizeof(r->items[i].cache_key), "%s", keys[i]);
	return r;
}

/* The chain hanging off leader, as indices; -1 terminated in out. */
static void
assert_chain(struct run *r, int leader, const int *want, size_t n)
{
	int i = r->items[leader].next_follower;

	for (size_t k = 0; k < n; k++) {
		assert_int_equal(i, want[k]);
		assert_int_equal(r->items[i].leader, leader);
		assert_int_equal(r->items[i].state, ITEM_WAITING);
		i = r->items[i].next_follower;
	}
	assert_int_equal(i, -1);
}

static void
assert_alone(struct run *r, int i)
{
	assert_int_equal(r->items[i].leader, -1);
	assert_int_equal(r->items[i].next_follower, -1);
	assert_int_equal(r->items[i].state, ITEM_QUEUED);
}

static void
test_group_duplicates(void **state)
{
	/* Keys are sha256 hex in real runs; any string works for grouping. */
	static const char *const keys[] = { "k-b", "k-a", "k-b", "k-c", "k-a", "k-b", "k-d" };
	struct run *r = run_with_keys(keys, 7);

	(void)state;
	run_group_duplicates(r);

	/* The lowest index of each key leads; its followers chain in index
	 * order, whatever the sort order of the keys. */
	assert_int_equal(r->items[0].leader, -1);
	assert_int_equal(r->items[0].state, ITEM_QUEUED);
	{
		static const int want[] = { 2, 5 };

		assert_chain(r, 0, want, 2);
	}
	assert_int_equal(r->items[1].leader, -1);
	assert_int_equal(r->items[1].state, ITEM_QUEUED);
	{
		static const int want[] = { 4 };

		assert_chain(r, 1, want, 1);
	}
	/* Distinct keys are untouched. */
	assert_alone(r, 3);
	assert_alone(r, 6);

	/* Taking the followers detaches them from the leader; the chain itself
	 * stays walkable from the first follower. */
	assert_int_equal(run_take_followers(r, 0), 2);
	assert_int_equal(r->items[0].next_follower, -1);
	assert_int_equal(r->items[2].next_follower, 5);
	assert_int_equal(r->items[5].next_follower, -1);
	assert_int_equal(run_take_followers(r, 0), -1);	/* twice: nothing */
	assert_int_equal(run_take_followers(r, 1), 4);
	assert_int_equal(run_take_followers(r, 3), -1);	/* no followers */
	run_free(r);
}

static void
test_group_all_same(void **state)
{
	static const char *const keys[] = { "same", "same", "same", "same", "same" };
	struct run *r = run_with_keys(keys, 5);
	static const int want[] = { 1, 2, 3, 4 };

	(void)state;
	run_group_duplicates(r);
	assert_int_equal(r->items[0].leader, -1);
	assert_chain(r, 0, want, 4);
	run_free(r);
}

static void
test_group_all_distinct(void **state)
{
	static const char *const keys[] = { "e", "d", "c", "b", "a" };
	struct run *r = run_with_keys(keys, 5);

	(void)state;
	run_group_duplicates(r);
	for (int i = 0; i < 5; i++)
		assert_alone(r, i);
	run_free(r);

	r = run_with_keys(keys, 1);
	run_group_duplicates(r);
	assert_alone(r, 0);
	run_free(r);
}

static void
test_group_empty_keys(void **state)
{
	/* An empty key is what cache_key() leaves when it ran out of memory:
	 * such items must not be served from one another. */
	static const char *const keys[] = { "", "x", "", "x", "" };
	struct run *r = run_with_keys(keys, 5);
	static const int want[] = { 3 };

	(void)state;
	run_group_duplicates(r);
	assert_alone(r, 0);
	assert_alone(r, 2);
	assert_alone(r, 4);
	assert_chain(r, 1, want, 1);
	run_free(r);
}

/* ---- completion ---- */

static void
test_complete(void **state)
{
	struct run *r = run_new(3);

	(void)state;
	assert_false(run_complete(r));
	r->succeeded = 2;
	assert_false(run_complete(r));
	r->failed = 1;
	assert_true(run_complete(r));
	r->succeeded = 0;
	r->failed = 3;
	assert_true(run_complete(r));
	r->failed = 2;
	assert_false(run_complete(r));
	run_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outcome),
		cmocka_unit_test(test_idempotency_key),
		cmocka_unit_test(test_run_new),
		cmocka_unit_test(test_queue_fifo),
		cmocka_unit_test(test_queue_wrap),
		cmocka_unit_test(test_queue_push_front),
		cmocka_unit_test(test_group_duplicates),
		cmocka_unit_test(test_group_all_same),
		cmocka_unit_test(test_group_all_distinct),
		cmocka_unit_test(test_group_empty_keys),
		cmocka_unit_test(test_complete),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
