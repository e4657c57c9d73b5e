/* Unit tests for src/core/ipc.c: line framing over real pipes, the size cap, and
 * the non-blocking write queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"

struct fixture {
	int rfd, wfd;		/* a pipe; both ends non-blocking */
	struct ipc_reader r;
	struct ipc_writer w;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	int p[2];

	if (fx == NULL || pipe2(p, O_CLOEXEC) < 0)
		return -1;
	fx->rfd = p[0];
	fx->wfd = p[1];
	if (ipc_set_nonblock(fx->rfd) < 0 || ipc_set_nonblock(fx->wfd) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	if (fx->rfd >= 0)
		close(fx->rfd);
	if (fx->wfd >= 0)
		close(fx->wfd);
	ipc_reader_free(&fx->r);
	ipc_writer_free(&fx->w);
	free(fx);
	return 0;
}

static void
put(struct fixture *fx, const char *s)
{
	assert_int_equal(ipc_write_all(fx->wfd, s, strlen(s)), 0);
}

static void
close_writer(struct fixture *fx)
{
	close(fx->wfd);
	fx->wfd = -1;
}

static void
expect_line(struct fixture *fx, const char *want)
{
	char *line = NULL;
	size_t len = 0;

	assert_int_equal(ipc_next_line(&fx->r, &line, &len), IPC_LINE);
	assert_int_equal(len, strlen(want));
	assert_string_equal(line, want);
}

static void
expect_status(struct fixture *fx, int want)
{
	char *line = NULL;
	size_t len = 0;

	assert_int_equal(ipc_next_line(&fx->r, &line, &len), want);
	assert_null(line);
}

/* ---- reader ---- */

static void
test_nothing_yet(void **state)
{
	struct fixture *fx = *state;

	/* An empty reader has no line, and reading an empty pipe is EAGAIN. */
	expect_status(fx, IPC_AGAIN);
	assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_AGAIN);
	expect_status(fx, IPC_AGAIN);
	assert_false(fx->r.eof);
}

static void
test_several_lines_one_read(void **state)
{
	struct fixture *fx = *state;

	put(fx, "{\"type\":\"begin\"}\nsecond\nthird line\n");
	assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_AGAIN);
	expect_line(fx, "{\"type\":\"begin\"}");
	expect_line(fx, "second");
	expect_line(fx, "third line");
	expect_status(fx, IPC_AGAIN);

	/* More after the buffer was consumed: the reader compacts and goes on. */
	put(fx, "fourth\n");
	assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_AGAIN);
	expect_line(fx, "fourth");
	expect_status(fx, IPC_AGAIN);
}

static void
test_split_line(void **state)
{
	struct fixture *fx = *state;

	put(fx, "first\nhal");
	assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_AGAIN);
	expect_line(fx, "first");
	expect_status(fx, IPC_AGAIN);	/* "hal" is not a line yet */
	put(fx, "f of");
	assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_AGAIN);
	expect_status(fx, IPC_AGAIN);
	put(fx, " it\nnext\n");
	assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_AGAIN);
	expect_line(fx, "half of it");
	expect_line(fx, "next");
	expect_status(fx, IPC_AGAIN);

	/* Byte by byte. */
	for (const char *p = "abc\n"; *p != '\0'; p++) {
		expect_status(fx, IPC_AGAIN);
		assert_int_equal(write(fx->wfd, p, 1), 1);
		assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_AGAIN);
	}
	expect_line(fx, "abc");
}

static void
test_empty_lines(void **state)
{
	struct fixture *fx = *state;

	put(fx, "\n\nx\n\n");
	assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_AGAIN);
	expect_line(fx, "");
	expect_line(fx, "");
	expect_line(fx, "x");
	expect_line(fx, "");
	expect_status(fx, IPC_AGAIN);
}

static void
test_eof(void **state)
{
	struct fixture *fx = *state;

	put(fx, "last\n");
	close_writer(fx);
	assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_EOF);
	assert_true(fx->r.eof);
	expect_line(fx, "last");
	/* At EOF with nothing left the caller sees AGAIN and checks r.eof. */
	expect_status(fx, IPC_AGAIN);
	assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_EOF);
}

static void
test_partial_line_at_eof(void **state)
{
	struct fixture *fx = *state;

	put(fx, "whole\n{\"type\":\"res");
	close_writer(fx);
	assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_EOF);
	expect_line(fx, "whole");
	/* A message must end with '\n': a cut one is refused. */
	expect_status(fx, IPC_TOOLONG);
	expect_status(fx, IPC_TOOLONG);
}

/* Writes n bytes of 'x' then tail, reading as it goes (the pipe holds far
 * less than IPC_LINE_MAX).  Returns the first status of ipc_next_line other
 * than IPC_AGAIN, or IPC_AGAIN when everything was written and read. */
static int
feed_long(struct fixture *fx, size_t n, const char *tail, char **line, size_t *len)
{
	char chunk[8192];
	size_t sent = 0, tlen = strlen(tail);
	int rc;

	memset(chunk, 'x', sizeof(chunk));
	while (sent < n + tlen) {
		const char *src;
		size_t want;
		ssize_t w;

		if (sent < n) {
			src = chunk;
			want = n - sent < sizeof(chunk) ? n - sent : sizeof(chunk);
		} else {
			src = tail + (sent - n);
			want = n + tlen - sent;
		}
		w = write(fx->wfd, src, want);
		if (w < 0) {
			assert_int_equal(errno, EAGAIN);
			w = 0;
		}
		sent += (size_t)w;
		assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_AGAIN);
		if ((rc = ipc_next_line(&fx->r, line, len)) != IPC_AGAIN)
			return rc;
		/* The buffer never grows without bound. */
		assert_true(fx->r.cap <= (fx->r.max > 0 ? fx->r.max : IPC_LINE_MAX) + 8192);
	}
	return IPC_AGAIN;
}

static void
test_longest_line(void **state)
{
	struct fixture *fx = *state;
	char *line = NULL;
	size_t len = 0;

	/* Exactly IPC_LINE_MAX bytes is still a line. */
	assert_int_equal(feed_long(fx, IPC_LINE_MAX, "\n", &line, &len), IPC_LINE);
	assert_int_equal(len, IPC_LINE_MAX);
	assert_int_equal(strlen(line), IPC_LINE_MAX);
	assert_int_equal(line[0], 'x');
	assert_int_equal(line[IPC_LINE_MAX - 1], 'x');
	/* The reader is usable after a long line. */
	expect_status(fx, IPC_AGAIN);
	put(fx, "next\n");
	assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_AGAIN);
	expect_line(fx, "next");
	expect_status(fx, IPC_AGAIN);
}

static void
test_line_too_long_with_newline(void **state)
{
	struct fixture *fx = *state;
	char *line = NULL;
	size_t len = 0;
	int rc = feed_long(fx, IPC_LINE_MAX + 1, "\n", &line, &len);

	if (rc == IPC_AGAIN) {	/* all of it fitted: the newline decides */
		assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_AGAIN);
		rc = ipc_next_line(&fx->r, &line, &len);
	}
	assert_int_equal(rc, IPC_TOOLONG);
}

static void
test_line_too_long_endless(void **state)
{
	struct fixture *fx = *state;
	char *line = NULL;
	size_t len = 0;

	/* A worker writing forever without a newline is caught once it is past
	 * the cap, without the reader buffering it all. */
	assert_int_equal(feed_long(fx, 4 * IPC_LINE_MAX, "", &line, &len), IPC_TOOLONG);
	assert_true(fx->r.len <= IPC_LINE_MAX + 8192);
	/* It stays refused. */
	expect_status(fx, IPC_TOOLONG);
}

/* ---- writer ---- */

/* Reads whatever the pipe holds, appending to buf at *n. */
static void
drain(struct fixture *fx, char *buf, size_t cap, size_t *n)
{
	for (;;) {
		ssize_t r = read(fx->rfd, buf + *n, cap - *n);

		if (r < 0) {
			assert_int_equal(errno, EAGAIN);
			return;
		}
		assert_true(r > 0);
		*n += (size_t)r;
	}
}

static void
test_writer_full_pipe(void **state)
{
	struct fixture *fx = *state;
	size_t total = 1024 * 1024, n = 0;
	char *data = malloc(total), *got = malloc(total + 1);
	int rounds = 0, rc;

	assert_non_null(data);
	assert_non_null(got);
	for (size_t i = 0; i < total; i++)
		data[i] = (char)('a' + (i * 7 + i / 4096) % 26);
	assert_false(ipc_pending(&fx->w));
	/* Queued in pieces, as messages are. */
	assert_int_equal(ipc_queue(&fx->w, data, total / 2), 0);
	assert_int_equal(ipc_queue(&fx->w, data + total / 2, total - total / 2), 0);
	assert_true(ipc_pending(&fx->w));

	/* Far more than a pipe holds: the flush stops at EAGAIN. */
	assert_int_equal(ipc_flush(&fx->w, fx->wfd), 0);
	assert_true(ipc_pending(&fx->w));
	assert_true(fx->w.off > 0 && fx->w.off < total);
	/* Still full: nothing moves, still 0. */
	assert_int_equal(ipc_flush(&fx->w, fx->wfd), 0);

	/* The reader drains; the writer goes on where it stopped. */
	do {
		drain(fx, got, total + 1, &n);
		rc = ipc_flush(&fx->w, fx->wfd);
		assert_true(rc == 0 || rc == 1);
		assert_true(++rounds < 10000);
	} while (rc == 0);
	assert_false(ipc_pending(&fx->w));
	drain(fx, got, total + 1, &n);
	assert_int_equal(n, total);
	assert_memory_equal(got, data, total);

	/* Flushing an empty queue is done at once; a new message after a
	 * complete flush starts the buffer over. */
	assert_int_equal(ipc_flush(&fx->w, fx->wfd), 1);
	assert_int_equal(ipc_queue(&fx->w, "again\n", 6), 0);
	assert_int_equal(fx->w.len, 6);
	assert_int_equal(fx->w.off, 0);
	assert_int_equal(ipc_flush(&fx->w, fx->wfd), 1);
	n = 0;
	drain(fx, got, total + 1, &n);
	assert_int_equal(n, 6);
	assert_memory_equal(got, "again\n", 6);

	free(data);
	free(got);
}

static void
test_writer_epipe(void **state)
{
	struct fixture *fx = *state;
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);

	close(fx->rfd);
	fx->rfd = -1;
	assert_int_equal(ipc_queue(&fx->w, "hello\n", 6), 0);
	errno = 0;
	assert_int_equal(ipc_flush(&fx->w, fx->wfd), -1);
	assert_int_equal(errno, EPIPE);
	assert_true(ipc_pending(&fx->w));
	assert_int_equal(ipc_write_all(fx->wfd, "x", 1), -1);
	signal(SIGPIPE, old);
}

/* A reader's own cap: the worker reads its batch, which may be longer
 * than any message, through the reader that then reads acks and stops. */
static void
test_reader_max(void **state)
{
	struct fixture *fx = *state;
	char *line = NULL;
	size_t len = 0;
	int rc;

	fx->r.max = 3 * IPC_LINE_MAX;
	rc = feed_long(fx, 2 * IPC_LINE_MAX + 5, "\n", &line, &len);
	if (rc == IPC_AGAIN)
		rc = ipc_next_line(&fx->r, &line, &len);
	assert_int_equal(rc, IPC_LINE);
	assert_int_equal(len, 2 * IPC_LINE_MAX + 5);
	assert_int_equal(line[len - 1], 'x');
	/* Back to the default for what follows. */
	fx->r.max = 0;
	put(fx, "ack\n");
	assert_int_equal(ipc_read(&fx->r, fx->rfd), IPC_AGAIN);
	expect_line(fx, "ack");

	/* A smaller cap refuses what the default would take. */
	fx->r.max = 1000;
	rc = feed_long(fx, 1001, "\n", &line, &len);
	if (rc == IPC_AGAIN)
		rc = ipc_next_line(&fx->r, &line, &len);
	assert_int_equal(rc, IPC_TOOLONG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_nothing_yet, setup, teardown),
		cmocka_unit_test_setup_teardown(test_several_lines_one_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_line_at_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_longest_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_too_long_with_newline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_too_long_endless, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_full_pipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_epipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_max, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
