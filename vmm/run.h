/* run.h: one VM's life: options, guest RAM, KVM VM and vCPUs, its defrag job and defragd, the result. */
#ifndef VMC_VMM_RUN_H
#define VMC_VMM_RUN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <json-c/json.h>
#include "mm/defrag.h"
#include "mm/mm.h"
#include "vmm/host.h"
#include "vmm/kvm_stats.h"
#include "vmm/memslots.h"
#include "vmm/mm_json.h"
#include "vmm/vm.h"
#include "vmm/workload.h"

#define RUN_AGENT_NAME "vmcompact-agent"
/* Defaults are plain literals so that usage texts can print them (VMC_STR). */
#define RUN_DEFAULT_MEM        (1ull << 30)
#define RUN_DEFAULT_STOP_GRACE_S 5    /* from a stop request to a force stop */
#define RUN_DEFAULT_SLACK_PCT  6      /* pool slack, % of guest RAM */
#define RUN_DEFAULT_DEFRAG_AFTER_S 1  /* warm-up before --defrag once */

#define RUN_MAX_WORKLOADS 4

enum run_defrag { RUN_DEFRAG_OFF, RUN_DEFRAG_ONCE, RUN_DEFRAG_AUTO };

struct run_ctx;
/* Snapshot and restore, provided by vmm/snapshot (the core does not link it; the CLI sets it). */
struct run_snapshot_ops {
	/* --restore: open and check the file before anything is made; set mem/cpus and cfg */
	int (*prepare)(struct run_ctx *ctx, struct mm_config *cfg, char *err, size_t errlen);
	/* after mm__create: guest memory (eager: read it all; --lazy: fill on first touch) */
	int (*load_memory)(struct run_ctx *ctx, char *err, size_t errlen);
	/* after vm__create, instead of loading the agent: the saved vCPU state */
	int (*load_vcpus)(struct run_ctx *ctx, char *err, size_t errlen);
	/* at teardown, after the VM is gone and before guest RAM is */
	void (*release)(struct run_ctx *ctx);
	/* the control plane's `snapshot`: write this running VM to path */
	int (*save)(struct run_ctx *ctx, const char *path, bool live, bool layout, struct json_object **result,
		    char *err, size_t errlen);
};

struct run_options {
	uint64_t mem_bytes;        /* --mem: multiple of 2 MiB */
	uint32_t cpus;             /* --cpus */
	struct workload_spec workload[RUN_MAX_WORKLOADS]; /* --workload A[+B...]: vCPU i runs i % n */
	unsigned nr_workloads;
	char workload_text[256];
	bool json;                 /* --json */
	const char *agent_path;    /* --agent; NULL: next to the vmcompact executable */
	uint64_t timeout_ms;       /* --timeout; 0: none */
	uint64_t stop_grace_ms;    /* --stop-grace */
	/* guest memory: pool and aging */
	uint64_t slack_bytes;      /* --slack SIZE; 0 with slack_pct set: percentage */
	double slack_pct;          /* --slack N% */
	const char *pool_path;     /* --pool-path */
	bool no_prefault;          /* --no-prefault */
	enum promote_path promote_path; /* --promote-path (default auto) */
	bool keep_zap_quirk;       /* --keep-zap-quirk */
	bool force_mem;            /* --force-mem: start even if the pool exceeds MemAvailable */
	struct aging_config aging; /* --age --seed --ballast --unmovable */
	/* host-side defrag */
	enum run_defrag defrag;    /* --defrag off|once|auto */
	uint64_t defrag_after_ms;  /* --defrag-after */
	struct defrag_request defrag_req; /* --defrag-mode --defrag-algo --max-pause-us */
	int proactiveness;         /* --proactiveness (auto) */
	int64_t defrag_max_mbps;   /* --defrag-max-mbps (auto); -1: defragd's default */
	/* control socket */
	const char *name;          /* --name */
	const char *socket_path;   /* --socket */
	const char *trace_path;    /* --trace: the defrag engine's trace events to this file */
	/* snapshots */
	const char *restore_path;  /* --restore FILE */
	bool restore_lazy;         /* --lazy */
	bool restore_layout;       /* --restore-layout */
	const struct run_snapshot_ops *snapshot_ops; /* NULL: no snapshot support linked */
};

/* Everything one `run` owns; the JSON result is built from it. */
struct run_ctx {
	struct run_options opts;
	char agent_path[PATH_MAX];
	void *elf;                 /* the agent image, read at boot */
	size_t elf_len;
	uint64_t t_start_ns;       /* process start (before main) */
	uint64_t t_end_ns;         /* all vCPUs ended */
	uint8_t *ram;              /* host VA of GPA 0: the mm window */
	struct mm mm;              /* guest memory: frame pool, buddy, GPA map, window */
	bool mm_created;
	struct mm_trace trace;     /* --trace sink (mm->trace points here while it is open) */
	struct mm_stat mem_start, mem_before, mem_after; /* at start, before defrag, at the end */
	struct kvm_pages kvm_before, kvm_after; /* kvm_after: read just before teardown */
	bool have_before;
	/* --defrag once */
	pthread_t defrag_thread;
	bool defrag_thread_started, defrag_ran;
	volatile int defrag_cancel;
	int defrag_rc;
	struct defrag_stats defrag_stats;
	char defrag_note[320];
	/* what the control plane and defragd see; owns the VM's defrag job and defragd */
	struct vmm_host host;
	struct mm_step_ops step_ops;
	int stop_efd;              /* host->request_stop pokes it; the owner's wait loop stops the guest */
	struct vm vm;
	bool vm_created;
	bool stop_requested, stop_by_signal, stop_by_timeout;
	int exit_code;
	void *restore;             /* vmm/snapshot's state while restoring (--restore) */
};

void run__default_options(struct run_options *o);
/* run_args.c: 0: parsed; 1: --help printed; -EINVAL: message in err (exit code 2). */
int run__parse_args(int argc, char **argv, struct run_options *o, char *err, size_t errlen);
void run_args__usage(FILE *f);
/* Path of the agent next to the running executable (or in the build tree). */
int run__find_agent(char *path, size_t len, char *err, size_t errlen);

/*
 * A VM's life in pieces, for `vmcompact run` and for benchmarks and the demo that drive a
 * VM in-process: run__boot (guest RAM, VM, vCPUs, defrag job and defragd started; --defrag
 * once armed), then the caller's work, run__request_stop + run__wait_exited, run__collect
 * (final stats, exit code), run__teardown. ctx->opts must be filled (run__default_options
 * + changes) and t_start_ns set. run__boot returns 0 or the -errno that stopped it.
 */
int run__boot(struct run_ctx *ctx, char *err, size_t errlen);
/* Ask the guest to stop (the first call only); force_at gets the force-stop deadline. */
void run__stop(struct run_ctx *ctx, uint64_t now_ns, uint64_t *force_at);
void run__request_stop(struct run_ctx *ctx);
/* true once every vCPU has ended; false after timeout_ms. */
bool run__wait_exited(struct run_ctx *ctx, uint64_t timeout_ms);
void run__collect(struct run_ctx *ctx);
void run__teardown(struct run_ctx *ctx);

/* run_result.c: the machine-readable result (caller puts it) and the human one. */
struct json_object *run__result_json(const struct run_ctx *ctx);
void run__print_human(const struct run_ctx *ctx);
/* Seconds of guest time in TSC cycles. */
double run__guest_seconds(const struct run_ctx *ctx, uint64_t cycles);

/* Pool slack in bytes from --slack (size or % of --mem), rounded up to 2 MiB. */
uint64_t run__slack_bytes(const struct run_options *o);
/* Pause/resume hooks for the defrag engine over this run's vCPUs. */
void run__step_ops(struct run_ctx *ctx, struct mm_step_ops *ops);

#endif
