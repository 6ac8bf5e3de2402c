/* qmp.c: QMP client for QEMU's monitor socket: greeting, capabilities negotiation, one command at a time. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vmm/json.h"
#include "vmm/qemu/qmp.h"
#include "vmm/util.h"

#define QMP_DEFAULT_TIMEOUT_MS 10000



/* Next complete JSON value from the socket: 0, -ETIMEDOUT, -ECONNRESET, -EPROTO. */
static int qmp__read(struct qemu_qmp *q, struct json_object **out, char *err, size_t errlen)
{
	int r = json_stream__next(&q->in, q->timeout_ms, out);

	if (r == -EPROTO)
		snprintf(err, errlen, "%s: not QMP (%s)", q->path, q->in.error);
	else if (r == -ETIMEDOUT)
		snprintf(err, errlen, "QEMU did not answer on %s within %d ms", q->path, q->timeout_ms);
	else if (r == -ECONNRESET)
		snprintf(err, errlen, "QEMU closed the monitor connection %s", q->path);
	else if (r < 0)
		snprintf(err, errlen, "reading %s: %s", q->path, strerror(-r));
	return r;
}

static int qmp__connect_errno(int e, const char *path, char *err, size_t errlen)
{
	switch (e) {
	case ENOENT:
		snprintf(err, errlen, "no QMP socket at %s", path);
		return -ENOENT;
	case ECONNREFUSED:
		snprintf(err, errlen, "nobody listens on %s (QEMU exited, or another client holds "
			 "its only QMP connection)", path);
		return -ECONNREFUSED;
	case EACCES:
	case EPERM:
		snprintf(err, errlen, "permission denied on %s", path);
		return -EACCES;
	default:
		snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(e));
		return -e;
	}
}

/* Greeting, then qmp_capabilities. */
static int qmp__handshake(struct qemu_qmp *q, char *err, size_t errlen)
{
	struct json_object *msg = NULL, *ret = NULL, *v;
	int r = qmp__read(q, &msg, err, errlen);

	if (r == -ETIMEDOUT)
		snprintf(err, errlen, "%s sent no QMP greeting (another client may hold QEMU's "
			 "only QMP connection)", q->path);
	if (r < 0)
		return r == -ECONNRESET ? -ECONNREFUSED : r;
	if (!json_object_object_get_ex(msg, "QMP", &v)) {
		snprintf(err, errlen, "%s is not a QEMU QMP socket", q->path);
		json_object_put(msg);
		return -EPROTO;
	}
	json_object_put(msg);
	r = qemu_qmp__execute(q, "qmp_capabilities", NULL, &ret, err, errlen);
	json_object_put(ret);
	return r;
}

int qemu_qmp__connect(struct qemu_qmp *q, const char *path, int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	int r;

	memset(q, 0, sizeof(*q));
	q->fd = -1;
	q->next_id = 1;
	q->timeout_ms = timeout_ms > 0 ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "QMP socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	snprintf(q->path, sizeof(q->path), "%s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q->fd < 0 || json_stream__init(&q->in, q->fd)) {
		r = -ENOMEM;
		snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
		goto fail;
	}
	if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = qmp__connect_errno(errno, path, err, errlen);
		goto fail;
	}
	if (getsockopt(q->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		q->peer_pid = cred.pid;
	r = qmp__handshake(q, err, errlen);
	if (r < 0)
		goto fail;
	return 0;
fail:
	qemu_qmp__close(q);
	return r;
}

char *qemu_qmp__command_text(const char *command, struct json_object *args)
{
	size_t len;
	char *text = json__qmp_command(command, args, -1, &len);

	if (text)
		text[len - 1] = '\0';  /* libvirt takes the object without the newline */
	return text;
}

/* A reply object to its "return" value. */
static int qmp__reply_value(struct json_object *msg, struct json_object **ret, char *err,
			    size_t errlen)
{
	struct json_object *v, *d;

	if (json_object_object_get_ex(msg, "error", &v)) {
		snprintf(err, errlen, "QEMU: %s", json_object_object_get_ex(v, "desc", &d) ?
			 json_object_get_string(d) : "error");
		return -EREMOTEIO;
	}
	if (!json_object_object_get_ex(msg, "return", &v)) {
		snprintf(err, errlen, "QMP reply without a return value");
		return -EPROTO;
	}
	*ret = json_object_get(v);
	return 0;
}

int qemu_qmp__parse_reply(const char *text, struct json_object **ret, char *err, size_t errlen)
{
	struct json_object *msg = json_tokener_parse(text);
	int r;

	*ret = NULL;
	if (!msg || !json_object_is_type(msg, json_type_object)) {
		snprintf(err, errlen, "not a QMP reply: %.80s", text);
		json_object_put(msg);
		return -EPROTO;
	}
	r = qmp__reply_value(msg, ret, err, errlen);
	json_object_put(msg);
	return r;
}

int qemu_qmp__execute(struct qemu_qmp *q, const char *command, struct json_object *args,
		      struct json_object **ret, char *err, size_t errlen)
{
	struct json_object *msg, *v;
	uint64_t id = q->next_id++;
	size_t len;
	char *line;
	int r;

	*ret = NULL;
	line = json__qmp_command(command, args, (int64_t)id, &len);
	if (!line) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = util__send_all(q->fd, line, len);
	free(line);
	if (r) {
		snprintf(err, errlen, "cannot send to %s: %s", q->path, strerror(-r));
		return r;
	}
	for (;;) {
		r = qmp__read(q, &msg, err, errlen);
		if (r < 0)
			return r;
		if (json_object_object_get_ex(msg, "event", &v) ||
		    (json_object_object_get_ex(msg, "id", &v) &&
		     (uint64_t)json_object_get_int64(v) != id)) {
			json_object_put(msg);
			continue;
		}
		r = qmp__reply_value(msg, ret, err, errlen);
		json_object_put(msg);
		return r;
	}
}

void qemu_qmp__close(struct qemu_qmp *q)
{
	json_stream__free(&q->in);
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
}
