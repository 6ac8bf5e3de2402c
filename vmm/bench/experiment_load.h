/* experiment_load.h: host threads that run the guest workloads (chase, gups, stream, verify) over an mm's window, pausable by the defrag engine. */
#ifndef VMC_VMM_BENCH_EXPERIMENT_LOAD_H
#define VMC_VMM_BENCH_EXPERIMENT_LOAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "mm/defrag.h"

/*
 * Without /dev/kvm the experiment measures memory access through the host's own page
 * tables: the same window KVM would map (4 KiB VMAs where the layout is scattered, one
 * 2 MiB PMD where a region is on a host huge page), read and written by host threads
 * instead of vCPUs. The defrag engine stops them around each step exactly as it stops
 * vCPUs: they park (block on a condvar) until resumed.
 */
enum hostload_kind { HOSTLOAD_CHASE, HOSTLOAD_GUPS, HOSTLOAD_STREAM, HOSTLOAD_VERIFY, HOSTLOAD_KINDS };

#define HOSTLOAD_MAX_THREADS 16

struct hostload;

struct hostload_thread {
	struct hostload *hl;
	pthread_t tid;
	unsigned idx;
	uint64_t ops;             /* accesses, updates, bytes or verified words: read by the sampler */
	uint64_t errors;          /* verify: words that did not hold what was last written */
	bool started;
};

struct hostload {
	enum hostload_kind kind;
	uint8_t *base;            /* the window (GPA 0) */
	uint64_t ws;              /* working-set bytes from GPA 0 */
	bool chase_page;          /* chase: one element per 4 KiB page, not per 64 B line */
	unsigned nr_threads;
	struct hostload_thread t[HOSTLOAD_MAX_THREADS];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pause_req;            /* engine wants every thread parked */
	unsigned parked;
	int stop;
};

/* Name -> kind; -1 if unknown. */
int hostload__parse(const char *name);
const char *hostload__name(enum hostload_kind k);
/* Unit of `ops` per kind: "access", "update", "byte", "word". */
const char *hostload__unit(enum hostload_kind k);

/* Build what the workload needs in the window (chase: the cycle; verify: the first generation),
 * then start nr_threads threads. 0 or -errno (message in err). */
int hostload__start(struct hostload *hl, enum hostload_kind kind, uint8_t *base, uint64_t ws,
		    unsigned nr_threads, bool chase_page, char *err, size_t errlen);
void hostload__stop(struct hostload *hl);
/* Sum of ops and errors over the threads, now. */
uint64_t hostload__ops(struct hostload *hl);
uint64_t hostload__errors(struct hostload *hl);
/* CPU time the threads have used so far (ns): the cost per op without the time this shared
 * host had them descheduled. */
uint64_t hostload__cpu_ns(struct hostload *hl);
/* The engine's step hooks over these threads. */
void hostload__step_ops(struct hostload *hl, struct mm_step_ops *ops);

#endif
