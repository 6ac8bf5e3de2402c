/* qmp.h: a QEMU Machine Protocol client over a unix socket (greeting, qmp_capabilities, commands). */
#ifndef VMC_VMM_QEMU_QMP_H
#define VMC_VMM_QEMU_QMP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "vmm/json.h"

struct json_object;

struct qemu_qmp {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct json_stream in;   /* replies and events as they arrive */
	uint64_t next_id;
	int timeout_ms;
	pid_t peer_pid;          /* QEMU's PID from SO_PEERCRED, 0 if unknown */
};

/*
 * Connect to QEMU's QMP socket, read the greeting and leave capabilities
 * negotiation mode. 0, or -ENOENT (no socket), -ECONNREFUSED (nobody
 * listening), -EACCES, -EPROTO (not a QMP server), -ETIMEDOUT, with err set.
 */
int qemu_qmp__connect(struct qemu_qmp *q, const char *path, int timeout_ms, char *err, size_t errlen);
/*
 * Run one command; args is consumed (may be NULL). *ret: the "return" value
 * (caller puts it). -EREMOTEIO: QEMU answered an error (its desc in err).
 * Events arriving meanwhile are dropped.
 */
int qemu_qmp__execute(struct qemu_qmp *q, const char *command, struct json_object *args,
		      struct json_object **ret, char *err, size_t errlen);
void qemu_qmp__close(struct qemu_qmp *q);

/*
 * One QMP reply object (as text, e.g. from libvirt's monitor passthrough) to
 * its "return" value: 0, -EREMOTEIO (an "error" reply) or -EPROTO.
 */
int qemu_qmp__parse_reply(const char *text, struct json_object **ret, char *err, size_t errlen);
/* The QMP command object {"execute": command, "arguments": args} as text; args is consumed. */
char *qemu_qmp__command_text(const char *command, struct json_object *args);

#endif
