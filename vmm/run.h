/* run.h: the `vmcompact run` command: options, guest RAM, the VM's life, the result. */
#ifndef VMC_VMM_RUN_H
#define VMC_VMM_RUN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>
#include "vmm/kvm_stats.h"
#include "vmm/vm.h"
#include "vmm/workload.h"

#define RUN_DEFAULT_MEM        (1ull << 30)
#define RUN_DEFAULT_STOP_GRACE 5000   /* ms from a stop request to a force stop */

struct run_options {
	uint64_t mem_bytes;        /* --mem: multiple of 2 MiB */
	uint32_t cpus;             /* --cpus */
	struct workload_spec workload; /* --workload */
	bool json;                 /* --json */
	const char *agent_path;    /* --agent; NULL: next to the vmcompact executable */
	uint64_t timeout_ms;       /* --timeout; 0: none */
	uint64_t stop_grace_ms;    /* --stop-grace */
	/* pool / aging / defrag options go here */
};

/* Everything one `run` owns; the JSON result is built from it. */
struct run_ctx {
	struct run_options opts;
	char agent_path[PATH_MAX];
	uint64_t t_start_ns;       /* process start (before main) */
	uint64_t t_end_ns;         /* all vCPUs ended */
	uint8_t *ram;              /* host VA of GPA 0 */
	uint8_t *ram_map;          /* what run__setup_ram mapped (for teardown) */
	uint64_t ram_map_bytes;
	struct vm vm;
	bool vm_created;
	struct kvm_vm_stats kvm_stats;   /* read just before teardown */
	bool stop_requested, stop_by_signal, stop_by_timeout;
	int exit_code;
};

extern const char run__usage[];

void run__default_options(struct run_options *o);
/* 0: parsed; 1: --help printed; -EINVAL: message in err (exit code 2). */
int run__parse_args(int argc, char **argv, struct run_options *o, char *err, size_t errlen);
/* Path of the agent next to the running executable (or in the build tree). */
int run__find_agent(char *path, size_t len, char *err, size_t errlen);
/* Boot, run and tear down one VM. Returns the process exit code. */
int run__execute(struct run_ctx *ctx);
/* The machine-readable result (caller puts it). */
struct json_object *run__result_json(const struct run_ctx *ctx);

int cmd_run(int argc, char **argv);

#endif
