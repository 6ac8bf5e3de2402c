/* client.c: the client side of a VM's control socket: connect, execute a command, read events. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "mm/buddy.h"
#include "vmm/control/control.h"
#include "vmm/control/client.h"
#include "vmm/json.h"
#include "vmm/util.h"

#define QMP_CLIENT_TIMEOUT_MS 30000

struct qmp_client_event {
	struct qmp_client_event *next;
	struct json_object *obj;
};

/* ------------------------------------------------------------------ */
/* protocol */

/* Next complete JSON value from the socket. timeout_ms < 0: forever.
 * 0, -ETIMEDOUT, -ECONNRESET (closed), -EPROTO (not JSON). */
static int qmp_client__read(struct qmp_client *c, int timeout_ms, struct json_object **out,
			    char *err, size_t errlen)
{
	int r = json_stream__next(&c->in, timeout_ms, out);

	if (r == -EPROTO)
		snprintf(err, errlen, "bad reply from %s: %s", c->path, c->in.error);
	else if (r == -ETIMEDOUT)
		snprintf(err, errlen, "no answer from %s within %d ms", c->path, timeout_ms);
	else if (r == -ECONNRESET)
		snprintf(err, errlen, "the VM closed the connection (%s)", c->path);
	else if (r < 0)
		snprintf(err, errlen, "reading from %s: %s", c->path, strerror(-r));
	return r;
}

static void qmp_client__queue_event(struct qmp_client *c, struct json_object *obj)
{
	struct qmp_client_event *ev = calloc(1, sizeof(*ev));

	if (!ev) {
		json_object_put(obj);
		return;
	}
	ev->obj = obj;
	if (c->ev_tail)
		c->ev_tail->next = ev;
	else
		c->ev_head = ev;
	c->ev_tail = ev;
}

int qmp_client__connect(struct qmp_client *c, const char *name_or_path, int timeout_ms,
			char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	bool by_path = strchr(name_or_path, '/') != NULL;
	struct json_object *msg = NULL, *e;
	int r;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->next_id = 1;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : QMP_CLIENT_TIMEOUT_MS;
	r = control__socket_path(name_or_path, c->path, sizeof(c->path), err, errlen);
	if (r < 0)
		return r;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		switch (errno) {
		case ENOENT:
			if (by_path)
				snprintf(err, errlen, "no VM control socket at %s", c->path);
			else
				snprintf(err, errlen, "no VM named '%s' (no socket %s)", name_or_path,
					 c->path);
			break;
		case ECONNREFUSED:
			snprintf(err, errlen, "VM '%s' is not running: stale socket %s (nobody is "
				 "listening; a VM started with that name replaces it)", name_or_path,
				 c->path);
			break;
		case EACCES:
		case EPERM:
			r = -EACCES;
			snprintf(err, errlen, "permission denied on %s (the VM belongs to another user)",
				 c->path);
			break;
		default:
			snprintf(err, errlen, "cannot connect to %s: %s", c->path, strerror(errno));
		}
		goto fail;
	}
	r = json_stream__init(&c->in, c->fd);
	if (r < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	r = qmp_client__read(c, c->timeout_ms, &msg, err, errlen);
	if (r < 0)
		goto fail;
	if ((e = json_path(msg, "error"))) {
		const char *desc = json_path_string(e, "desc", "refused");

		snprintf(err, errlen, "%s: %s", c->path, desc);
		/* refused by a live VM: never "stale" (that is for sockets nobody listens on) */
		r = strncmp(desc, "permission denied", 17) == 0 ? -EACCES : -EBUSY;
		goto fail;
	}
	if (!json_path(msg, "QMP")) {
		snprintf(err, errlen, "%s does not speak the vmcompact control protocol", c->path);
		r = -EPROTO;
		goto fail;
	}
	c->greeting = msg;
	return 0;
fail:
	if (msg)
		json_object_put(msg);
	qmp_client__close(c);
	return r;
}

int qmp_client__execute(struct qmp_client *c, const char *command, struct json_object *args,
			struct json_object **ret, char *err, size_t errlen)
{
	struct json_object *msg, *v;
	uint64_t id = c->next_id++;
	size_t len;
	char *line;
	int r;

	*ret = NULL;
	c->error_class[0] = '\0';
	/* One write: the server may act (e.g. stop and close) as soon as the object is complete. */
	line = json__qmp_command(command, args, (int64_t)id, &len);
	if (!line) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = util__send_all(c->fd, line, len);
	free(line);
	if (r) {
		snprintf(err, errlen, "cannot send to %s: %s", c->path, strerror(-r));
		return r;
	}

	for (;;) {
		r = qmp_client__read(c, c->timeout_ms, &msg, err, errlen);
		if (r < 0)
			return r;
		if (json_path(msg, "event")) {
			qmp_client__queue_event(c, msg);
			continue;
		}
		v = json_path(msg, "id");
		if (v && (uint64_t)json_object_get_int64(v) != id) {
			json_object_put(msg);   /* an answer to someone else's request */
			continue;
		}
		if ((v = json_path(msg, "error"))) {
			snprintf(c->error_class, sizeof(c->error_class), "%s",
				 json_path_string(v, "class", "GenericError"));
			snprintf(err, errlen, "%s", json_path_string(v, "desc", "unknown error"));
			json_object_put(msg);
			return -EREMOTEIO;
		}
		if (!(v = json_path(msg, "return"))) {
			snprintf(err, errlen, "bad reply from %s", c->path);
			json_object_put(msg);
			return -EPROTO;
		}
		*ret = json_object_get(v);
		json_object_put(msg);
		return 0;
	}
}

int qmp_client__next_event(struct qmp_client *c, int timeout_ms, struct json_object **event,
			   char *err, size_t errlen)
{
	struct json_object *msg;
	int r;

	for (;;) {
		if (c->ev_head) {
			struct qmp_client_event *ev = c->ev_head;

			c->ev_head = ev->next;
			if (!c->ev_head)
				c->ev_tail = NULL;
			*event = ev->obj;
			free(ev);
			return 0;
		}
		r = qmp_client__read(c, timeout_ms, &msg, err, errlen);
		if (r < 0)
			return r;
		if (json_path(msg, "event"))
			qmp_client__queue_event(c, msg);
		else
			json_object_put(msg);
	}
}

void qmp_client__close(struct qmp_client *c)
{
	struct qmp_client_event *ev, *next;

	for (ev = c->ev_head; ev; ev = next) {
		next = ev->next;
		json_object_put(ev->obj);
		free(ev);
	}
	c->ev_head = c->ev_tail = NULL;
	if (c->greeting)
		json_object_put(c->greeting);
	c->greeting = NULL;
	json_stream__free(&c->in);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

int cli__exit_code(int err)
{
	switch (err) {
	case 0: return CLI_OK;
	case -ENOENT: return CLI_NO_VM;
	case -ECONNREFUSED: return CLI_STALE;
	case -EACCES: return CLI_DENIED;
	case -EINVAL: case -ENAMETOOLONG: return CLI_USAGE;
	default: return CLI_FAILED;
	}
}
