/* internal.h: what the control server and its command table share, and nobody else. */
#ifndef VMC_VMM_CONTROL_INTERNAL_H
#define VMC_VMM_CONTROL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

struct control_server;
struct control_command;
struct json_object;

/* A QMP error: class ("GenericError", "CommandNotFound") and description. */
struct cmd_error {
	const char *cls;
	char desc[512];
};

/* Fill e; returns -1 so a command can `return cmd_error__set(...)`. */
int cmd_error__set(struct cmd_error *e, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* src[0..len) for an error text: control characters (NUL too) as \uXXXX, cut to fit dst. */
const char *cmd_error__printable(char *dst, size_t dstlen, const char *src, size_t len);
/* The command named `name`, or NULL. */
const struct control_command *control_command__find(const char *name);
/* Check args against the command's spec and run it: 0 with *ret (may stay NULL: {}), or -1 with e. */
int control_command__run(const struct control_command *cmd, struct control_server *s,
			 struct json_object *args, struct json_object **ret, struct cmd_error *e);

/*
 * The protocol in memory, for fuzzing and tests: a server with no socket and no thread
 * (its host must have started defrag: vmm_host__start_defrag), and one client's bytes fed
 * through the framing and the command table in pieces of `chunk` bytes (0: as recv would),
 * in this thread. Returns what the server would send (greeting first; malloc'd, *outlen
 * bytes), or NULL when out of memory.
 */
int control__init_detached(struct control_server *s, struct vmm_host *host, const char *name);
void control__fini_detached(struct control_server *s);
char *control__feed(struct control_server *s, const void *in, size_t n, size_t chunk, size_t *outlen);

/* path.c: the directory of path exists and is private (0700, ours), or is created so. */
int control__ensure_runtime_dir(const char *path, char *err, size_t errlen);
/* A socket file at s->path: refuse it if a VM listens there, else remove it (s->note says so). */
int control__claim_path(struct control_server *s, char *err, size_t errlen);

#endif
