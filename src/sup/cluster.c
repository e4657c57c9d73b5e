/* cluster: this instance among several on one PostgreSQL (see cluster.h). */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "owner.h"
#include "project.h"
#include "store.h"

#define MARKER_DIR ".t2istage-instances"	/* in storage.dir */

struct cluster {
	const struct config *cfg;
	struct store *st;
	struct store_listen *listen;
	char name[72];
	char host[256];
	char marker[37];	/* the token of our marker file */
	char *providers;	/* sorted names, comma-separated */
	int64_t lease_ms, rescue_ms;
	int64_t next_renew, next_rescue; /* monotonic */
	bool lost;		/* a transaction failed: release our leases */
};

const char *
cluster_name(const struct cluster *cl)
{
	return cl->name;
}

int64_t
cluster_lease_ms(const struct cluster *cl)
{
	return cl->lease_ms;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The configured providers' names, sorted: what instances must agree on. */
static char *
providers_of(const struct config *cfg)
{
	const char **names = calloc(cfg->nproviders + 1, sizeof(*names));
	size_t len = 1;
	char *out;

	if (names == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->nproviders; i++) {
		names[i] = cfg->providers[i].name;
		len += strlen(names[i]) + 1;
	}
	qsort(names, cfg->nproviders, sizeof(*names), by_name);
	if ((out = calloc(1, len)) != NULL)
		for (size_t i = 0; i < cfg->nproviders; i++)
			strcat(strcat(out, i > 0 ? "," : ""), names[i]);
	free(names);
	return out;
}

static void
marker_path(const struct config *cfg, const char *name, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/" MARKER_DIR "/%s", cfg->storage_dir, name);
}

/* storage.dir/.t2istage-instances/NAME holding a new token: another
 * instance that reads the same token there shares our storage.dir. */
static int
write_marker(struct cluster *cl, char *err, size_t errlen)
{
	char dir[4096], path[4200], tmp[4300];
	int fd;

	project_uuid(cl->marker);
	snprintf(dir, sizeof(dir), "%s/" MARKER_DIR, cl->cfg->storage_dir);
	marker_path(cl->cfg, cl->name, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	if (owner_mkdirs(dir, err, errlen) < 0)
		return -1;
	if ((fd = owner_create(tmp, O_WRONLY | O_TRUNC, 0644, err, errlen)) < 0 && errno != EEXIST)
		return -1;
	if (fd < 0 && (fd = open(tmp, O_WRONLY | O_TRUNC | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "storage.dir: cannot write %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (write(fd, cl->marker, strlen(cl->marker)) != (ssize_t)strlen(cl->marker) ||
	    fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
		snprintf(err, errlen, "storage.dir: cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* The token in another instance's marker, as our storage.dir has it. */
static bool
marker_seen(const struct config *cfg, const char *name, const char *token)
{
	char path[4200], buf[64] = "";
	FILE *f;

	marker_path(cfg, name, path, sizeof(path));
	if ((f = fopen(path, "re")) == NULL)
		return false;
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	return strcmp(buf, token) == 0;
}

static bool
pid_gone(long pid)
{
	return pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* One other instance row: refused, or (dead on this host) released. */
static int
check_other(struct cluster *cl, json_t *in, int64_t now, char *err, size_t errlen)
{
	const char *name = json_string_value(json_object_get(in, "name"));
	const char *host = json_string_value(json_object_get(in, "host"));
	long pid = (long)json_integer_value(json_object_get(in, "pid"));
	bool alive = json_integer_value(json_object_get(in, "heartbeat_ms")) + cl->lease_ms >= now;
	bool here = strcmp(host, cl->host) == 0;

	if (here && pid_gone(pid)) {
		/* kill -9 and a restart: nobody renews its leases, and nobody
		 * need wait for them to expire. */
		int n = store_release_owner(cl->st, name);

		if (n > 0)
			log_info("cluster: instance %s (pid %ld) is gone: %d generations released",
				 name, pid, n);
		return n < 0 ? -1 : store_instance_remove(cl->st, name);
	}
	if (!alive)
		return 0;
	if (strcmp(name, cl->name) == 0) {
		snprintf(err, errlen, "cluster.name: instance %s is alive on host %s (pid %ld): "
			 "each instance needs a name of its own", name, host, pid);
		return -1;
	}
	if (strcmp(json_string_value(json_object_get(in, "providers")), cl->providers) != 0) {
		snprintf(err, errlen, "providers: this instance's (%s) differ from those of "
			 "instance %s on host %s (%s): instances on one database need the same "
			 "providers", cl->providers, name, host,
			 json_string_value(json_object_get(in, "providers")));
		return -1;
	}
	if (!marker_seen(cl->cfg, name, json_string_value(json_object_get(in, "storage_marker")))) {
		snprintf(err, errlen, "storage.dir: %s is not the storage.dir of instance %s on "
			 "host %s (its marker %s/%s is not there): every instance on one database "
			 "needs one shared storage.dir", cl->cfg->storage_dir, name, host,
			 MARKER_DIR, name);
		return -1;
	}
	return 0;
}

static int
join(struct cluster *cl, char *err, size_t errlen)
{
	int64_t now = clock_wall_ms();
	struct store_instance me = { cl->name, cl->host, (long)getpid(), cl->providers,
				     cl->marker };
	json_t *all, *in;
	size_t i;
	int rc = 0;

	if (store_begin(cl->st) < 0 || (all = store_instances(cl->st)) == NULL) {
		snprintf(err, errlen, "database (%s): %s", cl->cfg->database_display,
			 store_errmsg(cl->st));
		store_rollback(cl->st);
		return -1;
	}
	json_array_foreach(all, i, in)
		if (rc == 0 && check_other(cl, in, now, err, errlen) < 0)
			rc = -1;
	json_decref(all);
	if (rc == 0 && (store_instance_upsert(cl->st, &me, now) < 0 || store_commit(cl->st) < 0)) {
		snprintf(err, errlen, "database (%s): %s", cl->cfg->database_display,
			 store_errmsg(cl->st));
		rc = -1;
	}
	if (rc < 0)
		store_rollback(cl->st);
	return rc;
}

struct cluster *
cluster_new(const struct config *cfg, struct store *st, char *err, size_t errlen)
{
	struct cluster *cl = calloc(1, sizeof(*cl));

	if (cl == NULL || (cl->providers = providers_of(cfg)) == NULL) {
		snprintf(err, errlen, "out of memory");
		free(cl);
		return NULL;
	}
	cl->cfg = cfg;
	cl->st = st;
	snprintf(cl->name, sizeof(cl->name), "%s", cfg->cluster_name);
	if (gethostname(cl->host, sizeof(cl->host) - 1) < 0)
		snprintf(cl->host, sizeof(cl->host), "unknown");
	cl->lease_ms = (int64_t)(cfg->cluster_lease * 1000.0);
	cl->rescue_ms = (int64_t)(cfg->cluster_rescue_interval * 1000.0);
	if (write_marker(cl, err, errlen) < 0 || join(cl, err, errlen) < 0) {
		free(cl->providers);
		free(cl);
		return NULL;
	}
	/* Not connected now is no error: it is tried again (store_listen_tick). */
	cl->listen = store_listen_open(cfg, err, errlen);
	log_info("cluster: instance %s on host %s joined (lease %g s, rescue every %g s)",
		 cl->name, cl->host, cfg->cluster_lease, cfg->cluster_rescue_interval);
	return cl;
}

void
cluster_free(struct cluster *cl)
{
	char path[4200];

	if (cl == NULL)
		return;
	/* What this instance still holds goes back at once, not at the end
	 * of its lease. */
	if (store_begin(cl->st) == 0) {
		store_release_owner(cl->st, cl->name);
		store_instance_remove(cl->st, cl->name);
		store_commit(cl->st);
	}
	marker_path(cl->cfg, cl->name, path, sizeof(path));
	unlink(path);
	store_listen_close(cl->listen);
	free(cl->providers);
	free(cl);
}

void
cluster_reconfigure(struct cluster *cl, const struct config *cfg)
{
	cl->cfg = cfg;
}

void
cluster_lost(struct cluster *cl)
{
	cl->lost = true;
}

int
cluster_tick(struct cluster *cl, int64_t now, const char *tokens)
{
	int64_t wall = clock_wall_ms();
	int out = 0, n;

	if (store_listen_tick(cl->listen) == 1)
		out |= CLUSTER_DISCOVER | CLUSTER_CHECK;	/* what it may have missed */
	/* The leases of the batches lost with a transaction are left to
	 * expire, not released: a provider may still be answering a request
	 * of a worker that was killed, and its concurrency must hold. */
	if (cl->lost) {
		cl->lost = false;
		out |= CLUSTER_DISCOVER | CLUSTER_CHECK;
	}
	if (now >= cl->next_renew) {
		cl->next_renew = now + cl->lease_ms / 3;
		store_lease_renew(cl->st, tokens, wall, cl->lease_ms);
		if (store_instance_heartbeat(cl->st, cl->name, wall) == 0) {
			/* Our row went (a restart of another instance of this
			 * name's host took us for dead): back in. */
			struct store_instance me = { cl->name, cl->host, (long)getpid(),
						     cl->providers, cl->marker };

			store_instance_upsert(cl->st, &me, wall);
		}
	}
	if (now >= cl->next_rescue) {
		cl->next_rescue = now + cl->rescue_ms;
		if ((n = store_rescue(cl->st, wall)) > 0) {
			log_info("cluster: %d generations whose lease expired taken over", n);
			out |= CLUSTER_RESCUED;
		}
		out |= CLUSTER_DISCOVER | CLUSTER_CHECK;
	}
	return out;
}

int
cluster_poll_fd(const struct cluster *cl)
{
	return store_listen_fd(cl->listen);
}

struct note_ctx {
	cluster_note_fn *fn;
	void *arg;
};

/* "RUN_ID:SEQ" or "RUN_ID:cancel". */
static void
on_payload(void *arg, const char *payload)
{
	struct note_ctx *n = arg;
	const char *colon = strrchr(payload, ':');
	char run_id[37];

	if (colon == NULL || colon - payload != 36)
		return;
	memcpy(run_id, payload, 36);
	run_id[36] = '\0';
	n->fn(n->arg, run_id, strcmp(colon + 1, "cancel") == 0 ? CLUSTER_CANCEL : CLUSTER_EVENT);
}

void
cluster_ready(struct cluster *cl, cluster_note_fn *fn, void *arg)
{
	struct note_ctx n = { fn, arg };

	(void)store_listen_read(cl->listen, on_payload, &n);
}

int64_t
cluster_wake_at(const struct cluster *cl)
{
	int64_t t = cl->next_renew < cl->next_rescue ? cl->next_renew : cl->next_rescue;

	/* A lost listening connection is tried again within a second. */
	if (store_listen_fd(cl->listen) < 0 && clock_now_ms() + 1000 < t)
		t = clock_now_ms() + 1000;
	return t;
}

json_t *
cluster_alive_in(struct store *st, double lease_s)
{
	json_t *all = store_instances(st), *out = json_array(), *in;
	int64_t now = clock_wall_ms();
	size_t i;

	json_array_foreach(all, i, in)
		if (json_integer_value(json_object_get(in, "heartbeat_ms")) +
			    (int64_t)(lease_s * 1000.0) >= now)
			json_array_append_new(
				out, json_pack("{sO sO sO sO}", "name", json_object_get(in, "name"),
					       "host", json_object_get(in, "host"), "pid",
					       json_object_get(in, "pid"), "heartbeat_ms",
					       json_object_get(in, "heartbeat_ms")));
	json_decref(all);
	return out;
}

json_t *
cluster_alive(struct cluster *cl)
{
	return cluster_alive_in(cl->st, cl->cfg->cluster_lease);
}
