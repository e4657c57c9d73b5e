/* notify: sd_notify without libsystemd (whose dependencies would cost
 * every start of the binary), for Type=notify units. */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

static struct sockaddr_un notify_addr;
static socklen_t notify_len;
static int64_t watchdog_ms;	/* ping interval: half of WATCHDOG_USEC */
static int64_t watchdog_next;

void
notify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *wd = getenv("WATCHDOG_USEC");
	size_t n;

	if (path != NULL && (path[0] == '/' || path[0] == '@') &&
	    (n = strlen(path)) < sizeof(notify_addr.sun_path)) {
		notify_addr.sun_family = AF_UNIX;
		memcpy(notify_addr.sun_path, path, n);
		if (path[0] == '@')
			notify_addr.sun_path[0] = '\0';	/* abstract namespace */
		notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	}
	if (wd != NULL && strtoll(wd, NULL, 10) > 0)
		watchdog_ms = strtoll(wd, NULL, 10) / 2000;
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

static void
notify_send(const char *msg)
{
	int fd;

	if (notify_len == 0)
		return;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&notify_addr,
		   notify_len) < 0)
		log_warn("sd_notify");
	close(fd);
}

void
notify_ready(void)
{
	notify_send("READY=1\nSTATUS=serving");
}

void
notify_reloading(void)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%lld", (long long)clock_now_us());
	notify_send(msg);
}

void
notify_stopping(void)
{
	notify_send("STOPPING=1\nSTATUS=stopping");
}

int
notify_watchdog(int64_t now_ms)
{
	if (watchdog_ms <= 0)
		return -1;
	if (now_ms >= watchdog_next) {
		notify_send("WATCHDOG=1");
		watchdog_next = now_ms + watchdog_ms;
	}
	return (int)(watchdog_next - now_ms);
}
