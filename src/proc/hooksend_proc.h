/* hooksend_proc: the webhook sender process (see hooksend.h): requests
 * from the supervisor on stdin, answers on stdout, the POSTs through
 * post_curl.so. */
#ifndef T2I_HOOKSEND_PROC_H
#define T2I_HOOKSEND_PROC_H

/* The body of `t2istage __webhook-sender PARENT_PID`; returns the exit
 * status.  It exits when the supervisor closes its end (or dies). */
int hooksend_proc_main(const char *parent_pid);

#endif
