/* bench_vm.c: drive one in-process VM for benchmarks and the demo: boot, sample GUPS, stop. */
#include "vmm/bench_vm.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "vmm/util.h"
#include "vmm/vcpu.h"

int bench_vm__boot(struct run_ctx *ctx, char *err, size_t errlen)
{
	ctx->t_start_ns = util__now_ns();
	ctx->exit_code = VMC_EXIT_HOST_ERROR;
	if (run__boot(ctx, err, errlen)) {
		run__teardown(ctx);
		return -1;
	}
	return 0;
}

int bench_vm__finish(struct run_ctx *ctx, uint64_t grace_ms)
{
	run__request_stop(ctx);
	if (!run__wait_exited(ctx, grace_ms)) {
		fprintf(stderr, "vmcompact: guest did not stop within %llu ms; force-stopping\n",
			(unsigned long long)grace_ms);
		vm__force_stop(&ctx->vm);
		run__wait_exited(ctx, 5000);
	}
	run__collect(ctx);
	run__teardown(ctx);
	return ctx->exit_code;
}

void bench_vm__sample(struct run_ctx *ctx, struct gups_sample *s)
{
	memset(s, 0, sizeof(*s));
	for (uint32_t i = 0; i < ctx->vm.nr_vcpus; i++) {
		struct vmc_hc_report r;

		vcpu__get_report(&ctx->vm.vcpus[i], &r, NULL);
		if (r.workload != VMC_WL_GUPS)
			continue;
		s->updates[i] = r.updates;
		s->cycles[i] = r.tsc_cycles;
	}
}

double bench_vm__gups_between(const struct run_ctx *ctx, const struct gups_sample *a,
			      const struct gups_sample *b)
{
	double hz = (double)ctx->vm.tsc_khz * 1000.0, sum = 0;

	for (uint32_t i = 0; i < ctx->vm.nr_vcpus; i++) {
		uint64_t du = b->updates[i] - a->updates[i], dc = b->cycles[i] - a->cycles[i];

		if (dc && hz > 0)
			sum += (double)du / ((double)dc / hz);
	}
	return sum;
}

bool bench_vm__sleep(struct run_ctx *ctx, uint64_t ms)
{
	uint64_t until = util__now_ns() + ms * 1000000ull;

	while (util__now_ns() < until) {
		if (vm__all_exited(&ctx->vm))
			return false;
		usleep(5000);
	}
	return true;
}

double bench_vm__measure_gups(struct run_ctx *ctx, uint64_t ms)
{
	struct gups_sample a, b;

	bench_vm__sample(ctx, &a);
	if (!bench_vm__sleep(ctx, ms))
		return 0;
	bench_vm__sample(ctx, &b);
	return bench_vm__gups_between(ctx, &a, &b);
}

void bench_vm__kvm_pages(struct run_ctx *ctx, struct kvm_pages *k)
{
	struct kvm_vm_stats ks;

	kvm_stats__read(&ctx->vm, &ks);
	*k = (struct kvm_pages){ ks.valid, ks.pages_4k, ks.pages_2m, ks.pages_1g };
}

uint64_t bench_vm__verify_errors(struct run_ctx *ctx)
{
	uint64_t errors = 0;

	for (uint32_t i = 0; i < ctx->vm.nr_vcpus; i++) {
		struct vmc_hc_report r;

		vcpu__get_report(&ctx->vm.vcpus[i], &r, NULL);
		errors += r.errors;
	}
	return errors;
}
