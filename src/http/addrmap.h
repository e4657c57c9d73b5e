/* addrmap: counters kept per client address: the connections each address
 * holds (http_conn.c), the 401 answers each got (http_log.c).
 *
 * An IPv4 address, bare or mapped into IPv6 (a dual-stack socket), is its
 * own key; an IPv6 address is keyed by its /64, which one host holds whole
 * and can pick any address from.  A sorted array: at most a few thousand
 * entries, where a binary search and a memmove cost a microsecond. */
#ifndef T2I_ADDRMAP_H
#define T2I_ADDRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

struct addrkey {
	unsigned char b[16];	/* IPv4 as ::ffff:a.b.c.d; IPv6 with its last 8 bytes 0 */
};

/* "127.0.0.2", "2001:db8:1:2::/64": the longest is an IPv6 /64. */
#define ADDRKEY_TEXT 48

struct addrmap_entry {
	struct addrkey key;
	uint64_t n;		/* the user's counter */
	uint64_t held;		/* the user's second counter */
	int64_t since_ms;	/* the user's time */
};

struct addrmap {
	struct addrmap_entry *e;	/* sorted by key */
	size_t n, max;
};

/* The key of a peer address; false for a family other than IPv4 and IPv6
 * (the key is then all zeros: every such peer shares it). */
bool addrkey_of(struct addrkey *k, const struct sockaddr *sa, size_t salen);
void addrkey_text(const struct addrkey *k, char out[ADDRKEY_TEXT]);

/* A map of at most max entries.  -1 out of memory. */
int addrmap_init(struct addrmap *m, size_t max);
void addrmap_free(struct addrmap *m);
/* The entry of k, or NULL. */
struct addrmap_entry *addrmap_get(struct addrmap *m, const struct addrkey *k);
/* The entry of k, made (zeroed) when missing; NULL when the map is full.
 * Pointers to entries are good until the next add or del. */
struct addrmap_entry *addrmap_add(struct addrmap *m, const struct addrkey *k);
void addrmap_del(struct addrmap *m, struct addrmap_entry *e);

#endif
