/* guest.c: the guest every benchmark boots: its options, the benchmarks' option loop, boot, GUPS samples, stop. */
#include "vmm/bench/guest.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vmm/util.h"
#include "vmm/vcpu.h"

int bench_guest__parse(struct bench_guest *g, int opt, const char *arg)
{
	uint64_t v;
	char *end;

	switch (opt) {
	case BENCH_OPT_MEM:
		if (util__parse_size(arg, &v) || v % VMC_HUGE_SIZE || v < VMC_MIN_RAM || v > VMC_MAX_RAM)
			return -EINVAL;
		g->mem_bytes = v;
		return 0;
	case BENCH_OPT_AGE:
		g->age = strtod(arg, &end);
		return *end || end == arg || !(g->age >= 0 && g->age <= 1) ? -EINVAL : 0;
	case BENCH_OPT_SEED:
		return util__parse_count(arg, &g->seed) ? -EINVAL : 0;
	case BENCH_OPT_SLACK:
		if (strlen(arg) >= sizeof(g->slack))
			return -EINVAL;
		strcpy(g->slack, arg);
		return 0;
	case BENCH_OPT_CPUS:
		if (util__parse_count(arg, &v) || v < 1 || v > VMC_MAX_VCPUS)
			return -EINVAL;
		g->cpus = (uint32_t)v;
		return 0;
	case BENCH_OPT_PROMOTE_PATH: {
		int p = promote_path__parse(arg);

		if (p < 0)
			return -EINVAL;
		g->promote_path = (enum promote_path)p;
		g->promote_path_set = true;
		return 0;
	}
	case BENCH_OPT_KEEP_ZAP_QUIRK:
		g->keep_zap_quirk = true;
		return 0;
	}
	return -EINVAL;
}

/* The option whose value getopt_long just returned ("--mem 3M" and "--mem=3M" alike). */
static const char *bench__opt_name(char **argv, int optind_now, const char *value)
{
	return optind_now >= 2 && argv[optind_now - 1] == value ? argv[optind_now - 2] : argv[optind_now - 1];
}

int bench__parse_args(int argc, char **argv, const char *name, const struct option *longopts,
		      const char *usage, struct bench_guest *g, bench_opt_fn own, void *opts)
{
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return 1;
		}
		if (c == ':' || c == '?') {
			fprintf(stderr, "vmcompact bench %s: %s '%s'\nTry 'vmcompact bench %s --help'.\n", name,
				c == ':' ? "missing value for" : "unknown option", argv[optind - 1], name);
			return -EINVAL;
		}
		if (c >= BENCH_OPT_MEM && c < BENCH_OPT_OWN ? bench_guest__parse(g, c, optarg) : own(opts, c, optarg)) {
			fprintf(stderr, "vmcompact bench %s: bad value '%s' for %s\nTry 'vmcompact bench %s --help'.\n",
				name, optarg ? optarg : "", bench__opt_name(argv, optind, optarg), name);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vmcompact bench %s: unexpected argument '%s'\n", name, argv[optind]);
		return -EINVAL;
	}
	return 0;
}

int bench_guest__run_options(const struct bench_guest *g, const char *workload, const char *const *extra,
			     struct run_options *ro, char *err, size_t errlen)
{
	const char *argv[16] = { "run", "--slack", g->slack, "--workload", workload };
	int argc = 5;

	for (; extra && *extra && argc < 15; extra++)
		argv[argc++] = *extra;
	argv[argc] = NULL;
	run__default_options(ro);
	if (run__parse_args(argc, (char **)argv, ro, err, errlen))
		return -EINVAL;
	ro->mem_bytes = g->mem_bytes;
	ro->cpus = g->cpus;
	if (g->promote_path_set)
		ro->promote_path = g->promote_path;
	ro->keep_zap_quirk = g->keep_zap_quirk;
	ro->aging.age = g->age;
	ro->aging.seed = g->seed;
	ro->json = true; /* guest console to stderr */
	return 0;
}

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
