/* harness.h: control-plane test rig: a real small struct mm, a fake VM host, the server, a raw client. */
#ifndef VMC_TESTS_CONTROL_HARNESS_H
#define VMC_TESTS_CONTROL_HARNESS_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "mm/defrag.h"
#include "mm/mm.h"
#include "vmm/control/control.h"
#include "vmm/json.h"
#include "vmm/mm_json.h"
#include "tests/check.h"

/* The fake VMM around the server: what run.c does for a real VM. */
struct harness {
	char dir[PATH_MAX];            /* private runtime dir ($VMCOMPACT_RUNTIME_DIR) */
	char name[64];
	struct mm mm;
	bool mm_live;
	struct mm_step_ops ops;
	struct vmm_host host;
	struct control_server srv;
	bool srv_live;

	/* fake vCPU pause/resume */
	_Atomic int pause_delay_us;    /* sleep in pause(): makes jobs slow enough to watch */
	_Atomic int pause_error;       /* pause() returns this (-errno) when non-zero */
	_Atomic int gate_closed;       /* pause() blocks while set: holds a job in its first step */
	_Atomic int at_gate;           /* a pause() is waiting at the closed gate */
	uint64_t pauses, resumes;      /* atomics */
	void (*on_pause)(struct harness *h); /* called in each pause(), on the job's thread */

	/* fake VMM main loop: request_stop -> control__destroy from another thread */
	pthread_t main_thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop_requested, destroyed, quit;
	bool destroying;               /* the fake main loop is tearing down after `stop` */
	unsigned stop_delay_ms;        /* the fake main loop acts on `stop` this much later */
	/* what the fake guest reports when it has ended (SHUTDOWN's "guest") */
	int guest_exit_status;
	bool guest_forced;
	uint64_t guest_verify_errors;
	char status[16];
};

struct harness_opts {
	uint64_t guest_mb;             /* default 64 */
	double age;                    /* default 1.0: every region scattered */
	uint64_t seed;
	const struct control_config *cfg; /* NULL: control_config__init + name */
	const struct defragd_policy *policy; /* defragd's; NULL: DEFRAGD_POLICY_DEFAULTS */
	bool no_server;
	const char *pool_path;         /* the pool's directory (e.g. a tmpfs without huge pages) */
};

/* mkdtemp a runtime dir, set $VMCOMPACT_RUNTIME_DIR, build mm, start the server. */
void harness__init(struct harness *h, const char *name, const struct harness_opts *o);
/* Start (another) server on h's mm and host with cfg; returns control__start's result. */
int harness__start_server(struct harness *h, const struct control_config *cfg, char *err, size_t len);
/* control__destroy (if still up), mm__destroy, remove the runtime dir. */
void harness__fini(struct harness *h);
/* Block until the fake main loop has destroyed the server after a `stop`. */
bool harness__wait_destroyed(struct harness *h, unsigned timeout_ms);
struct mm_stat;
void harness__stat(struct harness *h, struct mm_stat *st);
bool harness__thp(struct harness *h);   /* the pool is backed by host huge pages */

/* A raw protocol client: bytes in, JSON values out. */
struct raw {
	int fd;
	struct json_stream in;             /* the VMM's own reader (vmm/json.h) */
	struct json_object *events[256];   /* events seen while waiting for replies */
	unsigned nr_events;
};

/* 0, or -errno of connect(). */
int raw__connect(struct raw *r, const char *path);
void raw__close(struct raw *r);
/* Send bytes as they are. */
void raw__send(struct raw *r, const char *text, size_t len);
void raw__sendf(struct raw *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Next JSON value; NULL on EOF (sets *eof) or timeout. */
struct json_object *raw__read(struct raw *r, int timeout_ms, bool *eof);
/* Next value that is not an event (events are kept in r->events). */
struct json_object *raw__reply(struct raw *r, int timeout_ms);
/* Send one line and return the reply. */
struct json_object *raw__cmd(struct raw *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Wait for an event named `name` (optionally for job-id `job`, 0 = any), from
 * r->events first. Returns it (caller puts) or NULL on timeout. */
struct json_object *raw__wait_event(struct raw *r, const char *name, uint64_t job, int timeout_ms);
/* Read what's pending for up to ms, keeping events. */
void raw__drain(struct raw *r, int ms);
unsigned raw__count_events(struct raw *r, const char *name, uint64_t job);

/* JSON path helpers: "return.regions.total" */
struct json_object *jpath(struct json_object *o, const char *path);
int64_t jpath_int(struct json_object *o, const char *path);
const char *jpath_str(struct json_object *o, const char *path);
bool jhas(struct json_object *o, const char *path);
/* The reply is an error of class cls whose desc contains needle. */
void check_error(struct json_object *reply, const char *cls, const char *needle, int line);
#define CHECK_ERROR(reply, cls, needle) check_error(reply, cls, needle, __LINE__)

/* Run fn with stdout and stderr captured into out/err (malloc'd, caller frees). */
int capture(int (*fn)(int, char **), int argc, char **argv, char **out, char **err);

uint64_t h__now_ms(void);
void h__sleep_ms(unsigned ms);

#endif
