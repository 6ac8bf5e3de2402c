/* guest.h: the guest every benchmark boots: its options, the benchmarks' option loop, boot, GUPS samples, stop. */
#ifndef VMC_VMM_BENCH_GUEST_H
#define VMC_VMM_BENCH_GUEST_H

#include <stdbool.h>
#include <stdint.h>
#include "vmm/run.h"

/* The guest every benchmark boots: size, layout, vCPUs, memslots (--mem --age --seed --slack
 * --cpus --promote-path --keep-zap-quirk). */
struct bench_guest {
	uint64_t mem_bytes;
	double age;
	uint64_t seed;
	char slack[32];
	uint32_t cpus;
	enum promote_path promote_path;
	bool promote_path_set;     /* else run's default (auto) */
	bool keep_zap_quirk;
};

enum { BENCH_OPT_MEM = 0x100, BENCH_OPT_AGE, BENCH_OPT_SEED, BENCH_OPT_SLACK, BENCH_OPT_CPUS,
       BENCH_OPT_PROMOTE_PATH, BENCH_OPT_KEEP_ZAP_QUIRK,
       BENCH_OPT_OWN /* a benchmark's own options start here */ };

#define BENCH_GUEST_LONGOPTS \
	{ "mem", required_argument, NULL, BENCH_OPT_MEM }, \
	{ "age", required_argument, NULL, BENCH_OPT_AGE }, \
	{ "seed", required_argument, NULL, BENCH_OPT_SEED }, \
	{ "slack", required_argument, NULL, BENCH_OPT_SLACK }, \
	{ "cpus", required_argument, NULL, BENCH_OPT_CPUS }, \
	{ "promote-path", required_argument, NULL, BENCH_OPT_PROMOTE_PATH }, \
	{ "keep-zap-quirk", no_argument, NULL, BENCH_OPT_KEEP_ZAP_QUIRK }

#define BENCH_GUEST_USAGE_MEMSLOTS \
	"  --promote-path P  auto (default), memslot or remap: how a promoted region\n" \
	"                    reaches the guest (see `vmcompact run --help`)\n" \
	"  --keep-zap-quirk  leave KVM_X86_QUIRK_SLOT_ZAP_ALL on: auto falls back to remap\n"

/* One of BENCH_GUEST_LONGOPTS: 0, or -EINVAL for a bad value. */
int bench_guest__parse(struct bench_guest *g, int opt, const char *arg);
struct option;
/* A benchmark's own option (opt >= BENCH_OPT_OWN, arg may be NULL): 0, or -EINVAL for a bad value. */
typedef int (*bench_opt_fn)(void *opts, int opt, const char *arg);
/* The benchmarks' option loop: the guest's options into g, the others through own, --help.
 * 0 parsed, 1 help printed, -EINVAL with a one-line message printed. */
int bench__parse_args(int argc, char **argv, const char *name, const struct option *longopts,
		      const char *usage, struct bench_guest *g, bench_opt_fn own, void *opts);
/* `run` options for this guest running `workload`; extra: more run flags, NULL-terminated. */
int bench_guest__run_options(const struct bench_guest *g, const char *workload, const char *const *extra,
			     struct run_options *ro, char *err, size_t errlen);

/* The guest's cumulative GUPS counters over all vCPUs that run gups, at one instant. */
struct gups_sample {
	uint64_t updates[VMC_MAX_VCPUS];
	uint64_t cycles[VMC_MAX_VCPUS];
};

/* A VM booted in-process with the options of `run` (ctx->opts filled by the caller). */
int bench_vm__boot(struct run_ctx *ctx, char *err, size_t errlen);
/* Stop the guest gracefully (force after grace_ms), collect stats, tear down. Exit code. */
int bench_vm__finish(struct run_ctx *ctx, uint64_t grace_ms);

void bench_vm__sample(struct run_ctx *ctx, struct gups_sample *s);
/* Updates per second summed over vCPUs between two samples (from the guest's own TSC). */
double bench_vm__gups_between(const struct run_ctx *ctx, const struct gups_sample *a,
			      const struct gups_sample *b);
/* Sample for `ms` milliseconds and return updates per second, or 0 if the guest ended. */
double bench_vm__measure_gups(struct run_ctx *ctx, uint64_t ms);
/* Sleep ms; false if every vCPU has ended meanwhile. */
bool bench_vm__sleep(struct run_ctx *ctx, uint64_t ms);

/* Sum of verify errors reported so far by all vCPUs. */
uint64_t bench_vm__verify_errors(struct run_ctx *ctx);

#endif
