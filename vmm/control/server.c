/* server.c: the QMP-style control socket's server: one poll thread, json-c framing, events, connections. */

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

#include "vmm/control/control.h"
#include "vmm/control/internal.h"
#include "vmm/json.h"
#include "vmm/util.h"
#include "vmm/mm_json.h"

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
/* Invalid UTF-8 is a parse error: whatever we echo (ids, names) stays valid JSON. */
#define CONTROL_TOKENER_FLAGS (JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS | \
			       JSON_TOKENER_VALIDATE_UTF8)

struct control_conn {
	int fd;
	uid_t uid;
	pid_t pid;
	json_tokener *tok;
	size_t msg_bytes;      /* bytes of the message being parsed */
	bool discard_line;     /* after a parse error: drop input up to the next newline */
	bool read_closed;      /* EOF or fatal protocol error: close once output is flushed */
	bool dead;             /* write failed or too much unread output: close now */
	uint64_t last_active_ns; /* connected or last sent us something: the idlest is evicted first */
	char *out;
	size_t out_off, out_len, out_cap;
};

struct control_event {
	struct control_event *next;
	size_t len;
	char line[];
};

void control_config__init(struct control_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->allowed_uid = geteuid();
	cfg->allow_root = true;
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
	json__add_str(o, "event", event);
	json__add(o, "data", data ? data : json_object_new_object());
	json_object_object_add(ts, "seconds", json_object_new_int64(tv.tv_sec));
	json_object_object_add(ts, "microseconds", json_object_new_int64(tv.tv_usec));
	json__add(o, "timestamp", ts);

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

static struct json_object *job_info__event_data(const struct defrag_job_info *info)
{
	struct json_object *o = json_object_new_object();

	json__add_u64(o, "job-id", info->id);
	json__add_str(o, "origin", defrag_origin_names[info->origin]);
	return o;
}

static void control__job_progress(void *ctx, const struct defrag_job_info *info)
{
	struct control_server *s = ctx;
	struct json_object *d = job_info__event_data(info);

	json__add_u64(d, "done", info->done);
	json__add_u64(d, "total", info->total);
	control__emit(s, "DEFRAG_PROGRESS", d);
}

static void control__job_finish(void *ctx, const struct defrag_job_info *info)
{
	struct control_server *s = ctx;
	struct json_object *d = job_info__event_data(info);

	json__add_str(d, "state", defrag_job_state_names[info->state]);
	if (info->state == DEFRAG_JOB_FAILED)
		json__add_str(d, "error", defrag_job_info__error(info));
	json__add_u64(d, "done", info->done);
	json__add_u64(d, "total", info->total);
	json__add(d, "result", mm_json__defrag_stats(&info->stats));
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

static void conn__reply_error(struct control_server *s, struct control_conn *c,
			      const struct cmd_error *e, struct json_object *id)
{
	struct json_object *o = json_object_new_object(), *err = json_object_new_object();

	json__add_str(err, "class", e->cls);
	json__add_str(err, "desc", e->desc);
	json__add(o, "error", err);
	if (id)
		json__add(o, "id", json_object_get(id));
	conn__send(s, c, o);
	json_object_put(o);
	pthread_mutex_lock(&s->lock);
	s->counters.errors++;
	pthread_mutex_unlock(&s->lock);
}



static void conn__dispatch(struct control_server *s, struct control_conn *c, struct json_object *req)
{
	struct json_object *id = NULL, *exec = NULL, *args = NULL, *ret = NULL, *reply;
	const struct control_command *cmd;
	struct cmd_error e = { NULL, "" };

	pthread_mutex_lock(&s->lock);
	s->counters.commands++;
	pthread_mutex_unlock(&s->lock);

	if (!json__strings_utf8_valid(req)) {
		cmd_error__set(&e, "GenericError", "JSON parse error: invalid UTF-8 in a string");
		goto error;   /* and no id: it may be the invalid string */
	}
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
	cmd = NULL;
	if ((size_t)json_object_get_string_len(exec) == strlen(json_object_get_string(exec)))
		cmd = control_command__find(json_object_get_string(exec));
	if (!cmd) {
		char name[128];

		cmd_error__set(&e, "CommandNotFound", "The command %s has not been found",
			       cmd_error__printable(name, sizeof(name), json_object_get_string(exec),
						    (size_t)json_object_get_string_len(exec)));
		goto error;
	}
	if (control_command__run(cmd, s, args, &ret, &e) < 0) {
		if (ret)
			json_object_put(ret);
		goto error;
	}

	reply = json_object_new_object();
	json__add(reply, "return", ret ? ret : json_object_new_object());
	if (id)
		json__add(reply, "id", json_object_get(id));
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
		c->last_active_ns = util__now_ns();
		conn__input(s, c, buf, (size_t)r);
	}
}

static void control__write_refusal(int fd, const char *desc)
{
	struct json_object *o = json_object_new_object(), *err = json_object_new_object();
	size_t n;
	char *line;

	json__add_str(err, "class", "GenericError");
	json__add_str(err, "desc", desc);
	json__add(o, "error", err);
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
	json__add(ver, "vmcompact", v);
	json__add_str(ver, "package", "vmcompact " VMC_VERSION);
	json__add(q, "version", ver);
	json__add(q, "capabilities", json_object_new_array());
	json__add(o, "QMP", q);
	return o;
}

/*
 * Every client is the VM's owner (or root), so a full table must not lock the owner
 * out: the connection that has been quiet the longest makes room, and is told why.
 */
static void control__evict_idlest(struct control_server *s)
{
	struct control_conn *c;
	unsigned i, idlest = 0;
	char desc[160];

	for (i = 1; i < s->nr_conns; i++)
		if (s->conns[i]->last_active_ns < s->conns[idlest]->last_active_ns)
			idlest = i;
	c = s->conns[idlest];
	conn__flush(c);
	snprintf(desc, sizeof(desc), "disconnected: the VM has %d clients (the limit) and this one "
		 "was idle the longest", CONTROL_MAX_CLIENTS);
	if (!conn__pending(c))
		control__write_refusal(c->fd, desc);
	conn__free(c);
	s->conns[idlest] = s->conns[--s->nr_conns];
	pthread_mutex_lock(&s->lock);
	s->counters.evicted++;
	pthread_mutex_unlock(&s->lock);
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
		if (s->nr_conns == CONTROL_MAX_CLIENTS)
			control__evict_idlest(s);
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->last_active_ns = util__now_ns();
		c->uid = cred.uid;
		c->pid = cred.pid;
		c->tok = json_tokener_new();
		if (!c->tok) {
			conn__free(c);
			continue;
		}
		json_tokener_set_flags(c->tok, CONTROL_TOKENER_FLAGS);
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
			uint64_t now = util__now_ns();

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
		/* after the polled connections: accepting may evict (free) one of them */
		if (listen_idx && (pfd[listen_idx].revents & POLLIN))
			control__accept(s);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* start / destroy */



/* s->name and s->path from the host's name, the config's name or path, or vm-PID. */
static int control__choose_path(struct control_server *s, const struct control_config *cfg,
				char *err, size_t errlen)
{
	const char *name = s->host->name ? s->host->name : cfg->name;
	int r;

	if (name && (r = control__check_name(name, err, errlen)) < 0 && (!cfg->path || r == -ENAMETOOLONG))
		return r;   /* never cut a name: two long names would share a socket */
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
		return 0;
	}
	r = control__socket_path(s->name, s->path, sizeof(s->path), err, errlen);
	return r < 0 ? r : control__ensure_runtime_dir(s->path, err, errlen);
}

/* Bind s->path (0600) and listen; remember which file it is, to unlink only ours. */
static int control__listen(struct control_server *s, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	int r;

	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
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
		unlink(s->path);
		goto err_close;
	}
	s->sock_dev = sb.st_dev;
	s->sock_ino = sb.st_ino;
	return 0;

err_close:
	close(s->listen_fd);
	s->listen_fd = -1;
	return r;
}

int control__start(struct control_server *s, struct vmm_host *host,
		   const struct control_config *cfg, char *err, size_t errlen)
{
	struct defrag_job_hooks hooks = {
		.on_progress = control__job_progress,
		.on_finish = control__job_finish,
		.ctx = s,
	};
	int r;

	memset(s, 0, sizeof(*s));
	s->listen_fd = s->wake_fd = -1;
	s->host = host;
	s->cfg = *cfg;
	s->start_ns = util__now_ns();
	if (!host || !host->mm || !host->defrag_started) {
		snprintf(err, errlen, "control: no guest memory or defrag runner to control");
		return -EINVAL;
	}
	r = control__choose_path(s, cfg, err, errlen);
	if (r < 0)
		return r;
	r = control__claim_path(s, err, errlen);
	if (r < 0)
		return r;
	r = control__listen(s, err, errlen);
	if (r < 0)
		return r;
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
	defrag_job__set_hooks(&host->job, &hooks);
	r = -pthread_create(&s->thread, NULL, control__thread, s);
	if (r) {
		snprintf(err, errlen, "cannot start the control thread: %s", strerror(-r));
		defrag_job__set_hooks(&host->job, NULL);
		goto err_mutex;
	}
	s->thread_started = true;
	return 0;

err_mutex:
	pthread_mutex_destroy(&s->lock);
err_wake:
	close(s->wake_fd);
	s->wake_fd = -1;
err_unlink:
	unlink(s->path);
	close(s->listen_fd);
	s->listen_fd = -1;
	return r;
}

void control__destroy(struct control_server *s, const char *reason)
{
	struct control_event *ev, *next;
	struct json_object *d;
	struct stat sb;
	unsigned i;

	if (!s->thread_started)
		return;

	pthread_mutex_lock(&s->lock);
	s->closing = true;
	pthread_mutex_unlock(&s->lock);

	/* From here on the VM's defrag work (which its owner may have cancelled) reports to nobody. */
	defrag_job__set_hooks(&s->host->job, NULL);
	d = json_object_new_object();
	if (!reason)
		reason = s->stop_requested ? "host-qmp-stop" : "host";
	json__add_str(d, "reason", reason);
	if (s->host->add_status) {
		/* the guest's final word (exit status, verify errors, passes) for `vmcompact stop` */
		struct json_object *g = json_object_new_object();

		s->host->add_status(s->host->ctx, g);
		json__add(d, "guest", g);
	}
	control__emit(s, "SHUTDOWN", d);

	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	s->shutdown_sent = true;
	pthread_mutex_unlock(&s->lock);
	control__wake(s);
	pthread_join(s->thread, NULL);
	s->thread_started = false;

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

/* ------------------------------------------------------------------ */
/* in memory: the protocol without a socket or a thread (fuzzing, tests) */

int control__init_detached(struct control_server *s, struct vmm_host *host, const char *name)
{
	memset(s, 0, sizeof(*s));
	s->listen_fd = s->wake_fd = -1;
	s->host = host;
	control_config__init(&s->cfg);
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->path, sizeof(s->path), "(in memory)");
	s->start_ns = util__now_ns();
	return -pthread_mutex_init(&s->lock, NULL);
}

void control__fini_detached(struct control_server *s)
{
	pthread_mutex_destroy(&s->lock);
}

char *control__feed(struct control_server *s, const void *in, size_t n, size_t chunk, size_t *outlen)
{
	struct control_conn c = { .fd = -1 };
	struct json_object *greeting;
	char *out;

	c.tok = json_tokener_new();
	if (!c.tok)
		return NULL;
	json_tokener_set_flags(c.tok, CONTROL_TOKENER_FLAGS);
	greeting = control__greeting();
	conn__send(s, &c, greeting);
	json_object_put(greeting);
	if (!chunk || chunk > CONTROL_READ_CHUNK)
		chunk = CONTROL_READ_CHUNK;
	/* in pieces, as recv() hands them to conn__read */
	for (size_t off = 0; off < n && !c.read_closed && !c.dead; off += chunk)
		conn__input(s, &c, (const char *)in + off, n - off < chunk ? n - off : chunk);
	json_tokener_free(c.tok);
	out = c.out;
	*outlen = c.out_len - c.out_off;
	if (out && c.out_off)
		memmove(out, out + c.out_off, *outlen);
	return out ? out : calloc(1, 1);
}
