/* notify: the systemd notification protocol (sd_notify(3)), written once:
 * one datagram per state change to $NOTIFY_SOCKET.  Without the variable
 * every call does nothing, so the service runs the same outside systemd. */
#ifndef T2I_NOTIFY_H
#define T2I_NOTIFY_H

#include <stdint.h>

/* Reads NOTIFY_SOCKET and WATCHDOG_USEC, then clears them from the
 * environment so that no child inherits them. */
void notify_init(void);
void notify_ready(void);
void notify_reloading(void);	/* RELOADING=1 with MONOTONIC_USEC */
void notify_stopping(void);

/* WATCHDOG=1 when due; returns ms until the next ping (-1: no watchdog). */
int notify_watchdog(int64_t now_ms);

#endif
