/* control.c: QMP-style control socket: one poll thread, json-c framing, command table, events. */

/*
 * JSON key names, one rule for the whole control plane:
 *  - Statistics use the kernel's underscore names, written by vmm/mm_json.c (the
 *    serializer `vmcompact run --json` and the benchmarks use too): query-memory's
 *    whole return (guest_bytes, backing_2m, buddyinfo, extfrag_index, vmstat's
 *    compact_migrate_scanned..., kvm.pages_2m), a defrag job's "result"
 *    (pages_copied, regions_promoted, pause_max_us...), and query-status's
 *    guest_bytes, backing_2m, backing_2m_achievable, regions_backed_2m.
 *  - Protocol-level fields keep QMP's hyphens: command names (query-memory),
 *    arguments (max-pause-us, interval-ms), job-id, state, progress, elapsed-ms,
 *    uptime-ms, and query-defrag-policy's policy and counter fields.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vmm/control.h"
#include "vmm/mm_json.h"

#ifndef VMC_VERSION
#define VMC_VERSION "0.1.0"   /* vmm/meson.build passes the project's version */
#endif

/*
 * Protocol notes:
 *  - A client gets the QMP greeting on connect. qmp_capabilities is accepted but
 *    not required, so `echo '{"execute":"query-status"}' | socat - UNIX:...` works.
 *  - Framing: each connection feeds json-c's incremental tokener; requests may be
 *    split across writes, pipelined, and separated by newlines or nothing. After
 *    a parse error the rest of that line is dropped and the connection goes on.
 *    A request that is not complete after CONTROL_MAX_MSG bytes gets "message too
 *    large" and the connection is closed.
 *  - A client that shuts down its sending side gets its pending replies, then the
 *    connection is closed (events after that are not delivered to it).
 *  - Events go to every connected client, in the order they were emitted.
 */
#define CONTROL_FLUSH_MS 500      /* how long destroy waits for clients to read SHUTDOWN */
#define CONTROL_READ_CHUNK 16384

struct control_conn {
	int fd;
	uid_t uid;
	pid_t pid;
	json_tokener *tok;
	size_t msg_bytes;      /* bytes of the message being parsed */
	bool discard_line;     /* after a parse error: drop input up to the next newline */
	bool read_closed;      /* EOF or fatal protocol error: close once output is flushed */
	bool dead;             /* write failed or too much unread output: close now */
	char *out;
	size_t out_off, out_len, out_cap;
};

struct control_event {
	struct control_event *next;
	size_t len;
	char line[];
};

/* ------------------------------------------------------------------ */
/* paths */

const char *control__runtime_dir(void)
{
	const char *d = getenv(CONTROL_RUNTIME_DIR_ENV);

	return d && *d ? d : CONTROL_RUNTIME_DIR;
}

bool control__valid_name(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > CONTROL_NAME_MAX || !isalnum((unsigned char)name[0]))
		return false;
	for (i = 1; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-')
			return false;
	}
	return true;
}

int control__socket_path(const char *name_or_path, char *out, size_t outlen,
			 char *err, size_t errlen)
{
	size_t max = outlen < sizeof(((struct sockaddr_un *)0)->sun_path) ?
		     outlen : sizeof(((struct sockaddr_un *)0)->sun_path);
	int n;

	if (strchr(name_or_path, '/')) {
		n = snprintf(out, max, "%s", name_or_path);
	} else {
		if (!control__valid_name(name_or_path)) {
			snprintf(err, errlen, "invalid VM name '%s': use up to %d letters, digits, "
				 "'.', '_' or '-', starting with a letter or digit",
				 name_or_path, CONTROL_NAME_MAX);
			return -EINVAL;
		}
		n = snprintf(out, max, "%s/%s.sock", control__runtime_dir(), name_or_path);
	}
	if (n < 0 || (size_t)n >= max) {
		snprintf(err, errlen, "socket path for '%s' is longer than %zu bytes",
			 name_or_path, max - 1);
		return -ENAMETOOLONG;
	}
	return 0;
}

void control_config__init(struct control_config *cfg)
{
	static const struct defragd_policy defaults = DEFRAGD_POLICY_DEFAULTS;

	memset(cfg, 0, sizeof(*cfg));
	cfg->allowed_uid = geteuid();
	cfg->allow_root = true;
	cfg->defrag = defaults;
}

/* ------------------------------------------------------------------ */
/* json helpers */

static struct json_object *jdouble(double v, const char *fmt)
{
	char buf[64];

	if (!isfinite(v))
		return NULL;
	snprintf(buf, sizeof(buf), fmt, v);
	return json_object_new_double_s(v, buf);
}

static void jadd(struct json_object *o, const char *key, struct json_object *v)
{
	json_object_object_add(o, key, v);
}

static void jadd_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static void jadd_str(struct json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v));
}

static char *json__line(struct json_object *o, size_t *len)
{
	const char *txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t n = strlen(txt);
	char *line = malloc(n + 2);

	if (!line)
		return NULL;
	memcpy(line, txt, n);
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}

static const char *host__status(const struct control_host *h)
{
	return h->status ? h->status(h->ctx) : "running";
}

/* ------------------------------------------------------------------ */
/* events */

static void control__wake(struct control_server *s)
{
	uint64_t one = 1;
	ssize_t r;

	do
		r = write(s->wake_fd, &one, sizeof(one));
	while (r < 0 && errno == EINTR);
}

void control__emit(struct control_server *s, const char *event, struct json_object *data)
{
	struct json_object *o = json_object_new_object(), *ts = json_object_new_object();
	struct control_event *ev;
	struct timeval tv;
	const char *txt;
	size_t n;

	gettimeofday(&tv, NULL);
	jadd_str(o, "event", event);
	jadd(o, "data", data ? data : json_object_new_object());
	json_object_object_add(ts, "seconds", json_object_new_int64(tv.tv_sec));
	json_object_object_add(ts, "microseconds", json_object_new_int64(tv.tv_usec));
	jadd(o, "timestamp", ts);

	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					     JSON_C_TO_STRING_NOSLASHESCAPE);
	n = strlen(txt);
	ev = malloc(sizeof(*ev) + n + 2);
	if (ev) {
		memcpy(ev->line, txt, n);
		ev->line[n] = '\n';
		ev->line[n + 1] = '\0';
		ev->len = n + 1;
		ev->next = NULL;
	}
	json_object_put(o);
	if (!ev)
		return;

	pthread_mutex_lock(&s->lock);
	if (s->ev_tail)
		s->ev_tail->next = ev;
	else
		s->ev_head = ev;
	s->ev_tail = ev;
	pthread_mutex_unlock(&s->lock);
	control__wake(s);
}

static const char *const mode_names[] = {
	[DEFRAG_COMPACT] = "compact", [DEFRAG_COLLAPSE] = "collapse", [DEFRAG_FULL] = "full", NULL,
};
static const char *const algo_names[] = {
	[DEFRAG_ALGO_LINUX] = "linux", [DEFRAG_ALGO_PLANNED] = "planned", NULL,
};

/* Why a job failed: the engine's message, else the errno's. */
static const char *job_info__error(const struct defrag_job_info *info)
{
	return info->stats.error_msg[0] ? info->stats.error_msg : strerror(-info->error);
}

static struct json_object *job_info__event_data(const struct defrag_job_info *info)
{
	struct json_object *o = json_object_new_object();

	jadd_u64(o, "job-id", info->id);
	jadd_str(o, "origin", defrag_origin_names[info->origin]);
	return o;
}

static void control__job_progress(void *ctx, const struct defrag_job_info *info)
{
	struct control_server *s = ctx;
	struct json_object *d = job_info__event_data(info);

	jadd_u64(d, "done", info->done);
	jadd_u64(d, "total", info->total);
	control__emit(s, "DEFRAG_PROGRESS", d);
}

static void control__job_finish(void *ctx, const struct defrag_job_info *info)
{
	struct control_server *s = ctx;
	struct json_object *d = job_info__event_data(info);

	jadd_str(d, "state", defrag_job_state_names[info->state]);
	if (info->state == DEFRAG_JOB_FAILED)
		jadd_str(d, "error", job_info__error(info));
	jadd_u64(d, "done", info->done);
	jadd_u64(d, "total", info->total);
	jadd(d, "result", mm_json__defrag_stats(&info->stats));
	control__emit(s, info->state == DEFRAG_JOB_CANCELLED ? "DEFRAG_CANCELLED" :
							      "DEFRAG_COMPLETED", d);
}

/* ------------------------------------------------------------------ */
/* connections (server thread only) */

static void conn__queue(struct control_server *s, struct control_conn *c, const char *data, size_t n)
{
	size_t pending = c->out_len - c->out_off;

	if (c->dead)
		return;
	if (pending + n > CONTROL_MAX_OUTPUT) {
		pthread_mutex_lock(&s->lock);
		s->counters.dropped_slow++;
		pthread_mutex_unlock(&s->lock);
		c->dead = true;
		return;
	}
	if (c->out_off && c->out_len + n > c->out_cap) {
		memmove(c->out, c->out + c->out_off, pending);
		c->out_len = pending;
		c->out_off = 0;
	}
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *p;

		while (cap < c->out_len + n)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p) {
			c->dead = true;
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, n);
	c->out_len += n;
}

static void conn__send(struct control_server *s, struct control_conn *c, struct json_object *o)
{
	size_t n;
	char *line = json__line(o, &n);

	if (!line) {
		c->dead = true;
		return;
	}
	conn__queue(s, c, line, n);
	free(line);
}

static void conn__flush(struct control_conn *c)
{
	while (!c->dead && c->out_off < c->out_len) {
		ssize_t r = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->dead = true;
			return;
		}
		c->out_off += (size_t)r;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
}

static bool conn__pending(const struct control_conn *c)
{
	return !c->dead && c->out_off < c->out_len;
}

static void conn__free(struct control_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	if (c->tok)
		json_tokener_free(c->tok);
	free(c->out);
	free(c);
}

struct cmd_error {
	const char *cls;
	char desc[512];
};

static int cmd_error__set(struct cmd_error *e, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int cmd_error__set(struct cmd_error *e, const char *cls, const char *fmt, ...)
{
	va_list ap;

	e->cls = cls;
	va_start(ap, fmt);
	vsnprintf(e->desc, sizeof(e->desc), fmt, ap);
	va_end(ap);
	return -1;
}

static void conn__reply_error(struct control_server *s, struct control_conn *c,
			      const struct cmd_error *e, struct json_object *id)
{
	struct json_object *o = json_object_new_object(), *err = json_object_new_object();

	jadd_str(err, "class", e->cls);
	jadd_str(err, "desc", e->desc);
	jadd(o, "error", err);
	if (id)
		jadd(o, "id", json_object_get(id));
	conn__send(s, c, o);
	json_object_put(o);
	pthread_mutex_lock(&s->lock);
	s->counters.errors++;
	pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------------ */
/* commands */

struct cmd_ctx {
	struct control_server *s;
	struct control_conn *c;
};

enum arg_type { ARG_INT, ARG_BOOL, ARG_ENUM };

struct arg_spec {
	const char *name;
	enum arg_type type;
	int64_t min, max;             /* ARG_INT */
	const char *const *choices;   /* ARG_ENUM, NULL-terminated */
};

typedef int (*cmd_fn)(struct cmd_ctx *x, struct json_object *args, struct json_object **ret,
		      struct cmd_error *e);

struct control_command {
	const char *name;
	cmd_fn fn;
	const struct arg_spec *args;  /* terminated by { NULL } */
	const char *help;
};

static bool args__get(struct json_object *args, const char *name, struct json_object **v)
{
	return args && json_object_object_get_ex(args, name, v);
}

static int64_t arg__int(struct json_object *args, const char *name, int64_t def)
{
	struct json_object *v;

	return args__get(args, name, &v) ? json_object_get_int64(v) : def;
}

static int arg__enum(struct json_object *args, const char *name, const char *const *choices, int def)
{
	struct json_object *v;
	const char *str;
	int i;

	if (!args__get(args, name, &v))
		return def;
	str = json_object_get_string(v);
	for (i = 0; choices[i]; i++)
		if (strcmp(choices[i], str) == 0)
			return i;
	return def;
}

/* Accepted for QMP clients; unlike QEMU, commands work without it (plain socat use). */
static int qmp_capabilities(struct cmd_ctx *x, struct json_object *args,
			    struct json_object **ret, struct cmd_error *e)
{
	return 0;
}

static int qmp_query_commands(struct cmd_ctx *x, struct json_object *args,
			      struct json_object **ret, struct cmd_error *e);

static int qmp_query_status(struct cmd_ctx *x, struct json_object *args,
			    struct json_object **ret, struct cmd_error *e)
{
	struct control_server *s = x->s;
	struct control_host *h = s->host;
	struct json_object *o = json_object_new_object();
	struct defrag_job_info info;
	enum defragd_state dstate;
	struct mm_stat st;
	const char *status = host__status(h);

	mm__stat(h->mm, &st);
	defrag_job__snapshot(&s->job, &info);
	defragd__snapshot(&s->defragd, NULL, NULL, &dstate);

	jadd_str(o, "name", s->name);
	json_object_object_add(o, "pid", json_object_new_int64(getpid()));
	jadd_str(o, "status", status);
	json_object_object_add(o, "running", json_object_new_boolean(strcmp(status, "running") == 0));
	jadd_u64(o, "uptime-ms", (defrag_job__now_ns() - s->start_ns) / 1000000);
	jadd_u64(o, "vcpus", h->nr_vcpus);
	jadd_u64(o, "guest_bytes", st.guest_bytes);
	jadd_u64(o, "regions", st.nr_regions);
	jadd_u64(o, "regions_backed_2m", st.regions_backed_2m);
	jadd(o, "backing_2m", jdouble(st.backing_2m, "%.4f"));
	jadd(o, "backing_2m_achievable", jdouble(st.backing_2m_achievable, "%.4f"));
	jadd_str(o, "defrag", defrag_job_state_names[info.state]);
	jadd_str(o, "defragd", defragd_state_names[dstate]);
	jadd_str(o, "socket", s->path);
	if (h->add_status)
		h->add_status(h->ctx, o);
	*ret = o;
	return 0;
}

/* KVM's own page counts from the host hook; valid=false (JSON null) without one. */
static void host__kvm_pages(const struct control_host *h, struct kvm_pages *k)
{
	memset(k, 0, sizeof(*k));
	if (h->kvm_stats && h->kvm_stats(h->ctx, &k->pages_4k, &k->pages_2m, &k->pages_1g) >= 0)
		k->valid = true;
}

static int qmp_query_memory(struct cmd_ctx *x, struct json_object *args,
			    struct json_object **ret, struct cmd_error *e)
{
	struct control_host *h = x->s->host;
	struct kvm_pages kvm;
	struct mm_stat st;

	mm__stat(h->mm, &st);
	host__kvm_pages(h, &kvm);
	*ret = mm_json__stat(&st, &kvm);
	return 0;
}

static bool control__closing(struct control_server *s)
{
	bool closing;

	pthread_mutex_lock(&s->lock);
	closing = s->closing;
	pthread_mutex_unlock(&s->lock);
	return closing;
}

static int qmp_defrag(struct cmd_ctx *x, struct json_object *args, struct json_object **ret,
		      struct cmd_error *e)
{
	struct control_server *s = x->s;
	struct defrag_request req;
	struct json_object *v;
	uint64_t id;
	char err[256];
	int r;

	if (control__closing(s))
		return cmd_error__set(e, "DeviceNotActive", "VM '%s' is shutting down", s->name);
	if (strcmp(host__status(s->host), "shutdown") == 0)
		return cmd_error__set(e, "DeviceNotActive", "VM '%s' is shut down", s->name);

	defrag_request__init(&req);
	req.mode = (enum defrag_mode)arg__enum(args, "mode", mode_names, DEFRAG_FULL);
	req.algo = (enum defrag_algo)arg__enum(args, "algo", algo_names, DEFRAG_ALGO_PLANNED);
	req.order = -1;
	if (args__get(args, "order", &v)) {
		if (req.mode == DEFRAG_COLLAPSE)
			return cmd_error__set(e, "GenericError", "Parameter 'order' is only valid "
					      "with mode 'compact' or 'full'");
		req.order = (int)json_object_get_int64(v);
	}
	if (args__get(args, "max-pause-us", &v))
		req.max_pause_ns = (uint64_t)json_object_get_int64(v) * 1000;
	if (args__get(args, "max-mbps", &v))
		req.max_bytes_per_sec = (uint64_t)json_object_get_int64(v) * 1000000;
	req.max_regions = (uint32_t)arg__int(args, "max-regions", req.max_regions);

	r = defrag_job__start(&s->job, &req, DEFRAG_ORIGIN_MANUAL, &id, NULL, err, sizeof(err));
	if (r < 0)
		return cmd_error__set(e, "GenericError", "%s", err);
	*ret = json_object_new_object();
	jadd_u64(*ret, "job-id", id);
	return 0;
}

static int qmp_query_defrag(struct cmd_ctx *x, struct json_object *args,
			    struct json_object **ret, struct cmd_error *e)
{
	struct control_server *s = x->s;
	struct json_object *o = json_object_new_object(), *p;
	struct defrag_job_info info;
	uint64_t end;

	defrag_job__snapshot(&s->job, &info);
	jadd_str(o, "state", defrag_job_state_names[info.state]);
	if (info.state != DEFRAG_JOB_IDLE) {
		jadd_u64(o, "job-id", info.id);
		jadd_str(o, "origin", defrag_origin_names[info.origin]);
		jadd_str(o, "mode", mode_names[info.mode]);
		jadd_str(o, "algo", algo_names[info.algo]);
		json_object_object_add(o, "order", json_object_new_int(info.order));
		p = json_object_new_object();
		jadd_u64(p, "done", info.done);
		jadd_u64(p, "total", info.total);
		jadd(o, "progress", p);
		end = info.state == DEFRAG_JOB_RUNNING ? defrag_job__now_ns() : info.finished_ns;
		jadd(o, "elapsed-ms", jdouble((end - info.started_ns) / 1e6, "%.3f"));
		if (info.state == DEFRAG_JOB_FAILED)
			jadd_str(o, "error", job_info__error(&info));
		if (info.has_result)
			jadd(o, "result", mm_json__defrag_stats(&info.stats));
	}
	*ret = o;
	return 0;
}

static int qmp_cancel_defrag(struct cmd_ctx *x, struct json_object *args,
			     struct json_object **ret, struct cmd_error *e)
{
	uint64_t id;

	if (defrag_job__cancel(&x->s->job, &id) < 0)
		return cmd_error__set(e, "DeviceNotActive", "no defrag job is running");
	*ret = json_object_new_object();
	jadd_u64(*ret, "job-id", id);
	return 0;
}

static struct json_object *policy__json(struct control_server *s)
{
	struct json_object *o = json_object_new_object(), *c;
	struct defragd_counters cnt;
	struct defragd_policy p;
	enum defragd_state state;

	defragd__snapshot(&s->defragd, &p, &cnt, &state);
	json_object_object_add(o, "auto", json_object_new_boolean(p.enabled));
	jadd_u64(o, "proactiveness", p.proactiveness);
	jadd_u64(o, "interval-ms", p.interval_ms);
	jadd_u64(o, "max-pause-us", p.max_pause_us);
	jadd_u64(o, "max-mbps", p.max_mbps);
	jadd_u64(o, "backoff-ms", p.backoff_ms);
	jadd_u64(o, "regions-per-wakeup", p.regions_per_wakeup);
	jadd_u64(o, "wmark-low", defragd__wmark(p.proactiveness, true));
	jadd_u64(o, "wmark-high", defragd__wmark(p.proactiveness, false));
	jadd_str(o, "state", defragd_state_names[state]);
	c = json_object_new_object();
	jadd_u64(c, "wakeups", cnt.wakeups);
	jadd_u64(c, "rounds", cnt.rounds);
	jadd_u64(c, "regions-promoted", cnt.regions_promoted);
	jadd_u64(c, "pages-copied", cnt.pages_copied);
	jadd_u64(c, "backoffs", cnt.backoffs);
	jadd_u64(c, "busy-skips", cnt.busy_skips);
	jadd_u64(c, "failures", cnt.failures);
	jadd_u64(c, "last-score", cnt.last_score);
	jadd_u64(c, "last-fragmentation-score", cnt.last_free_score);
	jadd(o, "counters", c);
	return o;
}

static int qmp_query_defrag_policy(struct cmd_ctx *x, struct json_object *args,
				   struct json_object **ret, struct cmd_error *e)
{
	*ret = policy__json(x->s);
	return 0;
}

static int qmp_set_defrag_policy(struct cmd_ctx *x, struct json_object *args,
				 struct json_object **ret, struct cmd_error *e)
{
	struct control_server *s = x->s;
	struct defragd_policy p;
	struct json_object *v;
	char err[256];

	defragd__snapshot(&s->defragd, &p, NULL, NULL);
	if (args__get(args, "auto", &v))
		p.enabled = json_object_get_boolean(v);
	p.proactiveness = (unsigned)arg__int(args, "proactiveness", p.proactiveness);
	p.interval_ms = (uint32_t)arg__int(args, "interval-ms", p.interval_ms);
	p.max_pause_us = (uint32_t)arg__int(args, "max-pause-us", p.max_pause_us);
	p.max_mbps = (uint32_t)arg__int(args, "max-mbps", p.max_mbps);
	p.backoff_ms = (uint32_t)arg__int(args, "backoff-ms", p.backoff_ms);
	p.regions_per_wakeup = (uint32_t)arg__int(args, "regions-per-wakeup", p.regions_per_wakeup);
	if (p.enabled && control__closing(s))
		return cmd_error__set(e, "DeviceNotActive", "VM '%s' is shutting down", s->name);
	if (defragd__set_policy(&s->defragd, &p, err, sizeof(err)) < 0)
		return cmd_error__set(e, "GenericError", "%s", err);
	*ret = policy__json(s);
	return 0;
}

static int qmp_stop(struct cmd_ctx *x, struct json_object *args, struct json_object **ret,
		    struct cmd_error *e)
{
	struct control_server *s = x->s;

	if (!s->host->request_stop)
		return cmd_error__set(e, "GenericError", "this VM cannot be stopped from the socket");
	pthread_mutex_lock(&s->lock);
	s->stop_requested = true;
	pthread_mutex_unlock(&s->lock);
	s->host->request_stop(s->host->ctx);
	return 0;
}

static const struct arg_spec no_args[] = { { NULL } };

static const struct arg_spec defrag_args[] = {
	{ "mode", ARG_ENUM, 0, 0, mode_names },
	{ "algo", ARG_ENUM, 0, 0, algo_names },
	{ "order", ARG_INT, 0, MM_MAX_ORDER - 1, NULL },
	{ "max-pause-us", ARG_INT, DEFRAGD_PAUSE_US_MIN, DEFRAGD_PAUSE_US_MAX, NULL },
	{ "max-mbps", ARG_INT, 0, DEFRAGD_MBPS_MAX, NULL },
	{ "max-regions", ARG_INT, 0, UINT32_MAX, NULL },
	{ NULL }
};

static const struct arg_spec policy_args[] = {
	{ "auto", ARG_BOOL, 0, 0, NULL },
	{ "proactiveness", ARG_INT, 0, 100, NULL },
	{ "interval-ms", ARG_INT, DEFRAGD_INTERVAL_MS_MIN, DEFRAGD_INTERVAL_MS_MAX, NULL },
	{ "max-pause-us", ARG_INT, DEFRAGD_PAUSE_US_MIN, DEFRAGD_PAUSE_US_MAX, NULL },
	{ "max-mbps", ARG_INT, 0, DEFRAGD_MBPS_MAX, NULL },
	{ "backoff-ms", ARG_INT, 0, DEFRAGD_BACKOFF_MS_MAX, NULL },
	{ "regions-per-wakeup", ARG_INT, 1, DEFRAGD_REGIONS_MAX, NULL },
	{ NULL }
};

/* The command table: name, handler, arguments, what it does. */
static const struct control_command commands[] = {
	{ "qmp_capabilities", qmp_capabilities, no_args, "capabilities negotiation (optional)" },
	{ "query-commands", qmp_query_commands, no_args, "list commands and their arguments" },
	{ "query-status", qmp_query_status, no_args, "name, pid, run state, backing_2m" },
	{ "query-memory", qmp_query_memory, no_args, "buddyinfo, pagetypeinfo, indices, vmstat, KVM pages" },
	{ "defrag", qmp_defrag, defrag_args, "start a defrag job" },
	{ "query-defrag", qmp_query_defrag, no_args, "state, progress and result of the last job" },
	{ "cancel-defrag", qmp_cancel_defrag, no_args, "cancel the running job" },
	{ "set-defrag-policy", qmp_set_defrag_policy, policy_args, "change defragd's policy" },
	{ "query-defrag-policy", qmp_query_defrag_policy, no_args, "defragd policy, state, counters" },
	{ "stop", qmp_stop, no_args, "stop the VM" },
};
#define NR_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static int qmp_query_commands(struct cmd_ctx *x, struct json_object *args,
			      struct json_object **ret, struct cmd_error *e)
{
	struct json_object *a = json_object_new_array();
	const struct arg_spec *spec;
	unsigned i;

	for (i = 0; i < NR_COMMANDS; i++) {
		struct json_object *c = json_object_new_object(), *names = json_object_new_array();

		jadd_str(c, "name", commands[i].name);
		for (spec = commands[i].args; spec->name; spec++)
			json_object_array_add(names, json_object_new_string(spec->name));
		jadd(c, "arguments", names);
		jadd_str(c, "help", commands[i].help);
		json_object_array_add(a, c);
	}
	*ret = a;
	return 0;
}

static const struct control_command *command__find(const char *name)
{
	unsigned i;

	for (i = 0; i < NR_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int args__check(const struct control_command *cmd, struct json_object *args,
		       struct cmd_error *e)
{
	if (!args)
		return 0;
	json_object_object_foreach(args, key, val) {
		const struct arg_spec *a;
		const char *str;
		int64_t n;
		int i;

		for (a = cmd->args; a->name; a++)
			if (strcmp(a->name, key) == 0)
				break;
		if (!a->name)
			return cmd_error__set(e, "GenericError", "Parameter '%s' is unexpected", key);
		switch (a->type) {
		case ARG_INT:
			if (!json_object_is_type(val, json_type_int))
				return cmd_error__set(e, "GenericError", "Invalid parameter type for "
						      "'%s', expected: integer", key);
			n = json_object_get_int64(val);
			if (n < a->min || n > a->max ||
			    (n == INT64_MAX && json_object_get_uint64(val) > INT64_MAX))
				return cmd_error__set(e, "GenericError", "Parameter '%s' expects a "
						      "value in %lld..%lld", key,
						      (long long)a->min, (long long)a->max);
			break;
		case ARG_BOOL:
			if (!json_object_is_type(val, json_type_boolean))
				return cmd_error__set(e, "GenericError", "Invalid parameter type for "
						      "'%s', expected: boolean", key);
			break;
		case ARG_ENUM:
			if (!json_object_is_type(val, json_type_string))
				return cmd_error__set(e, "GenericError", "Invalid parameter type for "
						      "'%s', expected: string", key);
			str = json_object_get_string(val);
			for (i = 0; a->choices[i]; i++)
				if (strcmp(a->choices[i], str) == 0)
					break;
			if (!a->choices[i]) {
				char list[128] = "";

				for (i = 0; a->choices[i]; i++) {
					strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
					strncat(list, a->choices[i], sizeof(list) - strlen(list) - 1);
				}
				return cmd_error__set(e, "GenericError", "Parameter '%s' does not "
						      "accept value '%s' (expected: %s)", key, str, list);
			}
			break;
		}
	}
	return 0;
}

static void conn__dispatch(struct control_server *s, struct control_conn *c, struct json_object *req)
{
	struct json_object *id = NULL, *exec = NULL, *args = NULL, *ret = NULL, *reply;
	const struct control_command *cmd;
	struct cmd_ctx x = { s, c };
	struct cmd_error e = { NULL, "" };

	pthread_mutex_lock(&s->lock);
	s->counters.commands++;
	pthread_mutex_unlock(&s->lock);

	if (!json_object_is_type(req, json_type_object)) {
		cmd_error__set(&e, "GenericError", "QMP input must be a JSON object");
		goto error;
	}
	json_object_object_get_ex(req, "id", &id);
	json_object_object_foreach(req, key, val) {
		(void)val;
		if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id")) {
			cmd_error__set(&e, "GenericError", "QMP input member '%s' is unexpected", key);
			goto error;
		}
	}
	if (!json_object_object_get_ex(req, "execute", &exec)) {
		cmd_error__set(&e, "GenericError", "QMP input lacks member 'execute'");
		goto error;
	}
	if (!json_object_is_type(exec, json_type_string)) {
		cmd_error__set(&e, "GenericError", "QMP input member 'execute' must be a string");
		goto error;
	}
	if (json_object_object_get_ex(req, "arguments", &args) &&
	    !json_object_is_type(args, json_type_object)) {
		cmd_error__set(&e, "GenericError", "QMP input member 'arguments' must be an object");
		goto error;
	}
	cmd = command__find(json_object_get_string(exec));
	if (!cmd) {
		cmd_error__set(&e, "CommandNotFound", "The command %s has not been found",
			       json_object_get_string(exec));
		goto error;
	}
	if (args__check(cmd, args, &e))
		goto error;
	if (cmd->fn(&x, args, &ret, &e) < 0) {
		if (ret)
			json_object_put(ret);
		goto error;
	}

	reply = json_object_new_object();
	jadd(reply, "return", ret ? ret : json_object_new_object());
	if (id)
		jadd(reply, "id", json_object_get(id));
	conn__send(s, c, reply);
	json_object_put(reply);
	return;
error:
	conn__reply_error(s, c, &e, id);
}

/* Feed received bytes through the connection's incremental json-c tokener. */
static void conn__input(struct control_server *s, struct control_conn *c, const char *buf, size_t n)
{
	size_t i = 0;

	while (i < n && !c->read_closed && !c->dead) {
		enum json_tokener_error jerr;
		struct json_object *obj;
		size_t len, used;

		if (c->discard_line) {
			const char *nl = memchr(buf + i, '\n', n - i);

			if (!nl)
				return;
			i = (size_t)(nl - buf) + 1;
			c->discard_line = false;
			continue;
		}
		if (c->msg_bytes == 0) {
			while (i < n && isspace((unsigned char)buf[i]))
				i++;
			if (i == n)
				return;
		}
		len = n - i;
		if (len > CONTROL_MAX_MSG - c->msg_bytes)
			len = CONTROL_MAX_MSG - c->msg_bytes;
		obj = json_tokener_parse_ex(c->tok, buf + i, (int)len);
		jerr = json_tokener_get_error(c->tok);
		if (jerr == json_tokener_continue) {
			c->msg_bytes += len;
			i += len;
			if (c->msg_bytes >= CONTROL_MAX_MSG) {
				struct cmd_error e;

				cmd_error__set(&e, "GenericError", "message too large (limit %d bytes)",
					       CONTROL_MAX_MSG);
				conn__reply_error(s, c, &e, NULL);
				c->read_closed = true;
			}
			continue;
		}
		used = json_tokener_get_parse_end(c->tok);
		json_tokener_reset(c->tok);
		c->msg_bytes = 0;
		i += used;
		if (jerr != json_tokener_success) {
			struct cmd_error e;

			cmd_error__set(&e, "GenericError", "JSON parse error: %s",
				       json_tokener_error_desc(jerr));
			conn__reply_error(s, c, &e, NULL);
			c->discard_line = true;   /* resynchronise on the next line */
			continue;
		}
		conn__dispatch(s, c, obj);
		json_object_put(obj);
	}
}

static void conn__read(struct control_server *s, struct control_conn *c)
{
	char buf[CONTROL_READ_CHUNK];
	int rounds;

	for (rounds = 0; rounds < 8 && !c->read_closed && !c->dead; rounds++) {
		ssize_t r = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->dead = true;
			return;
		}
		if (r == 0) {
			c->read_closed = true;
			return;
		}
		conn__input(s, c, buf, (size_t)r);
	}
}

static void control__write_refusal(int fd, const char *desc)
{
	struct json_object *o = json_object_new_object(), *err = json_object_new_object();
	size_t n;
	char *line;

	jadd_str(err, "class", "GenericError");
	jadd_str(err, "desc", desc);
	jadd(o, "error", err);
	line = json__line(o, &n);
	if (line && send(fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the peer is gone already: nothing to tell it */
	}
	free(line);
	json_object_put(o);
}

static struct json_object *control__greeting(void)
{
	struct json_object *o = json_object_new_object(), *q = json_object_new_object();
	struct json_object *ver = json_object_new_object(), *v = json_object_new_object();
	int major = 0, minor = 0, micro = 0;

	sscanf(VMC_VERSION, "%d.%d.%d", &major, &minor, &micro);
	json_object_object_add(v, "major", json_object_new_int(major));
	json_object_object_add(v, "minor", json_object_new_int(minor));
	json_object_object_add(v, "micro", json_object_new_int(micro));
	jadd(ver, "vmcompact", v);
	jadd_str(ver, "package", "vmcompact " VMC_VERSION);
	jadd(q, "version", ver);
	jadd(q, "capabilities", json_object_new_array());
	jadd(o, "QMP", q);
	return o;
}

static void control__accept(struct control_server *s)
{
	for (;;) {
		struct control_conn *c;
		struct json_object *greeting;
		struct ucred cred;
		socklen_t len = sizeof(cred);
		char desc[256];
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;    /* EAGAIN, or out of fds: try again on the next poll */
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			close(fd);
			continue;
		}
		if (cred.uid != s->cfg.allowed_uid && !(s->cfg.allow_root && cred.uid == 0)) {
			snprintf(desc, sizeof(desc), "permission denied: uid %u may not control VM "
				 "'%s' (owner uid %u)", (unsigned)cred.uid, s->name,
				 (unsigned)s->cfg.allowed_uid);
			pthread_mutex_lock(&s->lock);
			s->counters.refused_uid++;
			pthread_mutex_unlock(&s->lock);
			control__write_refusal(fd, desc);
			close(fd);
			continue;
		}
		if (s->nr_conns == CONTROL_MAX_CLIENTS) {
			snprintf(desc, sizeof(desc), "too many clients (limit %d)", CONTROL_MAX_CLIENTS);
			pthread_mutex_lock(&s->lock);
			s->counters.refused_full++;
			pthread_mutex_unlock(&s->lock);
			control__write_refusal(fd, desc);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->uid = cred.uid;
		c->pid = cred.pid;
		c->tok = json_tokener_new();
		if (!c->tok) {
			conn__free(c);
			continue;
		}
		json_tokener_set_flags(c->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
		greeting = control__greeting();
		conn__send(s, c, greeting);
		json_object_put(greeting);
		conn__flush(c);
		s->conns[s->nr_conns++] = c;
		pthread_mutex_lock(&s->lock);
		s->counters.accepted++;
		pthread_mutex_unlock(&s->lock);
	}
}

static void control__drain_events(struct control_server *s)
{
	struct control_event *ev, *next;
	unsigned i;

	pthread_mutex_lock(&s->lock);
	ev = s->ev_head;
	s->ev_head = s->ev_tail = NULL;
	pthread_mutex_unlock(&s->lock);

	for (; ev; ev = next) {
		next = ev->next;
		for (i = 0; i < s->nr_conns; i++)
			conn__queue(s, s->conns[i], ev->line, ev->len);
		free(ev);
	}
}

static void control__reap(struct control_server *s)
{
	unsigned i = 0;

	while (i < s->nr_conns) {
		struct control_conn *c = s->conns[i];

		if (c->dead || (c->read_closed && !conn__pending(c))) {
			conn__free(c);
			s->conns[i] = s->conns[--s->nr_conns];
			continue;
		}
		i++;
	}
}

static void *control__thread(void *arg)
{
	struct control_server *s = arg;
	struct pollfd pfd[2 + CONTROL_MAX_CLIENTS];
	struct control_conn *polled[CONTROL_MAX_CLIENTS];
	uint64_t flush_deadline = 0;

	for (;;) {
		unsigned i, n = 0, nr_polled = 0, listen_idx = 0;
		bool stopping, pending = false;
		int timeout = -1;

		pthread_mutex_lock(&s->lock);
		stopping = s->stopping;
		pthread_mutex_unlock(&s->lock);

		control__drain_events(s);
		for (i = 0; i < s->nr_conns; i++) {
			conn__flush(s->conns[i]);
			pending |= conn__pending(s->conns[i]);
		}
		control__reap(s);
		if (stopping) {
			uint64_t now = defrag_job__now_ns();

			if (!flush_deadline)
				flush_deadline = now + CONTROL_FLUSH_MS * 1000000ULL;
			if (!pending || now >= flush_deadline)
				break;
			timeout = (int)((flush_deadline - now) / 1000000ULL) + 1;
		}

		pfd[n++] = (struct pollfd){ .fd = s->wake_fd, .events = POLLIN };
		if (!stopping) {
			listen_idx = n;
			pfd[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
		}
		for (i = 0; i < s->nr_conns; i++) {
			struct control_conn *c = s->conns[i];
			short events = 0;

			if (!c->read_closed && !stopping)
				events |= POLLIN;
			if (conn__pending(c))
				events |= POLLOUT;
			polled[nr_polled++] = c;
			pfd[n++] = (struct pollfd){ .fd = c->fd, .events = events };
		}

		if (poll(pfd, n, timeout) < 0 && errno != EINTR)
			break;

		if (pfd[0].revents & POLLIN) {
			uint64_t v;

			if (read(s->wake_fd, &v, sizeof(v)) < 0) {
				/* EAGAIN: another wakeup already consumed it */
			}
		}
		if (listen_idx && (pfd[listen_idx].revents & POLLIN))
			control__accept(s);
		for (i = 0; i < nr_polled; i++) {
			struct pollfd *p = &pfd[n - nr_polled + i];
			struct control_conn *c = polled[i];

			if (p->revents & (POLLIN | POLLHUP | POLLERR)) {
				if (!c->read_closed && !stopping)
					conn__read(s, c);
				else if (p->revents & (POLLHUP | POLLERR))
					c->dead = !conn__pending(c) || (p->revents & POLLERR);
			}
			if (p->revents & POLLOUT || conn__pending(c))
				conn__flush(c);
		}
		control__reap(s);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* start / destroy */

static int runtime_dir__ensure(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct stat sb;
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno != EEXIST) {
		snprintf(err, errlen, "cannot create runtime directory %s: %s", dir, strerror(errno));
		return -errno;
	}
	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "runtime directory %s is not a directory", dir);
		return -ENOTDIR;
	}
	return 0;
}

/* A socket file exists at path: is a VM listening on it? */
static int control__claim_path(struct control_server *s, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd, r;

	if (lstat(s->path, &sb) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(sb.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket; not replacing it", s->path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	r = r < 0 ? -errno : 0;
	close(fd);
	if (r == 0 || r == -EAGAIN) {
		snprintf(err, errlen, "a VM named %s is already running (socket %s)", s->name, s->path);
		return -EADDRINUSE;
	}
	if (r != -ECONNREFUSED && r != -ENOENT) {
		snprintf(err, errlen, "cannot check existing socket %s: %s", s->path, strerror(-r));
		return r;
	}
	if (unlink(s->path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale socket %s: %s", s->path, strerror(errno));
		return -errno;
	}
	snprintf(s->note, sizeof(s->note), "replaced stale socket %s (nobody was listening)", s->path);
	return 0;
}

int control__start(struct control_server *s, struct control_host *host,
		   const struct control_config *cfg, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct defrag_job_hooks hooks = {
		.on_progress = control__job_progress,
		.on_finish = control__job_finish,
		.ctx = s,
	};
	const char *name;
	struct stat sb;
	int r;

	memset(s, 0, sizeof(*s));
	s->listen_fd = s->wake_fd = -1;
	s->host = host;
	s->cfg = *cfg;
	s->start_ns = defrag_job__now_ns();

	if (!host || !host->mm) {
		snprintf(err, errlen, "control: no guest memory to control");
		return -EINVAL;
	}
	name = host->name ? host->name : cfg->name;
	if (name)
		snprintf(s->name, sizeof(s->name), "%s", name);
	else
		snprintf(s->name, sizeof(s->name), "vm-%d", (int)getpid());
	if (cfg->path) {
		if (!cfg->path[0] || strlen(cfg->path) >= sizeof(s->path)) {
			snprintf(err, errlen, "socket path '%s' is empty or longer than %zu bytes",
				 cfg->path, sizeof(s->path) - 1);
			return -ENAMETOOLONG;
		}
		memcpy(s->path, cfg->path, strlen(cfg->path) + 1);
	} else {
		if (!control__valid_name(s->name)) {
			snprintf(err, errlen, "invalid VM name '%s': use up to %d letters, digits, "
				 "'.', '_' or '-', starting with a letter or digit", s->name,
				 CONTROL_NAME_MAX);
			return -EINVAL;
		}
		r = control__socket_path(s->name, s->path, sizeof(s->path), err, errlen);
		if (r < 0)
			return r;
		r = runtime_dir__ensure(s->path, err, errlen);
		if (r < 0)
			return r;
	}
	r = control__claim_path(s, err, errlen);
	if (r < 0)
		return r;

	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return r;
	}
	memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
	if (bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot bind %s: %s", s->path, strerror(errno));
		goto err_close;
	}
	if (chmod(s->path, 0600) < 0 || listen(s->listen_fd, 16) < 0 || stat(s->path, &sb) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot set up %s: %s", s->path, strerror(errno));
		goto err_unlink;
	}
	s->sock_dev = sb.st_dev;
	s->sock_ino = sb.st_ino;

	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->wake_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto err_unlink;
	}
	r = -pthread_mutex_init(&s->lock, NULL);
	if (r) {
		snprintf(err, errlen, "mutex: %s", strerror(-r));
		goto err_wake;
	}
	r = defrag_job__init(&s->job, host->mm, host->step_ops, &hooks);
	if (r) {
		snprintf(err, errlen, "defrag job: %s", strerror(-r));
		goto err_mutex;
	}
	r = defragd__init(&s->defragd, &s->job);
	if (r) {
		snprintf(err, errlen, "defragd: %s", strerror(-r));
		goto err_job;
	}
	r = defragd__check_policy(&cfg->defrag, err, errlen);
	if (r)
		goto err_defragd;
	r = defragd__start(&s->defragd, host, &cfg->defrag);
	if (r) {
		snprintf(err, errlen, "cannot start defragd: %s", strerror(-r));
		goto err_defragd;
	}
	r = -pthread_create(&s->thread, NULL, control__thread, s);
	if (r) {
		snprintf(err, errlen, "cannot start the control thread: %s", strerror(-r));
		goto err_defragd;
	}
	s->thread_started = true;
	return 0;

err_defragd:
	defragd__exit(&s->defragd);
err_job:
	defrag_job__exit(&s->job);
err_mutex:
	pthread_mutex_destroy(&s->lock);
err_wake:
	close(s->wake_fd);
	s->wake_fd = -1;
err_unlink:
	unlink(s->path);
err_close:
	close(s->listen_fd);
	s->listen_fd = -1;
	return r;
}

void control__destroy(struct control_server *s, const char *reason)
{
	struct control_event *ev, *next;
	struct json_object *d;
	struct stat sb;
	uint64_t id;
	unsigned i;

	if (!s->thread_started)
		return;

	pthread_mutex_lock(&s->lock);
	s->closing = true;
	pthread_mutex_unlock(&s->lock);

	defragd__stop(&s->defragd);
	if (defrag_job__cancel(&s->job, &id) == 0)
		defrag_job__wait(&s->job, id, NULL);

	d = json_object_new_object();
	if (!reason)
		reason = s->stop_requested ? "host-qmp-stop" : "host";
	jadd_str(d, "reason", reason);
	control__emit(s, "SHUTDOWN", d);

	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	s->shutdown_sent = true;
	pthread_mutex_unlock(&s->lock);
	control__wake(s);
	pthread_join(s->thread, NULL);
	s->thread_started = false;

	defragd__exit(&s->defragd);
	defrag_job__exit(&s->job);

	for (i = 0; i < s->nr_conns; i++)
		conn__free(s->conns[i]);
	s->nr_conns = 0;
	for (ev = s->ev_head; ev; ev = next) {
		next = ev->next;
		free(ev);
	}
	s->ev_head = s->ev_tail = NULL;

	/* Only unlink our own socket: a new VM may have taken the name meanwhile. */
	if (stat(s->path, &sb) == 0 && sb.st_dev == s->sock_dev && sb.st_ino == s->sock_ino)
		unlink(s->path);
	close(s->listen_fd);
	close(s->wake_fd);
	s->listen_fd = s->wake_fd = -1;
	pthread_mutex_destroy(&s->lock);
}
