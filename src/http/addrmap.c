/* addrmap: counters per client address (see addrmap.h). */
#include "addrmap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool
addrkey_of(struct addrkey *k, const struct sockaddr *sa, size_t salen)
{
	memset(k, 0, sizeof(*k));
	if (sa != NULL && sa->sa_family == AF_INET && salen >= sizeof(struct sockaddr_in)) {
		memcpy(k->b, v4_mapped, sizeof(v4_mapped));
		memcpy(k->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return true;
	}
	if (sa != NULL && sa->sa_family == AF_INET6 && salen >= sizeof(struct sockaddr_in6)) {
		const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

		memcpy(k->b, a, memcmp(a, v4_mapped, sizeof(v4_mapped)) == 0 ? 16 : 8);
		return true;
	}
	return false;
}

void
addrkey_text(const struct addrkey *k, char out[ADDRKEY_TEXT])
{
	char a[INET6_ADDRSTRLEN];

	if (memcmp(k->b, v4_mapped, sizeof(v4_mapped)) == 0) {
		if (inet_ntop(AF_INET, k->b + 12, out, ADDRKEY_TEXT) == NULL)
			snprintf(out, ADDRKEY_TEXT, "?");
		return;
	}
	if (inet_ntop(AF_INET6, k->b, a, sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "?");
	snprintf(out, ADDRKEY_TEXT, "%s/64", a);
}

int
addrmap_init(struct addrmap *m, size_t max)
{
	m->e = calloc(max > 0 ? max : 1, sizeof(*m->e));
	m->n = 0;
	m->max = max;
	return m->e != NULL ? 0 : -1;
}

void
addrmap_free(struct addrmap *m)
{
	free(m->e);
	m->e = NULL;
	m->n = m->max = 0;
}

/* Where k is, or would go. */
static size_t
lower_bound(const struct addrmap *m, const struct addrkey *k, bool *found)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(m->e[mid].key.b, k->b, sizeof(k->b)) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < m->n && memcmp(m->e[lo].key.b, k->b, sizeof(k->b)) == 0;
	return lo;
}

struct addrmap_entry *
addrmap_get(struct addrmap *m, const struct addrkey *k)
{
	bool found;
	size_t i = lower_bound(m, k, &found);

	return found ? &m->e[i] : NULL;
}

struct addrmap_entry *
addrmap_add(struct addrmap *m, const struct addrkey *k)
{
	bool found;
	size_t i = lower_bound(m, k, &found);

	if (found)
		return &m->e[i];
	if (m->n == m->max)
		return NULL;
	memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof(*m->e));
	m->n++;
	memset(&m->e[i], 0, sizeof(m->e[i]));
	m->e[i].key = *k;
	return &m->e[i];
}

void
addrmap_del(struct addrmap *m, struct addrmap_entry *e)
{
	size_t i = (size_t)(e - m->e);

	memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof(*m->e));
	m->n--;
}
