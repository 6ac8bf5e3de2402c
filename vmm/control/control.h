/* control.h: the VM's QMP-style control socket: server thread, command table, events. */
#ifndef VMC_VMM_CONTROL_H
#define VMC_VMM_CONTROL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "vmm/host.h"

struct json_object;

struct control_config {
	const char *name;            /* VM name: socket <runtime dir>/NAME.sock */
	const char *path;            /* explicit socket path; overrides the name's */
	uid_t allowed_uid;           /* SO_PEERCRED uid that may connect; default geteuid() */
	bool allow_root;             /* uid 0 may always connect; default true */
};

#define CONTROL_RUNTIME_DIR "/run/vmcompact"
#define CONTROL_RUNTIME_DIR_ENV "VMCOMPACT_RUNTIME_DIR"
#define CONTROL_NAME_MAX 64
#define CONTROL_MAX_CLIENTS 64          /* more: the idlest client is disconnected */
#define CONTROL_MAX_MSG (64 * 1024)        /* one request; more is "message too large" */
#define CONTROL_MAX_OUTPUT (8 * 1024 * 1024) /* unread output before a client is dropped */

struct control_conn;
struct control_event;

struct control_counters {
	uint64_t accepted, refused_uid, evicted, commands, errors, dropped_slow;
};

struct control_server {
	struct vmm_host *host;
	struct control_config cfg;
	char name[CONTROL_NAME_MAX + 1];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char note[PATH_MAX + 128];   /* e.g. "replaced stale socket ..." ("" if none) */
	dev_t sock_dev;
	ino_t sock_ino;
	int listen_fd, wake_fd;
	uint64_t start_ns;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;        /* events queue, closing/stopping, counters */
	struct control_event *ev_head, *ev_tail;
	bool closing;                /* control__destroy began: refuse new work */
	bool stopping;               /* server thread: flush and exit */
	bool shutdown_sent;
	bool stop_requested;
	struct control_counters counters;

	/* owned by the server thread */
	struct control_conn *conns[CONTROL_MAX_CLIENTS];
	unsigned nr_conns;

};

void control_config__init(struct control_config *cfg);

/*
 * Create the socket (replacing a stale one, refusing a live one with the same
 * name) and start the server thread. host's defrag job and defragd must be
 * running (vmm_host__start_defrag); the server reports the job's events.
 */
int control__start(struct control_server *s, struct vmm_host *host,
		   const struct control_config *cfg, char *err, size_t errlen);
/*
 * Stop reporting the VM's defrag work, send SHUTDOWN {"reason": reason} to every
 * client, flush, close and unlink the socket. The VM's owner cancels its defrag
 * work first (vmm_host__cancel_defrag) when the VM is going away, so that clients
 * see DEFRAG_CANCELLED before SHUTDOWN. Not from a control hook.
 */
void control__destroy(struct control_server *s, const char *reason);

/* Send an event to every client; data is consumed (NULL: {}). Any thread. */
void control__emit(struct control_server *s, const char *event, struct json_object *data);

/* --- shared with the client side --- */

/* $VMCOMPACT_RUNTIME_DIR or /run/vmcompact. */
const char *control__runtime_dir(void);
/* [A-Za-z0-9][A-Za-z0-9._-]*, at most CONTROL_NAME_MAX. */
bool control__valid_name(const char *name);
/* The same, with the reason in err: 0, -ENAMETOOLONG (more than CONTROL_NAME_MAX) or -EINVAL. */
int control__check_name(const char *name, char *err, size_t errlen);
/*
 * A VM name or a socket path (anything with a '/') -> socket path.
 * 0 or -EINVAL / -ENAMETOOLONG with a message.
 */
int control__socket_path(const char *name_or_path, char *out, size_t outlen,
			 char *err, size_t errlen);

#endif
