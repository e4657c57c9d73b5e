/*
 * Helpers shared by the test plugins (tests/plugins/NAME.c).
 *
 * Test plugins misbehave on purpose (crash, hang, exit, lie on the message
 * pipe) so the system tests can prove a worker's failure stays contained.
 * Each behaviour is triggered by a substring of the prompt, so one project
 * can mix well-behaved and failing storyboards.
 */
#ifndef T2I_TESTS_PLUGINS_COMMON_H
#define T2I_TESTS_PLUGINS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "t2istage/plugin.h"

/* A small real PNG of w x h in one colour taken from seed's low 24 bits, in
 * malloc'ed memory the caller frees.  0, or -1 when out of memory. */
int tp_png(int w, int h, uint32_t seed, unsigned char **out, size_t *len);

/* FNV-1a over a string: a stable seed per prompt. */
uint32_t tp_hash(const char *s);

/* Fills *e (class, HTTP status, formatted message); retry_after_ms is 0. */
void tp_err(struct t2i_error *e, int cls, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A number from the options JSON object; true/false count as 1/0.  dflt
 * when the text does not parse, the key is absent or of another type. */
double tp_option_num(const char *options_json, const char *key, double dflt);

/* A string option copied into buf (cut to size); dflt when absent. */
const char *tp_option_str(const char *options_json, const char *key, const char *dflt,
			  char *buf, size_t size);

/* With option "trace": "/path", appends "EVENT PID STORYBOARD_ID MONOTONIC_NS"
 * to that file in one O_APPEND write, so lines from concurrent workers never
 * interleave and tests can measure overlap. */
void tp_trace(const char *options_json, const char *event, const struct t2i_request *req);

/* Whether req is large enough for every member the test plugins read. */
int tp_req_valid(const struct t2i_request *req);

/* req->options_json, or NULL when req is not valid. */
const char *tp_opts(const struct t2i_request *req);

/* The well-behaved path: adds option "images" (default 1) distinct PNGs of
 * (width/64) x (height/64), the first seeded by tp_hash(prompt).  0, or -1
 * with *err filled. */
int tp_ok(const struct t2i_request *req, const struct t2i_host *host, struct t2i_error *err);

/* Traces "end" and returns rc: every normal return goes through it. */
int tp_end(const struct t2i_request *req, int rc);

/* Misbehaviours shared by several plugins; none of them returns. */
_Noreturn void tp_crash(void);
_Noreturn void tp_hang(void);

/* Sleeps ms milliseconds, the whole time even when signals interrupt. */
void tp_sleep_ms(long ms);

/* A prompt containing "GATE" waits until the file named by option "gate"
 * exists (at most 10 minutes), so that a test can hold a storyboard for as
 * long as it needs without guessing durations; one containing "GATE2" then
 * also waits for that name with ".2" appended. */
void tp_gate(const struct t2i_request *req);

/* Whether the prompt contains the trigger word. */
int tp_has(const struct t2i_request *req, const char *trigger);

#endif
