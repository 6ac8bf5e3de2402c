/* client.h: the client side of a VM's control socket, and the exit codes of the commands built on it. */
#ifndef VMC_VMM_CONTROL_CLIENT_H
#define VMC_VMM_CONTROL_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "vmm/json.h"

struct json_object;
struct qmp_client_event;

/* Exit codes of the commands below (also listed in their --help). */
enum {
	CLI_OK = 0,
	CLI_FAILED = 1,        /* server error, failed or cancelled job, lost connection */
	CLI_USAGE = 2,
	CLI_NO_VM = 3,         /* no socket for that name */
	CLI_STALE = 4,         /* socket exists, nobody listening */
	CLI_DENIED = 5,        /* permission denied */
	CLI_FORCED = 6,        /* stop: the guest did not stop in time and was force-stopped */
	CLI_GUEST_ERROR = 7,   /* stop: the guest ended with a non-zero status (e.g. 10: corruption) */
};

struct qmp_client {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct json_stream in;            /* replies and events as they arrive */
	struct qmp_client_event *ev_head, *ev_tail;
	struct json_object *greeting;
	uint64_t next_id;
	int timeout_ms;                   /* per reply; default 30 s */
	char error_class[64];             /* class of the last error reply */
};

/*
 * Connect to a VM by name or socket path and read the greeting. Returns 0, or
 * -ENOENT (no such VM), -ECONNREFUSED (stale socket), -EACCES (permission
 * denied), -EBUSY (a live VM refused the connection), -ETIMEDOUT, -EPROTO, ... with
 * a message in err.
 */
int qmp_client__connect(struct qmp_client *c, const char *name_or_path, int timeout_ms,
			char *err, size_t errlen);
/*
 * Run one command. args is consumed (may be NULL). On success *ret holds the
 * "return" value (caller puts it). -EREMOTEIO: the server answered an error,
 * its desc is in err and its class in c->error_class. Events that arrive
 * meanwhile are queued for qmp_client__next_event.
 */
int qmp_client__execute(struct qmp_client *c, const char *command, struct json_object *args,
			struct json_object **ret, char *err, size_t errlen);
/* Next event ({"event":..., "data":...}); timeout_ms < 0 waits forever. 0, -ETIMEDOUT, -ECONNRESET. */
int qmp_client__next_event(struct qmp_client *c, int timeout_ms, struct json_object **event,
			   char *err, size_t errlen);
void qmp_client__close(struct qmp_client *c);

/* Map a qmp_client__connect error to a CLI exit code. */
int cli__exit_code(int err);


#endif
