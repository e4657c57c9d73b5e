/* clock: the monotonic clock every timer and deadline is measured on.
 * CLOCK_MONOTONIC does not jump when the wall clock is set, so a deadline
 * computed before an NTP step still means what it meant. */
#ifndef T2I_CLOCK_H
#define T2I_CLOCK_H

#include <stdint.h>

/* Milliseconds since an arbitrary point, never going back. */
int64_t clock_now_ms(void);

/* The same clock in microseconds (systemd's MONOTONIC_USEC). */
int64_t clock_now_us(void);

/* Unix time in milliseconds, for what must mean the same after a restart
 * (the webhook outbox's schedule).  It can jump: never for a timeout. */
int64_t clock_wall_ms(void);

#endif
