/* run.c: the `vmcompact run` command: options, guest RAM, the VM's life, the result. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include "vmm/loader.h"
#include "vmm/run.h"
#include "vmm/util.h"

#define AGENT_NAME "vmcompact-agent"

const char run__usage[] =
"Usage: vmcompact run [OPTIONS]\n"
"Boot the built-in guest agent in a KVM VM and run a workload on every vCPU.\n"
"\n"
"Options:\n"
"  --mem SIZE         guest RAM, K/M/G suffix, multiple of 2 MiB, 8M..64G (default 1G)\n"
"  --cpus N           vCPUs, one host thread each, 1..64 (default 1)\n"
"  --workload SPEC    what the guest runs (default verify), see below\n"
"  --timeout SECONDS  ask the guest to stop after this long (decimals, or 500ms)\n"
"  --stop-grace SECS  force-stop a guest that has not stopped this long after a stop\n"
"                     request (default 5)\n"
"  --json             print the result as JSON on stdout (guest console goes to stderr)\n"
"  --agent PATH       guest agent ELF (default: " AGENT_NAME " next to vmcompact)\n"
"  -h, --help         this text\n"
"\n"
"Exit status: the guest's exit status (0 ok, 10 verify found corruption, 11 bad boot\n"
"info); 1 host error; 2 usage error; 3 guest fault (bad hypercall, MMIO, triple fault,\n"
"EFAULT); 4 the guest had to be force-stopped.\n"
"\n";

enum { OPT_MEM = 256, OPT_CPUS, OPT_WORKLOAD, OPT_TIMEOUT, OPT_GRACE, OPT_JSON, OPT_AGENT };

static const struct option run_longopts[] = {
	{ "mem", required_argument, NULL, OPT_MEM },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "workload", required_argument, NULL, OPT_WORKLOAD },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "stop-grace", required_argument, NULL, OPT_GRACE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "agent", required_argument, NULL, OPT_AGENT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

void run__default_options(struct run_options *o)
{
	char err[64];

	memset(o, 0, sizeof(*o));
	o->mem_bytes = RUN_DEFAULT_MEM;
	o->cpus = 1;
	o->stop_grace_ms = RUN_DEFAULT_STOP_GRACE;
	workload__parse("verify", &o->workload, err, sizeof(err));
}

int run__parse_args(int argc, char **argv, struct run_options *o, char *err, size_t errlen)
{
	uint64_t v;
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", run_longopts, NULL)) != -1) {
		switch (c) {
		case OPT_MEM:
			if (util__parse_size(optarg, &v) || v % VMC_HUGE_SIZE || v < VMC_MIN_RAM || v > VMC_MAX_RAM) {
				snprintf(err, errlen, "--mem '%s': need a size that is a multiple of 2 MiB in 8M..64G", optarg);
				return -EINVAL;
			}
			o->mem_bytes = v;
			break;
		case OPT_CPUS:
			if (util__parse_count(optarg, &v) || v < 1 || v > VMC_MAX_VCPUS) {
				snprintf(err, errlen, "--cpus '%s': need 1..%u", optarg, VMC_MAX_VCPUS);
				return -EINVAL;
			}
			o->cpus = (uint32_t)v;
			break;
		case OPT_WORKLOAD:
			if (workload__parse(optarg, &o->workload, err, errlen))
				return -EINVAL;
			break;
		case OPT_TIMEOUT:
		case OPT_GRACE:
			if (util__parse_duration_ms(optarg, &v) || (c == OPT_TIMEOUT && !v)) {
				snprintf(err, errlen, "%s '%s': need seconds, e.g. 2, 0.5 or 500ms",
					 c == OPT_TIMEOUT ? "--timeout" : "--stop-grace", optarg);
				return -EINVAL;
			}
			if (c == OPT_TIMEOUT)
				o->timeout_ms = v;
			else
				o->stop_grace_ms = v;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_AGENT:
			o->agent_path = optarg;
			break;
		case 'h':
			printf("%s%s", run__usage, workload__help);
			return 1;
		case ':':
			snprintf(err, errlen, "option '%s' needs an argument", argv[optind - 1]);
			return -EINVAL;
		default:
			snprintf(err, errlen, "unknown option '%s'", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	if (o->mem_bytes < VMC_GPA_WORKLOAD + (uint64_t)o->cpus * VMC_HUGE_SIZE) {
		snprintf(err, errlen, "--mem %llu MiB is too small for %u vCPUs (need 4 MiB + 2 MiB per vCPU)",
			 (unsigned long long)(o->mem_bytes >> 20), o->cpus);
		return -EINVAL;
	}
	return 0;
}

int run__find_agent(char *path, size_t len, char *err, size_t errlen)
{
	static const char *const rel[] = { AGENT_NAME, "../guest-agent/" AGENT_NAME,
					    "../libexec/vmcompact/" AGENT_NAME };
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0) {
		snprintf(err, errlen, "readlink /proc/self/exe: %s", strerror(errno));
		return -errno;
	}
	exe[n] = 0;
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		char dir[PATH_MAX];

		memcpy(dir, exe, (size_t)n + 1);
		if ((size_t)snprintf(path, len, "%s/%s", dirname(dir), rel[i]) >= len)
			continue;
		if (access(path, R_OK) == 0)
			return 0;
	}
	snprintf(err, errlen, "guest agent %s not found next to %s (use --agent PATH)", AGENT_NAME, exe);
	return -ENOENT;
}

/* Guest RAM: the one place that decides what backs it (host VA of GPA 0, 2 MiB aligned). */
static int run__setup_ram(struct run_ctx *ctx, char *err, size_t errlen)
{
	uint64_t bytes = ctx->opts.mem_bytes, map_bytes = bytes + VMC_HUGE_SIZE;
	uint8_t *map, *aligned;

	map = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED) {
		snprintf(err, errlen, "mmap %llu MiB of guest RAM: %s", (unsigned long long)(bytes >> 20), strerror(errno));
		return -errno;
	}
	aligned = (uint8_t *)(((uintptr_t)map + VMC_HUGE_SIZE - 1) & ~(uintptr_t)(VMC_HUGE_SIZE - 1));
	if (madvise(aligned, bytes, MADV_HUGEPAGE))
		fprintf(stderr, "vmcompact: warning: MADV_HUGEPAGE: %s\n", strerror(errno));
	ctx->ram_map = map;
	ctx->ram_map_bytes = map_bytes;
	ctx->ram = aligned;
	return 0;
}

static void run__teardown_ram(struct run_ctx *ctx)
{
	if (ctx->ram_map)
		munmap(ctx->ram_map, ctx->ram_map_bytes);
	ctx->ram_map = NULL;
	ctx->ram = NULL;
}

static void run__stop(struct run_ctx *ctx, uint64_t now, uint64_t *force_at)
{
	if (!ctx->stop_requested) {
		ctx->stop_requested = true;
		vm__request_stop(&ctx->vm);
		*force_at = now + ctx->opts.stop_grace_ms * 1000000ull;
	}
}

/* Main thread: wait for every vCPU to end; turn signals and the timeout into stop requests. */
static void run__wait(struct run_ctx *ctx, int sigfd)
{
	uint64_t now = util__now_ns();
	uint64_t timeout_at = ctx->opts.timeout_ms ? now + ctx->opts.timeout_ms * 1000000ull : UINT64_MAX;
	uint64_t force_at = UINT64_MAX;
	bool forced = false;

	while (!vm__all_exited(&ctx->vm)) {
		struct pollfd pfd[2] = { { .fd = ctx->vm.done_fd, .events = POLLIN },
					 { .fd = sigfd, .events = POLLIN } };
		uint64_t next = timeout_at < force_at ? timeout_at : force_at;
		int ms = next == UINT64_MAX ? -1 : next <= now ? 0 : (int)((next - now + 999999) / 1000000);

		if (poll(pfd, 2, ms) < 0 && errno != EINTR)
			break;
		now = util__now_ns();
		if (pfd[0].revents & POLLIN) {
			uint64_t n;

			if (read(ctx->vm.done_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
				break;
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (ctx->stop_requested && !forced) {
					fprintf(stderr, "vmcompact: second signal, force-stopping\n");
					force_at = now;
				}
				ctx->stop_by_signal = true;
				run__stop(ctx, now, &force_at);
			}
		}
		if (now >= timeout_at && !ctx->stop_requested) {
			ctx->stop_by_timeout = true;
			run__stop(ctx, now, &force_at);
		}
		if (now >= force_at && !forced) {
			forced = true;
			fprintf(stderr, "vmcompact: error: guest did not stop within %llu ms of the stop request; force-stopping\n",
				(unsigned long long)ctx->opts.stop_grace_ms);
			vm__force_stop(&ctx->vm);
			force_at = UINT64_MAX;
		}
	}
}

static double run__seconds(const struct run_ctx *ctx, uint64_t cycles)
{
	return ctx->vm.tsc_khz ? (double)cycles / ((double)ctx->vm.tsc_khz * 1000.0) : 0.0;
}

static double run__ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static double run__startup_ms(const struct run_ctx *ctx)
{
	uint64_t first = ctx->vm.first_hc_ns;

	return first ? run__ms(first - ctx->t_start_ns) : -1.0;
}

static struct json_object *run__args_json(const struct workload_spec *w)
{
	struct json_object *a = json_object_new_object();
	const struct vmc_workload_args *args = &w->args;

	if (args->passes)
		json_object_object_add(a, "passes", json_object_new_uint64(args->passes));
	if (args->duration_ms)
		json_object_object_add(a, "seconds", json_object_new_double((double)args->duration_ms / 1000.0));
	if (args->updates)
		json_object_object_add(a, "updates", json_object_new_uint64(args->updates));
	if (args->ws_bytes)
		json_object_object_add(a, "ws_bytes", json_object_new_uint64(args->ws_bytes));
	if (args->seed)
		json_object_object_add(a, "seed", json_object_new_uint64(args->seed));
	if (args->flags & VMC_WL_FOREVER)
		json_object_object_add(a, "forever", json_object_new_boolean(1));
	if (w->id == VMC_WL_FAULT)
		json_object_object_add(a, "fault", json_object_new_string(workload__fault_name(args->fault)));
	return a;
}

struct json_object *run__result_json(const struct run_ctx *ctx)
{
	const struct vm *vm = &ctx->vm;
	struct json_object *root = json_object_new_object();
	struct json_object *wl = json_object_new_object();
	struct json_object *vcpus = json_object_new_array();
	struct json_object *totals = json_object_new_object();
	struct json_object *kvm = json_object_new_object();
	struct json_object *pause = json_object_new_object();
	uint64_t verify_errors = 0, stale = 0, pages = 0, min_passes = UINT64_MAX;
	double gups = 0, stream = 0;

	json_object_object_add(root, "version", json_object_new_string(VMC_VERSION));
	json_object_object_add(root, "abi_version", json_object_new_int(VMC_ABI_VERSION));
	json_object_object_add(root, "mem_bytes", json_object_new_uint64(ctx->opts.mem_bytes));
	json_object_object_add(root, "cpus", json_object_new_int((int)ctx->opts.cpus));
	json_object_object_add(wl, "name", json_object_new_string(workload__name(ctx->opts.workload.id)));
	json_object_object_add(wl, "spec", json_object_new_string(ctx->opts.workload.spec));
	json_object_object_add(wl, "args", run__args_json(&ctx->opts.workload));
	json_object_object_add(root, "workload", wl);
	json_object_object_add(root, "exit_status", json_object_new_int(ctx->exit_code));
	json_object_object_add(root, "error", vm->failed ? json_object_new_string(vm->fail_msg) : NULL);
	json_object_object_add(root, "stopped_by", json_object_new_string(
		ctx->stop_by_signal ? "signal" : ctx->stop_by_timeout ? "timeout" : "guest"));
	json_object_object_add(root, "startup_ms", json_object_new_double(run__startup_ms(ctx)));
	json_object_object_add(root, "first_hypercall_monotonic_ns", json_object_new_uint64(vm->first_hc_ns));
	json_object_object_add(root, "wall_ms", json_object_new_double(run__ms(ctx->t_end_ns - ctx->t_start_ns)));
	json_object_object_add(root, "tsc_khz", json_object_new_uint64(vm->tsc_khz));

	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		struct json_object *o = json_object_new_object();
		struct vmc_hc_report r;
		uint64_t nr_reports;
		double secs;

		vcpu__get_report(v, &r, &nr_reports);
		secs = run__seconds(ctx, r.tsc_cycles);
		json_object_object_add(o, "id", json_object_new_int((int)i));
		json_object_object_add(o, "exit_status", json_object_new_int((int)v->exit_status));
		json_object_object_add(o, "guest_exited", json_object_new_boolean(v->guest_exited));
		json_object_object_add(o, "reports", json_object_new_uint64(nr_reports));
		json_object_object_add(o, "final", json_object_new_boolean(!!(r.flags & VMC_REPORT_FINAL)));
		json_object_object_add(o, "stopped", json_object_new_boolean(!!(r.flags & VMC_REPORT_STOPPED)));
		json_object_object_add(o, "pages", json_object_new_uint64(r.pages));
		json_object_object_add(o, "passes", json_object_new_uint64(r.passes));
		json_object_object_add(o, "errors", json_object_new_uint64(r.errors));
		json_object_object_add(o, "bad_pages", json_object_new_uint64(r.bad_pages));
		json_object_object_add(o, "stale_words", json_object_new_uint64(r.stale_words));
		json_object_object_add(o, "checked_words", json_object_new_uint64(r.checked_words));
		json_object_object_add(o, "updates", json_object_new_uint64(r.updates));
		json_object_object_add(o, "updates_per_sec", json_object_new_double(secs > 0 ? (double)r.updates / secs : 0));
		json_object_object_add(o, "ns_per_update", json_object_new_double(r.updates ? secs * 1e9 / (double)r.updates : 0));
		json_object_object_add(o, "bytes", json_object_new_uint64(r.bytes));
		json_object_object_add(o, "bytes_per_sec", json_object_new_double(secs > 0 ? (double)r.bytes / secs : 0));
		json_object_object_add(o, "ws_bytes", json_object_new_uint64(r.ws_bytes));
		json_object_object_add(o, "tsc_cycles", json_object_new_uint64(r.tsc_cycles));
		json_object_object_add(o, "seconds", json_object_new_double(secs));
		json_object_object_add(o, "exits", json_object_new_uint64(v->nr_exits));
		json_object_object_add(o, "hypercalls", json_object_new_uint64(v->nr_hypercalls));
		if (r.errors) {
			struct json_object *fe = json_object_new_object();

			json_object_object_add(fe, "gpa", json_object_new_uint64(r.first_err_gpa));
			json_object_object_add(fe, "expected", json_object_new_uint64(r.first_err_expected));
			json_object_object_add(fe, "got", json_object_new_uint64(r.first_err_got));
			json_object_object_add(o, "first_error", fe);
		}
		json_object_array_add(vcpus, o);

		verify_errors += r.errors;
		stale += r.stale_words;
		pages += r.pages;
		if (r.passes < min_passes)
			min_passes = r.passes;
		if (secs > 0) {
			gups += (double)r.updates / secs;
			stream += (double)r.bytes / secs;
		}
	}
	json_object_object_add(root, "vcpus", vcpus);
	json_object_object_add(totals, "pages", json_object_new_uint64(pages));
	json_object_object_add(totals, "verify_errors", json_object_new_uint64(verify_errors));
	json_object_object_add(totals, "verify_stale_words", json_object_new_uint64(stale));
	json_object_object_add(totals, "min_passes", json_object_new_uint64(min_passes == UINT64_MAX ? 0 : min_passes));
	json_object_object_add(totals, "gups_total_updates_per_sec", json_object_new_double(gups));
	json_object_object_add(totals, "stream_total_bytes_per_sec", json_object_new_double(stream));
	json_object_object_add(root, "totals", totals);

	json_object_object_add(kvm, "stats_valid", json_object_new_boolean(ctx->kvm_stats.valid));
	json_object_object_add(kvm, "pages_4k", json_object_new_uint64(ctx->kvm_stats.pages_4k));
	json_object_object_add(kvm, "pages_2m", json_object_new_uint64(ctx->kvm_stats.pages_2m));
	json_object_object_add(kvm, "pages_1g", json_object_new_uint64(ctx->kvm_stats.pages_1g));
	json_object_object_add(root, "kvm", kvm);

	json_object_object_add(pause, "count", json_object_new_uint64(vm->pause.count));
	json_object_object_add(pause, "avg_us", json_object_new_double(
		vm->pause.count ? (double)vm->pause.total_ns / (double)vm->pause.count / 1e3 : 0));
	json_object_object_add(pause, "max_us", json_object_new_double((double)vm->pause.max_ns / 1e3));
	json_object_object_add(root, "pause", pause);
	return root;
}

static void run__print_human(const struct run_ctx *ctx)
{
	const struct vm *vm = &ctx->vm;

	printf("vmcompact: %llu MiB, %u vCPU%s, workload %s: exit %d, start-up %.2f ms, wall %.1f ms%s\n",
	       (unsigned long long)(ctx->opts.mem_bytes >> 20), ctx->opts.cpus, ctx->opts.cpus > 1 ? "s" : "",
	       ctx->opts.workload.spec, ctx->exit_code, run__startup_ms(ctx),
	       run__ms(ctx->t_end_ns - ctx->t_start_ns),
	       ctx->stop_by_signal ? " (stopped by signal)" : ctx->stop_by_timeout ? " (stopped by timeout)" : "");
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vmc_hc_report r;
		double secs;

		vcpu__get_report(&vm->vcpus[i], &r, NULL);
		secs = run__seconds(ctx, r.tsc_cycles);
		printf("  vcpu %u: %llu pages, %llu passes, %.3f s", i, (unsigned long long)r.pages,
		       (unsigned long long)r.passes, secs);
		if (r.workload == VMC_WL_VERIFY)
			printf(", %llu words checked, %llu errors (%llu stale)", (unsigned long long)r.checked_words,
			       (unsigned long long)r.errors, (unsigned long long)r.stale_words);
		if (r.updates && secs > 0)
			printf(", %llu updates: %.1f M updates/s, %.2f ns/update", (unsigned long long)r.updates,
			       (double)r.updates / secs / 1e6, secs * 1e9 / (double)r.updates);
		if (r.bytes && secs > 0)
			printf(", %.2f GB/s", (double)r.bytes / secs / 1e9);
		printf("\n");
	}
	if (ctx->kvm_stats.valid)
		printf("  kvm: pages_4k %llu, pages_2m %llu, pages_1g %llu\n",
		       (unsigned long long)ctx->kvm_stats.pages_4k, (unsigned long long)ctx->kvm_stats.pages_2m,
		       (unsigned long long)ctx->kvm_stats.pages_1g);
	if (vm->pause.count)
		printf("  pauses: %llu, avg %.1f us, max %.1f us\n", (unsigned long long)vm->pause.count,
		       (double)vm->pause.total_ns / (double)vm->pause.count / 1e3, (double)vm->pause.max_ns / 1e3);
}

int run__execute(struct run_ctx *ctx)
{
	struct vm_config cfg = { 0 };
	sigset_t stopset, oldset;
	void *elf = NULL;
	size_t elf_len = 0;
	char err[512];
	int sigfd = -1, rc;

	ctx->exit_code = VMC_EXIT_HOST_ERROR;
	if (ctx->opts.agent_path) {
		snprintf(ctx->agent_path, sizeof(ctx->agent_path), "%s", ctx->opts.agent_path);
	} else if (run__find_agent(ctx->agent_path, sizeof(ctx->agent_path), err, sizeof(err))) {
		fprintf(stderr, "vmcompact: %s\n", err);
		return ctx->exit_code;
	}
	if (loader__read_file(ctx->agent_path, &elf, &elf_len, err, sizeof(err)))
		goto fail;
	if (run__setup_ram(ctx, err, sizeof(err)))
		goto fail;
	cfg.ram = ctx->ram;
	cfg.ram_bytes = ctx->opts.mem_bytes;
	cfg.nr_vcpus = ctx->opts.cpus;
	cfg.console = ctx->opts.json ? stderr : stdout;
	if (vm__create(&ctx->vm, &cfg, err, sizeof(err)))
		goto fail;
	ctx->vm_created = true;
	if (vm__setup_guest(&ctx->vm, elf, elf_len, ctx->opts.workload.id, &ctx->opts.workload.args,
			    err, sizeof(err)))
		goto fail;

	/* SIGINT/SIGTERM become stop requests; vCPU threads inherit the blocked mask. */
	sigemptyset(&stopset);
	sigaddset(&stopset, SIGINT);
	sigaddset(&stopset, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stopset, &oldset);
	sigfd = signalfd(-1, &stopset, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sigfd < 0) {
		snprintf(err, sizeof(err), "signalfd: %s", strerror(errno));
		goto fail_mask;
	}
	rc = vm__start(&ctx->vm, err, sizeof(err));
	if (rc)
		goto fail_mask;
	run__wait(ctx, sigfd);
	ctx->t_end_ns = util__now_ns();
	kvm_stats__read(&ctx->vm, &ctx->kvm_stats);
	vm__join(&ctx->vm);
	ctx->exit_code = vm__exit_code(&ctx->vm);

	if (ctx->opts.json) {
		struct json_object *j = run__result_json(ctx);

		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else {
		run__print_human(ctx);
	}
	fflush(stdout);
	close(sigfd);
	pthread_sigmask(SIG_SETMASK, &oldset, NULL);
	vm__destroy(&ctx->vm);
	ctx->vm_created = false;
	run__teardown_ram(ctx);
	free(elf);
	return ctx->exit_code;

fail_mask:
	if (sigfd >= 0)
		close(sigfd);
	pthread_sigmask(SIG_SETMASK, &oldset, NULL);
fail:
	fprintf(stderr, "vmcompact: %s\n", err);
	if (ctx->vm_created)
		vm__destroy(&ctx->vm);
	ctx->vm_created = false;
	run__teardown_ram(ctx);
	free(elf);
	return VMC_EXIT_HOST_ERROR;
}

int cmd_run(int argc, char **argv)
{
	struct run_ctx ctx;
	char err[256];
	int rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.t_start_ns = util__process_start_ns();
	run__default_options(&ctx.opts);
	rc = run__parse_args(argc, argv, &ctx.opts, err, sizeof(err));
	if (rc == 1)
		return 0;
	if (rc) {
		fprintf(stderr, "vmcompact run: %s\nTry 'vmcompact run --help'.\n", err);
		return VMC_EXIT_USAGE;
	}
	return run__execute(&ctx);
}
