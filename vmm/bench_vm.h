/* bench_vm.h: drive one in-process VM for benchmarks and the demo: boot, sample GUPS, stop. */
#ifndef VMC_VMM_BENCH_VM_H
#define VMC_VMM_BENCH_VM_H

#include <stdbool.h>
#include <stdint.h>
#include "vmm/run.h"

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

/* KVM's mapping sizes now. */
void bench_vm__kvm_pages(struct run_ctx *ctx, struct kvm_pages *k);
/* Sum of verify errors reported so far by all vCPUs. */
uint64_t bench_vm__verify_errors(struct run_ctx *ctx);

#endif
