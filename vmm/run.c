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
#include <sys/eventfd.h>
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
"Guest memory (a frame pool the VMM owns, see README 'Aging model'):\n"
"  --slack SIZE|N%    pool frames beyond guest RAM, for ballast and free space\n"
"                     (default 6%, rounded up to 2 MiB)\n"
"  --pool-path DIR    make the pool file in DIR (a tmpfs mounted huge=always|advise, or a\n"
"                     hugetlbfs) instead of a private huge=always tmpfs mount (needs root)\n"
"  --no-prefault      do not fault the pool in at start-up\n"
"  --age FRACTION     share of guest 2 MiB regions scattered over the pool, 0..1 (default 0)\n"
"  --seed N           layout seed: the same seed gives the same layout (default 1)\n"
"  --ballast FRACTION share of the slack held by other tenants, 0..1 (default 0.5)\n"
"  --unmovable FRACTION share of the ballast that is unmovable, 0..1 (default 0.25)\n"
"\n"
"Host-side defragmentation:\n"
"  --defrag MODE      off (default), once (after --defrag-after of warm-up), or auto\n"
"                     (background defragmenter, kcompactd-style; needs no socket)\n"
"  --defrag-after SECS  warm-up before --defrag once (default 1)\n"
"  --defrag-mode M    compact, collapse or full (default full)\n"
"  --defrag-algo A    planned (default: pages go straight to their final slot) or linux\n"
"                     (compact_zone() then khugepaged-style collapse, the reference)\n"
"  --defrag-order N   with --defrag-mode compact: stop once a free block of order N exists\n"
"                     (default: full compaction, like /proc/sys/vm/compact_memory)\n"
"  --max-pause-us N   longest vCPU pause per defrag step (default 1000)\n"
"  --proactiveness N  background defragmenter aggressiveness 0..100 (default 20, as Linux's\n"
"                     vm.compaction_proactiveness: act above score 100-N+10, stop at 100-N)\n"
"  --defrag-max-mbps N  background defragmenter copy budget in MB/s, 0 = unlimited (default 6:\n"
"                     every moved page costs the guest a shadow-page refault, so gentle)\n"
"\n"
"Control:\n"
"  --name NAME        control socket " "$VMCOMPACT_RUNTIME_DIR or /run/vmcompact" "/NAME.sock;\n"
"                     a named VM's verify/gups/stream runs until `vmcompact stop NAME`\n"
"                     unless the spec bounds it (passes=, seconds=, updates=)\n"
"  --socket PATH      control socket at PATH\n"
"\n"
"Exit status: the guest's exit status (0 ok, 10 verify found corruption, 11 bad boot\n"
"info); 1 host error; 2 usage error; 3 guest fault (bad hypercall, MMIO, triple fault,\n"
"EFAULT); 4 the guest had to be force-stopped.\n"
"\n";

enum { OPT_MEM = 256, OPT_CPUS, OPT_WORKLOAD, OPT_TIMEOUT, OPT_GRACE, OPT_JSON, OPT_AGENT,
       OPT_SLACK, OPT_POOL_PATH, OPT_NO_PREFAULT, OPT_AGE, OPT_SEED, OPT_BALLAST, OPT_UNMOVABLE,
       OPT_DEFRAG, OPT_DEFRAG_AFTER, OPT_DEFRAG_MODE, OPT_DEFRAG_ALGO, OPT_MAX_PAUSE,
       OPT_PROACTIVENESS, OPT_DEFRAG_MBPS, OPT_DEFRAG_ORDER, OPT_NAME, OPT_SOCKET };

static const struct option run_longopts[] = {
	{ "mem", required_argument, NULL, OPT_MEM },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "workload", required_argument, NULL, OPT_WORKLOAD },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "stop-grace", required_argument, NULL, OPT_GRACE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "agent", required_argument, NULL, OPT_AGENT },
	{ "slack", required_argument, NULL, OPT_SLACK },
	{ "pool-path", required_argument, NULL, OPT_POOL_PATH },
	{ "no-prefault", no_argument, NULL, OPT_NO_PREFAULT },
	{ "age", required_argument, NULL, OPT_AGE },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "ballast", required_argument, NULL, OPT_BALLAST },
	{ "unmovable", required_argument, NULL, OPT_UNMOVABLE },
	{ "defrag", required_argument, NULL, OPT_DEFRAG },
	{ "defrag-after", required_argument, NULL, OPT_DEFRAG_AFTER },
	{ "defrag-mode", required_argument, NULL, OPT_DEFRAG_MODE },
	{ "defrag-algo", required_argument, NULL, OPT_DEFRAG_ALGO },
	{ "max-pause-us", required_argument, NULL, OPT_MAX_PAUSE },
	{ "proactiveness", required_argument, NULL, OPT_PROACTIVENESS },
	{ "defrag-max-mbps", required_argument, NULL, OPT_DEFRAG_MBPS },
	{ "defrag-order", required_argument, NULL, OPT_DEFRAG_ORDER },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "socket", required_argument, NULL, OPT_SOCKET },
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
	workload__parse("verify", &o->workload[0], err, sizeof(err));
	o->nr_workloads = 1;
	snprintf(o->workload_text, sizeof(o->workload_text), "verify");
	o->slack_pct = RUN_DEFAULT_SLACK_PCT;
	o->aging = (struct aging_config)AGING_DEFAULTS;
	o->defrag_after_ms = RUN_DEFAULT_DEFRAG_AFTER;
	defrag_request__init(&o->defrag_req);
	o->proactiveness = 20;
	o->defrag_max_mbps = -1;
}

/* A fraction in [0, 1]. */
static int run__parse_fraction(const char *opt, const char *s, double *out, char *err, size_t errlen)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0.0 && v <= 1.0)) {
		snprintf(err, errlen, "%s '%s': need a fraction between 0 and 1", opt, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* "64M" or "6%" (of guest RAM). */
static int run__parse_slack(const char *s, struct run_options *o, char *err, size_t errlen)
{
	size_t n = strlen(s);
	char *end;

	if (n && s[n - 1] == '%') {
		double pct;

		errno = 0;
		pct = strtod(s, &end);
		if (errno || end != s + n - 1 || !(pct >= 0.0 && pct <= 1000.0)) {
			snprintf(err, errlen, "--slack '%s': need a size (64M) or a percentage of --mem (0%%..1000%%)", s);
			return -EINVAL;
		}
		o->slack_pct = pct;
		o->slack_bytes = 0;
		return 0;
	}
	if (util__parse_size(s, &o->slack_bytes) || o->slack_bytes > VMC_MAX_RAM) {
		snprintf(err, errlen, "--slack '%s': need a size (64M) or a percentage of --mem (6%%)", s);
		return -EINVAL;
	}
	o->slack_pct = -1.0;
	return 0;
}

static int run__parse_choice(const char *opt, const char *s, const char *const *names, int n, int *out,
			     char *err, size_t errlen)
{
	for (int i = 0; i < n; i++) {
		if (names[i] && !strcmp(s, names[i])) {
			*out = i;
			return 0;
		}
	}
	snprintf(err, errlen, "%s '%s': unknown value", opt, s);
	return -EINVAL;
}

/* "gups:forever" or a mix "gups:forever+verify:forever": vCPU i runs part i % n. */
static int run__parse_workloads(const char *text, struct run_options *o, char *err, size_t errlen)
{
	char buf[sizeof(o->workload_text)], *save = NULL, *part;
	unsigned n = 0;

	if (strlen(text) >= sizeof(buf)) {
		snprintf(err, errlen, "--workload: spec too long");
		return -EINVAL;
	}
	strcpy(buf, text);
	for (part = strtok_r(buf, "+", &save); part; part = strtok_r(NULL, "+", &save)) {
		if (n == RUN_MAX_WORKLOADS) {
			snprintf(err, errlen, "--workload: at most %d workloads joined with '+'", RUN_MAX_WORKLOADS);
			return -EINVAL;
		}
		if (workload__parse(part, &o->workload[n], err, errlen))
			return -EINVAL;
		n++;
	}
	if (!n) {
		snprintf(err, errlen, "--workload '%s': empty", text);
		return -EINVAL;
	}
	o->nr_workloads = n;
	strcpy(o->workload_text, text);
	return 0;
}

uint64_t run__slack_bytes(const struct run_options *o)
{
	uint64_t b = o->slack_pct >= 0.0 ? (uint64_t)((double)o->mem_bytes * o->slack_pct / 100.0) : o->slack_bytes;

	return (b + VMC_HUGE_SIZE - 1) & ~(VMC_HUGE_SIZE - 1);
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
			if (run__parse_workloads(optarg, o, err, errlen))
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
		case OPT_SLACK:
			if (run__parse_slack(optarg, o, err, errlen))
				return -EINVAL;
			break;
		case OPT_POOL_PATH:
			o->pool_path = optarg;
			break;
		case OPT_NO_PREFAULT:
			o->no_prefault = true;
			break;
		case OPT_AGE:
			if (run__parse_fraction("--age", optarg, &o->aging.age, err, errlen))
				return -EINVAL;
			break;
		case OPT_BALLAST:
			if (run__parse_fraction("--ballast", optarg, &o->aging.ballast, err, errlen))
				return -EINVAL;
			break;
		case OPT_UNMOVABLE:
			if (run__parse_fraction("--unmovable", optarg, &o->aging.unmovable, err, errlen))
				return -EINVAL;
			break;
		case OPT_SEED:
			if (util__parse_count(optarg, &v)) {
				snprintf(err, errlen, "--seed '%s': need an unsigned integer", optarg);
				return -EINVAL;
			}
			o->aging.seed = v;
			break;
		case OPT_DEFRAG: {
			static const char *const names[] = { "off", "once", "auto" };
			int d;

			if (run__parse_choice("--defrag", optarg, names, 3, &d, err, errlen))
				return -EINVAL;
			o->defrag = (enum run_defrag)d;
			break;
		}
		case OPT_DEFRAG_AFTER:
			if (util__parse_duration_ms(optarg, &v)) {
				snprintf(err, errlen, "--defrag-after '%s': need seconds, e.g. 1 or 500ms", optarg);
				return -EINVAL;
			}
			o->defrag_after_ms = v;
			break;
		case OPT_DEFRAG_MODE: {
			int m;

			if (run__parse_choice("--defrag-mode", optarg, defrag_mode_names, 3, &m, err, errlen))
				return -EINVAL;
			o->defrag_req.mode = (enum defrag_mode)m;
			break;
		}
		case OPT_DEFRAG_ALGO: {
			int a;

			if (run__parse_choice("--defrag-algo", optarg, defrag_algo_names, 2, &a, err, errlen))
				return -EINVAL;
			o->defrag_req.algo = (enum defrag_algo)a;
			break;
		}
		case OPT_MAX_PAUSE:
			if (util__parse_count(optarg, &v) || v < 50 || v > 1000000) {
				snprintf(err, errlen, "--max-pause-us '%s': need 50..1000000", optarg);
				return -EINVAL;
			}
			o->defrag_req.max_pause_ns = v * 1000;
			break;
		case OPT_PROACTIVENESS:
			if (util__parse_count(optarg, &v) || v > 100) {
				snprintf(err, errlen, "--proactiveness '%s': need 0..100", optarg);
				return -EINVAL;
			}
			o->proactiveness = (int)v;
			break;
		case OPT_DEFRAG_ORDER:
			if (util__parse_count(optarg, &v) || v >= MM_MAX_ORDER) {
				snprintf(err, errlen, "--defrag-order '%s': need 0..%d", optarg, MM_MAX_ORDER - 1);
				return -EINVAL;
			}
			o->defrag_req.order = (int)v;
			break;
		case OPT_DEFRAG_MBPS:
			if (util__parse_count(optarg, &v) || v > DEFRAGD_MBPS_MAX) {
				snprintf(err, errlen, "--defrag-max-mbps '%s': need 0..%u (0 = unlimited)", optarg,
					 DEFRAGD_MBPS_MAX);
				return -EINVAL;
			}
			o->defrag_max_mbps = (int64_t)v;
			break;
		case OPT_NAME:
			o->name = optarg;
			break;
		case OPT_SOCKET:
			o->socket_path = optarg;
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
	/* A named VM is one you talk to: its workload runs until `vmcompact stop`, unless the
	 * spec bounds it (passes=, seconds=, updates=). */
	if (o->name || o->socket_path) {
		for (unsigned i = 0; i < o->nr_workloads; i++) {
			struct workload_spec *w = &o->workload[i];

			if ((w->id == VMC_WL_VERIFY || w->id == VMC_WL_GUPS || w->id == VMC_WL_STREAM) &&
			    !w->args.passes && !w->args.duration_ms && !w->args.updates)
				w->args.flags |= VMC_WL_FOREVER;
		}
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

/* Guest RAM: the mm/ frame pool, seen by the guest through the window (host VA of GPA 0). */
static int run__setup_ram(struct run_ctx *ctx, char *err, size_t errlen)
{
	struct mm_config cfg = {
		.guest_bytes = ctx->opts.mem_bytes,
		.slack_bytes = run__slack_bytes(&ctx->opts),
		.pool_path = ctx->opts.pool_path,
		.prefault = !ctx->opts.no_prefault,
		.prefault_async = true, /* the guest starts while the pool is faulted in */
		.aging = ctx->opts.aging,
	};
	int rc = mm__create(&ctx->mm, &cfg, err, errlen);

	if (rc)
		return rc;
	ctx->mm_created = true;
	ctx->ram = ctx->mm.win.base;
	if (ctx->mm.pool.backing == POOL_BACKING_4K && ctx->mm.pool.note[0])
		fprintf(stderr, "vmcompact: warning: guest RAM has no 2 MiB host pages: %s\n", ctx->mm.pool.note);
	return 0;
}

static void run__teardown_ram(struct run_ctx *ctx)
{
	if (ctx->mm_created)
		mm__destroy(&ctx->mm);
	ctx->mm_created = false;
	ctx->ram = NULL;
}

static void run__read_kvm(struct run_ctx *ctx, struct kvm_pages *k)
{
	struct kvm_vm_stats ks;

	kvm_stats__read(&ctx->vm, &ks);
	k->valid = ks.valid;
	k->pages_4k = ks.pages_4k;
	k->pages_2m = ks.pages_2m;
	k->pages_1g = ks.pages_1g;
}

/* The defrag engine stops the world around each step: every vCPU parked and blocked. */
static int run__step_pause(void *opaque)
{
	struct run_ctx *ctx = opaque;

	vm__pause(&ctx->vm);
	return 0;
}

static void run__step_resume(void *opaque)
{
	struct run_ctx *ctx = opaque;

	vm__resume(&ctx->vm);
}

void run__step_ops(struct run_ctx *ctx, struct mm_step_ops *ops)
{
	ops->pause = run__step_pause;
	ops->resume = run__step_resume;
	ops->ctx = ctx;
}

/* Sleep up to ms, returning early (false) once every vCPU has ended. */
static bool run__sleep_while_running(struct run_ctx *ctx, uint64_t ms)
{
	uint64_t until = util__now_ns() + ms * 1000000ull;

	while (util__now_ns() < until) {
		if (vm__all_exited(&ctx->vm) || ctx->defrag_cancel)
			return false;
		usleep(10000);
	}
	return !vm__all_exited(&ctx->vm);
}

/* --defrag once: after the warm-up, one defrag request while the guest keeps running. */
static void *run__defrag_thread(void *opaque)
{
	struct run_ctx *ctx = opaque;
	struct defrag_request req = ctx->opts.defrag_req;
	struct mm_step_ops ops;

	if (!run__sleep_while_running(ctx, ctx->opts.defrag_after_ms)) {
		snprintf(ctx->defrag_note, sizeof(ctx->defrag_note),
			 "the guest ended before the %llu ms warm-up was over; no defrag ran",
			 (unsigned long long)ctx->opts.defrag_after_ms);
		return NULL;
	}
	mm__stat(&ctx->mm, &ctx->mem_before);
	run__read_kvm(ctx, &ctx->kvm_before);
	ctx->have_before = true;
	if (ctx->ctl_started) {
		/* Through the job runner: never at the same time as defragd or a `defrag` command. */
		struct defrag_job_info info;
		uint64_t id;
		char err[256];

		ctx->defrag_rc = defrag_job__start(&ctx->ctl.job, &req, DEFRAG_ORIGIN_MANUAL, &id, NULL,
						   err, sizeof(err));
		if (ctx->defrag_rc) {
			snprintf(ctx->defrag_note, sizeof(ctx->defrag_note), "%s", err);
			return NULL;
		}
		while (!defrag_job__wait_timeout(&ctx->ctl.job, id, 50, &info))
			if (ctx->defrag_cancel)
				defrag_job__cancel_id(&ctx->ctl.job, id);
		ctx->defrag_stats = info.stats;
		ctx->defrag_rc = info.error;
	} else {
		req.cancel = &ctx->defrag_cancel;
		run__step_ops(ctx, &ops);
		ctx->defrag_rc = mm__defrag(&ctx->mm, &req, &ops, &ctx->defrag_stats);
	}
	ctx->defrag_ran = true;
	if (ctx->defrag_rc && !ctx->opts.json)
		fprintf(stderr, "vmcompact: defrag: %s\n", ctx->defrag_stats.error_msg[0] ?
			ctx->defrag_stats.error_msg : strerror(-ctx->defrag_rc));
	return NULL;
}

static void run__stop(struct run_ctx *ctx, uint64_t now, uint64_t *force_at)
{
	if (!ctx->stop_requested) {
		ctx->stop_requested = true;
		/* The stop flag lives in guest RAM: never write it while the engine moves that page. */
		pthread_mutex_lock(&ctx->mm.lock);
		vm__request_stop(&ctx->vm);
		pthread_mutex_unlock(&ctx->mm.lock);
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
		struct pollfd pfd[3] = { { .fd = ctx->vm.done_fd, .events = POLLIN },
					 { .fd = sigfd, .events = POLLIN },
					 { .fd = ctx->stop_efd, .events = POLLIN } };
		uint64_t next = timeout_at < force_at ? timeout_at : force_at;
		int ms = next == UINT64_MAX ? -1 : next <= now ? 0 : (int)((next - now + 999999) / 1000000);

		if (poll(pfd, ctx->stop_efd >= 0 ? 3 : 2, ms) < 0 && errno != EINTR)
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
		if (ctx->stop_efd >= 0 && (pfd[2].revents & POLLIN)) {
			uint64_t n;

			if (read(ctx->stop_efd, &n, sizeof(n)) == sizeof(n))
				run__stop(ctx, now, &force_at);
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

static struct json_object *run__layout_json(const struct run_ctx *ctx)
{
	const struct run_options *o = &ctx->opts;
	const struct mm *mm = &ctx->mm;
	struct json_object *l = json_object_new_object();

	json_object_object_add(l, "age", json_object_new_double(o->aging.age));
	json_object_object_add(l, "seed", json_object_new_uint64(o->aging.seed));
	json_object_object_add(l, "ballast", json_object_new_double(o->aging.ballast));
	json_object_object_add(l, "unmovable", json_object_new_double(o->aging.unmovable));
	json_object_object_add(l, "slack_bytes", json_object_new_uint64(mm->cfg.slack_bytes));
	json_object_object_add(l, "pool_backing", json_object_new_string(pool_backing__name(mm->pool.backing)));
	json_object_object_add(l, "pool_note", mm->pool.note[0] ? json_object_new_string(mm->pool.note) : NULL);
	json_object_object_add(l, "mm_startup_ms", json_object_new_double(mm->startup.total_ns / 1e6));
	json_object_object_add(l, "prefault_ms", json_object_new_double(mm->startup.prefault_ns / 1e6));
	json_object_object_add(l, "window_map_ms", json_object_new_double(mm->startup.map_ns / 1e6));
	return l;
}

/* memory.start (layout as placed), memory.before (just before defrag), memory.after (end). */
static struct json_object *run__memory_json(const struct run_ctx *ctx)
{
	struct json_object *m = json_object_new_object();
	json_object_object_add(m, "layout", run__layout_json(ctx));
	json_object_object_add(m, "start", mm_json__stat(&ctx->mem_start, NULL));
	if (ctx->have_before)
		json_object_object_add(m, "before", mm_json__stat(&ctx->mem_before, &ctx->kvm_before));
	json_object_object_add(m, "after", mm_json__stat(&ctx->mem_after, &ctx->kvm_after));
	return m;
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
	json_object_object_add(wl, "name", json_object_new_string(workload__name(ctx->opts.workload[0].id)));
	json_object_object_add(wl, "spec", json_object_new_string(ctx->opts.workload_text));
	json_object_object_add(wl, "args", run__args_json(&ctx->opts.workload[0]));
	if (ctx->opts.nr_workloads > 1) {
		struct json_object *mix = json_object_new_array();

		for (unsigned i = 0; i < ctx->opts.nr_workloads; i++)
			json_object_array_add(mix, json_object_new_string(ctx->opts.workload[i].spec));
		json_object_object_add(wl, "mix", mix);
	}
	json_object_object_add(root, "workload", wl);
	json_object_object_add(root, "exit_status", json_object_new_int(ctx->exit_code));
	json_object_object_add(root, "error", vm->failed ? json_object_new_string(vm->fail_msg) : NULL);
	json_object_object_add(root, "stopped_by", json_object_new_string(
		ctx->stop_by_signal ? "signal" : ctx->stop_by_timeout ? "timeout" :
		ctx->stop_requested ? "stop-request" : "guest"));
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

	json_object_object_add(kvm, "coverage_2m", json_object_new_double(kvm_pages__coverage_2m(&ctx->kvm_after)));
	json_object_object_add(root, "memory", run__memory_json(ctx));
	json_object_object_add(root, "backing_2m", json_object_new_double(ctx->mem_after.backing_2m));
	json_object_object_add(root, "backing_2m_achievable", json_object_new_double(ctx->mem_after.backing_2m_achievable));
	if (ctx->opts.defrag == RUN_DEFRAG_ONCE) {
		struct json_object *d = ctx->defrag_ran ? mm_json__defrag_stats(&ctx->defrag_stats)
							: json_object_new_object();

		json_object_object_add(d, "ran", json_object_new_boolean(ctx->defrag_ran));
		json_object_object_add(d, "mode", json_object_new_string(defrag_mode_names[ctx->opts.defrag_req.mode]));
		json_object_object_add(d, "algo", json_object_new_string(defrag_algo_names[ctx->opts.defrag_req.algo]));
		if (ctx->defrag_note[0])
			json_object_object_add(d, "note", json_object_new_string(ctx->defrag_note));
		json_object_object_add(root, "defrag", d);
	}

	json_object_object_add(pause, "count", json_object_new_uint64(vm->pause.count));
	json_object_object_add(pause, "avg_us", json_object_new_double(
		vm->pause.count ? (double)vm->pause.total_ns / (double)vm->pause.count / 1e3 : 0));
	json_object_object_add(pause, "max_us", json_object_new_double((double)vm->pause.max_ns / 1e3));
	json_object_object_add(root, "pause", pause);
	return root;
}

static void run__print_memory(const struct run_ctx *ctx)
{
	const struct mm_stat *a = &ctx->mem_after, *b = &ctx->mem_start;
	const struct defrag_stats *d = &ctx->defrag_stats;

	printf("  memory: pool %llu MiB (%s, %llu of %u blocks huge), age %.2f seed %llu, %llu window VMAs\n",
	       (unsigned long long)(a->pool_bytes >> 20), pool_backing__name(a->backing),
	       (unsigned long long)a->huge_blocks, (unsigned)(a->pool_bytes >> 21), ctx->opts.aging.age,
	       (unsigned long long)ctx->opts.aging.seed, (unsigned long long)a->vmas);
	printf("  backing_2m: %.3f at start, %.3f at the end (achievable %.3f); buddyinfo", b->backing_2m,
	       a->backing_2m, a->backing_2m_achievable);
	for (unsigned o = 0; o < MM_MAX_ORDER; o++)
		printf(" %llu", (unsigned long long)a->nr_free[o]);
	printf("\n");
	if (ctx->opts.defrag != RUN_DEFRAG_ONCE)
		return;
	if (!ctx->defrag_ran) {
		printf("  defrag: did not run: %s\n", ctx->defrag_note[0] ? ctx->defrag_note : "no reason recorded");
		return;
	}
	printf("  defrag (%s, %s): %.3f s, %u regions promoted + %u zero-copy, %llu pages copied "
	       "(%.3f per promoted page), %llu steps, pause max %.0f us p99 %.0f us%s%s\n",
	       defrag_mode_names[ctx->opts.defrag_req.mode], defrag_algo_names[ctx->opts.defrag_req.algo],
	       d->wall_ns / 1e9, d->regions_promoted, d->regions_zero_copy, (unsigned long long)d->pages_copied,
	       d->copies_per_promoted_page, (unsigned long long)d->steps, d->pause_max_ns / 1e3,
	       d->pause_p99_ns / 1e3, d->error ? ": " : "", d->error ? d->error_msg : "");
}

static void run__print_human(const struct run_ctx *ctx)
{
	const struct vm *vm = &ctx->vm;

	printf("vmcompact: %llu MiB, %u vCPU%s, workload %s: exit %d, start-up %.2f ms, wall %.1f ms%s\n",
	       (unsigned long long)(ctx->opts.mem_bytes >> 20), ctx->opts.cpus, ctx->opts.cpus > 1 ? "s" : "",
	       ctx->opts.workload_text, ctx->exit_code, run__startup_ms(ctx),
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
	run__print_memory(ctx);
}

static const char *run__ctl_status(void *opaque)
{
	struct run_ctx *ctx = opaque;

	if (vm__all_exited(&ctx->vm) || ctx->stop_requested)
		return "shutdown";
	return ctx->vm.pause_depth ? "paused" : "running";
}

static int run__ctl_kvm_stats(void *opaque, uint64_t *p4k, uint64_t *p2m, uint64_t *p1g)
{
	struct run_ctx *ctx = opaque;
	struct kvm_vm_stats ks;

	if (kvm_stats__read(&ctx->vm, &ks) || !ks.valid)
		return -ENOENT;
	*p4k = ks.pages_4k;
	*p2m = ks.pages_2m;
	*p1g = ks.pages_1g;
	return 0;
}

static void run__ctl_request_stop(void *opaque)
{
	struct run_ctx *ctx = opaque;
	uint64_t one = 1;

	if (write(ctx->stop_efd, &one, sizeof(one)) < 0)
		fprintf(stderr, "vmcompact: stop request lost: %s\n", strerror(errno));
}

/* query-status gets the guest's own view: workload and what the vCPUs reported so far. */
static void run__ctl_add_status(void *opaque, struct json_object *o)
{
	struct run_ctx *ctx = opaque;
	uint64_t errors = 0, passes = UINT64_MAX, updates = 0;
	double gups_seconds = 0;

	for (uint32_t i = 0; i < ctx->vm.nr_vcpus; i++) {
		struct vmc_hc_report r;

		vcpu__get_report(&ctx->vm.vcpus[i], &r, NULL);
		errors += r.errors;
		if (r.workload == VMC_WL_GUPS) {
			updates += r.updates;
			gups_seconds += run__seconds(ctx, r.tsc_cycles);
		} else if (r.passes < passes) {
			passes = r.passes;
		}
	}
	json_object_object_add(o, "workload", json_object_new_string(ctx->opts.workload_text));
	json_object_object_add(o, "verify_errors", json_object_new_uint64(errors));
	json_object_object_add(o, "min_passes", json_object_new_uint64(passes == UINT64_MAX ? 0 : passes));
	json_object_object_add(o, "gups_updates", json_object_new_uint64(updates));
	json_object_object_add(o, "gups_seconds", json_object_new_double(gups_seconds));
}

/* Every VM gets a control socket; defragd lives there too. Failing to create the
 * socket is fatal only if the user asked for it (--name, --socket, --defrag auto). */
static int run__start_control(struct run_ctx *ctx, char *err, size_t errlen)
{
	struct control_config cc;
	bool asked = ctx->opts.name || ctx->opts.socket_path || ctx->opts.defrag == RUN_DEFRAG_AUTO;
	int rc;

	ctx->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctx->stop_efd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -errno;
	}
	run__step_ops(ctx, &ctx->step_ops);
	ctx->ctl_host = (struct control_host){
		.ctx = ctx,
		.name = NULL,
		.mm = &ctx->mm,
		.step_ops = &ctx->step_ops,
		.nr_vcpus = ctx->opts.cpus,
		.status = run__ctl_status,
		.kvm_stats = run__ctl_kvm_stats,
		.request_stop = run__ctl_request_stop,
		.add_status = run__ctl_add_status,
	};
	control_config__init(&cc);
	cc.name = ctx->opts.name;
	cc.path = ctx->opts.socket_path;
	cc.defrag.enabled = ctx->opts.defrag == RUN_DEFRAG_AUTO;
	cc.defrag.proactiveness = (unsigned)ctx->opts.proactiveness;
	cc.defrag.max_pause_us = (uint32_t)(ctx->opts.defrag_req.max_pause_ns / 1000);
	if (ctx->opts.defrag_max_mbps >= 0)
		cc.defrag.max_mbps = (uint32_t)ctx->opts.defrag_max_mbps;
	rc = control__start(&ctx->ctl, &ctx->ctl_host, &cc, err, errlen);
	if (rc) {
		if (asked)
			return rc;
		fprintf(stderr, "vmcompact: warning: no control socket: %s\n", err);
		err[0] = 0;
		return 0;
	}
	ctx->ctl_started = true;
	if (ctx->ctl.note[0])
		fprintf(stderr, "vmcompact: %s\n", ctx->ctl.note);
	if (!ctx->opts.json)
		printf("vmcompact: control socket %s\n", ctx->ctl.path);
	return 0;
}

static void run__stop_control(struct run_ctx *ctx, const char *reason)
{
	if (ctx->ctl_started)
		control__destroy(&ctx->ctl, reason);
	ctx->ctl_started = false;
}

int run__boot(struct run_ctx *ctx, char *err, size_t errlen)
{
	struct vm_config cfg = { 0 };
	struct vm_workload wls[RUN_MAX_WORKLOADS];

	ctx->stop_efd = -1;
	if (ctx->opts.agent_path)
		snprintf(ctx->agent_path, sizeof(ctx->agent_path), "%s", ctx->opts.agent_path);
	else if (run__find_agent(ctx->agent_path, sizeof(ctx->agent_path), err, errlen))
		return -ENOENT;
	if (loader__read_file(ctx->agent_path, &ctx->elf, &ctx->elf_len, err, errlen))
		return -EINVAL;
	if (run__setup_ram(ctx, err, errlen))
		return -ENOMEM;
	cfg.ram = ctx->ram;
	cfg.ram_bytes = ctx->opts.mem_bytes;
	cfg.nr_vcpus = ctx->opts.cpus;
	cfg.console = ctx->opts.json ? stderr : stdout;
	if (vm__create(&ctx->vm, &cfg, err, errlen))
		return -EIO;
	ctx->vm_created = true;
	for (unsigned i = 0; i < ctx->opts.nr_workloads; i++)
		wls[i] = (struct vm_workload){ ctx->opts.workload[i].id, ctx->opts.workload[i].args };
	if (vm__setup_guest(&ctx->vm, ctx->elf, ctx->elf_len, wls, ctx->opts.nr_workloads, err, errlen))
		return -EINVAL;
	if (vm__start(&ctx->vm, err, errlen))
		return -EIO;
	if (run__start_control(ctx, err, errlen))
		return -EIO;
	/* The layout as placed, once the pool's huge blocks are known (the guest already runs). */
	if (mm__wait_ready(&ctx->mm)) {
		snprintf(err, errlen, "%s", ctx->mm.prefault_err);
		return -ENOMEM;
	}
	mm__stat(&ctx->mm, &ctx->mem_start);
	if (ctx->opts.defrag == RUN_DEFRAG_ONCE) {
		int rc = pthread_create(&ctx->defrag_thread, NULL, run__defrag_thread, ctx);

		if (rc)
			fprintf(stderr, "vmcompact: warning: cannot start the defrag thread: %s\n", strerror(rc));
		ctx->defrag_thread_started = !rc;
	}
	return 0;
}

void run__request_stop(struct run_ctx *ctx)
{
	uint64_t unused;

	run__stop(ctx, util__now_ns(), &unused);
}

bool run__wait_exited(struct run_ctx *ctx, uint64_t timeout_ms)
{
	uint64_t until = util__now_ns() + timeout_ms * 1000000ull;

	while (!vm__all_exited(&ctx->vm)) {
		if (util__now_ns() >= until)
			return false;
		usleep(2000);
	}
	return true;
}

void run__collect(struct run_ctx *ctx)
{
	ctx->t_end_ns = util__now_ns();
	if (ctx->defrag_thread_started) {
		ctx->defrag_cancel = 1;
		pthread_join(ctx->defrag_thread, NULL);
		ctx->defrag_thread_started = false;
	}
	run__stop_control(ctx, ctx->stop_by_signal ? "host-signal" : NULL);
	kvm_stats__read(&ctx->vm, &ctx->kvm_stats);
	ctx->kvm_after = (struct kvm_pages){ ctx->kvm_stats.valid, ctx->kvm_stats.pages_4k,
					     ctx->kvm_stats.pages_2m, ctx->kvm_stats.pages_1g };
	mm__stat(&ctx->mm, &ctx->mem_after);
	vm__join(&ctx->vm);
	ctx->exit_code = vm__exit_code(&ctx->vm);
}

void run__teardown(struct run_ctx *ctx)
{
	if (ctx->defrag_thread_started) {
		ctx->defrag_cancel = 1;
		pthread_join(ctx->defrag_thread, NULL);
		ctx->defrag_thread_started = false;
	}
	run__stop_control(ctx, "host-error");
	if (ctx->stop_efd >= 0)
		close(ctx->stop_efd);
	ctx->stop_efd = -1;
	if (ctx->vm_created)
		vm__destroy(&ctx->vm);
	ctx->vm_created = false;
	run__teardown_ram(ctx);
	free(ctx->elf);
	ctx->elf = NULL;
}

int run__execute(struct run_ctx *ctx)
{
	sigset_t stopset, oldset;
	char err[1024];
	int sigfd;

	ctx->exit_code = VMC_EXIT_HOST_ERROR;
	/* SIGINT/SIGTERM become stop requests; vCPU threads inherit the blocked mask. */
	sigemptyset(&stopset);
	sigaddset(&stopset, SIGINT);
	sigaddset(&stopset, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stopset, &oldset);
	sigfd = signalfd(-1, &stopset, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sigfd < 0) {
		snprintf(err, sizeof(err), "signalfd: %s", strerror(errno));
		goto fail;
	}
	if (run__boot(ctx, err, sizeof(err)))
		goto fail;
	run__wait(ctx, sigfd);
	run__collect(ctx);

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
	run__teardown(ctx);
	return ctx->exit_code;

fail:
	fprintf(stderr, "vmcompact: %s\n", err);
	if (sigfd >= 0)
		close(sigfd);
	pthread_sigmask(SIG_SETMASK, &oldset, NULL);
	run__teardown(ctx);
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
