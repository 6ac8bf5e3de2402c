/* run_args.c: a run's options as one table: `vmcompact run`'s and the benchmarks' parsing, checks and usage text. */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/run.h"
#include "vmm/util.h"

enum flag_kind {
	FLAG_BOOL,      /* no value: sets a bool */
	FLAG_STR,       /* the value as given (a path or a name) */
	FLAG_COUNT,     /* unsigned integer in [min, max], stored in a 4- or 8-byte field */
	FLAG_FRACTION,  /* a double in [0, 1] */
	FLAG_DURATION,  /* seconds ("2", "0.5", "500ms") stored in ms; min 1 forbids 0 */
	FLAG_CUSTOM,    /* its own parser */
};

struct run_flag {
	const char *section;   /* starts a usage section when not NULL */
	const char *name;      /* long option without the dashes */
	const char *arg;       /* the value's name in the usage; NULL for FLAG_BOOL */
	enum flag_kind kind;
	size_t off;            /* the field in struct run_options */
	unsigned width;        /* FLAG_COUNT: sizeof the field */
	uint64_t min, max;     /* FLAG_COUNT, FLAG_DURATION */
	int (*parse)(struct run_options *o, const char *val, char *err, size_t errlen); /* FLAG_CUSTOM */
	const char *help;      /* lines after the first are indented under it */
};

#define F(field) offsetof(struct run_options, field)

static int parse_mem(struct run_options *o, const char *s, char *err, size_t errlen)
{
	uint64_t v;

	if (util__parse_size(s, &v) || v % VMC_HUGE_SIZE || v < VMC_MIN_RAM || v > VMC_MAX_RAM) {
		snprintf(err, errlen, "--mem '%s': need a size that is a multiple of 2 MiB in 8M..64G", s);
		return -EINVAL;
	}
	o->mem_bytes = v;
	return 0;
}

/* "gups:forever" or a mix "gups:forever+verify:forever": vCPU i runs part i % n. */
static int parse_workloads(struct run_options *o, const char *text, char *err, size_t errlen)
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

/* A size ("64M") or a percentage of --mem ("6%"). */
static int parse_slack(struct run_options *o, const char *s, char *err, size_t errlen)
{
	size_t n = strlen(s);

	if (n && s[n - 1] == '%') {
		char *end;
		double pct = strtod(s, &end);

		if (end != s + n - 1 || end == s || !(pct >= 0.0 && pct <= 1000.0)) {
			snprintf(err, errlen, "--slack '%s': need a percentage 0..1000%%", s);
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

static int parse_defrag(struct run_options *o, const char *s, char *err, size_t errlen)
{
	static const char *const names[] = { [RUN_DEFRAG_OFF] = "off", [RUN_DEFRAG_ONCE] = "once",
					     [RUN_DEFRAG_AUTO] = "auto" };

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(s, names[i])) {
			o->defrag = (enum run_defrag)i;
			return 0;
		}
	}
	snprintf(err, errlen, "--defrag '%s': need off, once or auto", s);
	return -EINVAL;
}

static int parse_defrag_mode(struct run_options *o, const char *s, char *err, size_t errlen)
{
	int m = defrag_mode__parse(s);

	if (m < 0) {
		snprintf(err, errlen, "--defrag-mode '%s': need compact, collapse or full", s);
		return -EINVAL;
	}
	o->defrag_req.mode = (enum defrag_mode)m;
	return 0;
}

static int parse_defrag_algo(struct run_options *o, const char *s, char *err, size_t errlen)
{
	int a = defrag_algo__parse(s);

	if (a < 0) {
		snprintf(err, errlen, "--defrag-algo '%s': need planned or linux", s);
		return -EINVAL;
	}
	o->defrag_req.algo = (enum defrag_algo)a;
	return 0;
}

/* --borrow auto|off|SIZE: how many 2 MiB blocks defrag may borrow from the host. */
static int parse_borrow(struct run_options *o, const char *s, char *err, size_t errlen)
{
	if (defrag_borrow__parse(s, &o->defrag_req.borrow_bytes)) {
		snprintf(err, errlen, "--borrow '%s': need auto, off or a size up to 64G", s);
		return -EINVAL;
	}
	return 0;
}

/* --promote-path auto|memslot|remap: how a promoted region reaches the guest. */
static int parse_promote_path(struct run_options *o, const char *s, char *err, size_t errlen)
{
	int p = promote_path__parse(s);

	if (p < 0) {
		snprintf(err, errlen, "--promote-path '%s': need auto, memslot or remap", s);
		return -EINVAL;
	}
	o->promote_path = (enum promote_path)p;
	return 0;
}

static int parse_max_pause(struct run_options *o, const char *s, char *err, size_t errlen)
{
	uint64_t v;

	if (util__parse_count(s, &v) || v < 50 || v > 1000000) {
		snprintf(err, errlen, "--max-pause-us '%s': need 50..1000000", s);
		return -EINVAL;
	}
	o->defrag_req.max_pause_ns = v * 1000;
	return 0;
}

static const struct run_flag run_flags[] = {
	{ "Options:\n", "mem", "SIZE", FLAG_CUSTOM, 0, 0, 0, 0, parse_mem,
	  "guest RAM, K/M/G suffix, multiple of 2 MiB, 8M..64G (default 1G)" },
	{ NULL, "cpus", "N", FLAG_COUNT, F(cpus), sizeof(uint32_t), 1, VMC_MAX_VCPUS, NULL,
	  "vCPUs, one host thread each, 1..64 (default 1)" },
	{ NULL, "workload", "SPEC", FLAG_CUSTOM, 0, 0, 0, 0, parse_workloads,
	  "what the guest runs (default verify), see below" },
	{ NULL, "timeout", "SECONDS", FLAG_DURATION, F(timeout_ms), 0, 1, UINT64_MAX, NULL,
	  "ask the guest to stop after this long (decimals, or 500ms)" },
	{ NULL, "stop-grace", "SECS", FLAG_DURATION, F(stop_grace_ms), 0, 0, UINT64_MAX, NULL,
	  "force-stop a guest that has not stopped this long after a stop\n"
	  "request (default " VMC_STR(RUN_DEFAULT_STOP_GRACE_S) ")" },
	{ NULL, "json", NULL, FLAG_BOOL, F(json), 0, 0, 0, NULL,
	  "print the result as JSON on stdout (guest console goes to stderr)" },
	{ NULL, "agent", "PATH", FLAG_STR, F(agent_path), 0, 0, 0, NULL,
	  "guest agent ELF (default: " RUN_AGENT_NAME " next to vmcompact)" },
	{ "\nGuest memory (a frame pool the VMM owns, see README 'Aging model'):\n",
	  "slack", "SIZE|N%", FLAG_CUSTOM, 0, 0, 0, 0, parse_slack,
	  "pool frames beyond guest RAM, for ballast and free space\n"
	  "(default " VMC_STR(RUN_DEFAULT_SLACK_PCT) "%, rounded up to 2 MiB)" },
	{ NULL, "pool-path", "DIR", FLAG_STR, F(pool_path), 0, 0, 0, NULL,
	  "make the pool file in DIR (a tmpfs mounted huge=always|advise, or a\n"
	  "hugetlbfs) instead of a private huge=always tmpfs mount (needs root)" },
	{ NULL, "no-prefault", NULL, FLAG_BOOL, F(no_prefault), 0, 0, 0, NULL,
	  "do not fault the pool in at start-up (defrag then makes its blocks huge\n"
	  "pages first: free ones faulted in, used ones collapsed)" },
	{ NULL, "force-mem", NULL, FLAG_BOOL, F(force_mem), 0, 0, 0, NULL,
	  "start even if guest RAM + slack exceed the host's MemAvailable" },
	{ NULL, "age", "FRACTION", FLAG_FRACTION, F(aging.age), 0, 0, 0, NULL,
	  "share of guest 2 MiB regions scattered over the pool, 0..1 (default 0)" },
	{ NULL, "seed", "N", FLAG_COUNT, F(aging.seed), sizeof(uint64_t), 0, UINT64_MAX, NULL,
	  "layout seed: the same seed gives the same layout (default 1)" },
	{ NULL, "ballast", "FRACTION", FLAG_FRACTION, F(aging.ballast), 0, 0, 0, NULL,
	  "share of the slack held by other tenants, 0..1 (default " VMC_STR(AGING_DEFAULT_BALLAST) ")" },
	{ NULL, "unmovable", "FRACTION", FLAG_FRACTION, F(aging.unmovable), 0, 0, 0, NULL,
	  "share of the ballast that is unmovable, 0..1 (default " VMC_STR(AGING_DEFAULT_UNMOVABLE) ")" },
	{ "\nHost-side defragmentation:\n", "defrag", "MODE", FLAG_CUSTOM, 0, 0, 0, 0, parse_defrag,
	  "off (default), once (after --defrag-after of warm-up), or auto\n"
	  "(background defragmenter, kcompactd-style; needs no socket)" },
	{ NULL, "defrag-after", "SECS", FLAG_DURATION, F(defrag_after_ms), 0, 0, UINT64_MAX, NULL,
	  "warm-up before --defrag once (default " VMC_STR(RUN_DEFAULT_DEFRAG_AFTER_S) ")" },
	{ NULL, "defrag-mode", "M", FLAG_CUSTOM, 0, 0, 0, 0, parse_defrag_mode,
	  "compact, collapse or full (default full)" },
	{ NULL, "defrag-algo", "A", FLAG_CUSTOM, 0, 0, 0, 0, parse_defrag_algo,
	  "planned (default: pages go straight to their final slot) or linux\n"
	  "(compact_zone() then khugepaged-style collapse, the reference)" },
	{ NULL, "borrow", "auto|off|SIZE", FLAG_CUSTOM, 0, 0, 0, 0, parse_borrow,
	  "planned defrag copies scattered regions whole into 2 MiB blocks borrowed\n"
	  "from the host, then gives back what is left free: auto (default, bounded by\n"
	  "MemAvailable), off, or at most SIZE" },
	{ NULL, "promote-path", "P", FLAG_CUSTOM, 0, 0, 0, 0, parse_promote_path,
	  "auto (default): one KVM memslot per 2 MiB region, and a promoted region\n"
	  "is served straight from its pool block (memslot), where the kernel can\n"
	  "disable KVM_X86_QUIRK_SLOT_ZAP_ALL; else one memslot over the window and\n"
	  "promotion remaps the window (remap). memslot or remap forces one" },
	{ NULL, "keep-zap-quirk", NULL, FLAG_BOOL, F(keep_zap_quirk), 0, 0, 0, NULL,
	  "leave KVM_X86_QUIRK_SLOT_ZAP_ALL on, as a kernel before 6.12 would\n"
	  "(auto then falls back to remap; tests the fallback)" },
	{ NULL, "defrag-order", "N", FLAG_COUNT, F(defrag_req.order), sizeof(int), 0, MM_MAX_ORDER - 1, NULL,
	  "with --defrag-mode compact: stop once a free block of order N exists\n"
	  "(default: full compaction, like /proc/sys/vm/compact_memory)" },
	{ NULL, "max-pause-us", "N", FLAG_CUSTOM, 0, 0, 0, 0, parse_max_pause,
	  "longest vCPU pause per defrag step (default " VMC_STR(DEFRAG_MAX_PAUSE_US_DEFAULT) ")" },
	{ NULL, "proactiveness", "N", FLAG_COUNT, F(proactiveness), sizeof(int), 0, 100, NULL,
	  "background defragmenter aggressiveness 0..100 (default " VMC_STR(DEFRAGD_DEFAULT_PROACTIVENESS)
	  ", as Linux's\nvm.compaction_proactiveness: act above score 100-N+10, stop at 100-N)" },
	{ NULL, "trace", "FILE", FLAG_STR, F(trace_path), 0, 0, 0, NULL,
	  "write the defrag engine's trace events (mm_compaction_*, mm_migrate_pages,\n"
	  "vcpu_pause/resume, defrag_step, ...) to FILE, one a line; README 'Tracing'" },
	{ NULL, "defrag-max-mbps", "N", FLAG_COUNT, F(defrag_max_mbps), sizeof(int64_t), 0, DEFRAGD_MBPS_MAX, NULL,
	  "background defragmenter copy budget in MB/s, 0 = unlimited (default "
	  VMC_STR(DEFRAGD_DEFAULT_MAX_MBPS) ":\nevery moved page costs the guest a shadow-page refault, so gentle)" },
	{ "\nControl:\n", "name", "NAME", FLAG_STR, F(name), 0, 0, 0, NULL,
	  "control socket $VMCOMPACT_RUNTIME_DIR or /run/vmcompact/NAME.sock;\n"
	  "a named VM's verify/gups/stream runs until `vmcompact stop NAME`\n"
	  "unless the spec bounds it (passes=, seconds=, updates=)" },
	{ NULL, "socket", "PATH", FLAG_STR, F(socket_path), 0, 0, 0, NULL, "control socket at PATH" },
	{ "\nSnapshots (`vmcompact snapshot NAME FILE` writes one):\n", "restore", "FILE", FLAG_STR,
	  F(restore_path), 0, 0, 0, NULL,
	  "continue the guest saved in FILE (its RAM size and vCPUs; --mem,\n"
	  "--cpus, --workload and --age are ignored); every region on its\n"
	  "own huge block (backing_2m 1.0). A bad file: one error, exit 2" },
	{ NULL, "lazy", NULL, FLAG_BOOL, F(restore_lazy), 0, 0, 0, NULL,
	  "with --restore: start at once, fill memory on first touch\n"
	  "(userfaultfd) while the rest is read in GPA order" },
	{ NULL, "restore-layout", NULL, FLAG_BOOL, F(restore_layout), 0, 0, 0, NULL,
	  "with --restore: recreate the saved pool layout (aged frames,\n"
	  "ballast, migratetypes) instead of a linear one" },
};
#define NR_RUN_FLAGS (sizeof(run_flags) / sizeof(run_flags[0]))

static const char run_usage_head[] =
	"Usage: vmcompact run [OPTIONS]\n"
	"Boot the built-in guest agent in a KVM VM and run a workload on every vCPU.\n\n";
static const char run_usage_tail[] =
	"  -h, --help         this text\n"
	"\n"
	"Exit status: the guest's exit status (0 ok, 10 verify found corruption, 11 bad boot\n"
	"info); 1 host error; 2 usage error; 3 guest fault (bad hypercall, MMIO, triple fault,\n"
	"EFAULT); 4 the guest had to be force-stopped.\n\n";

void run_args__usage(FILE *f)
{
	fputs(run_usage_head, f);
	for (size_t i = 0; i < NR_RUN_FLAGS; i++) {
		const struct run_flag *fl = &run_flags[i];
		char left[40];
		const char *h = fl->help;

		if (fl->section)
			fputs(fl->section, f);
		snprintf(left, sizeof(left), "--%s%s%s", fl->name, fl->arg ? " " : "", fl->arg ? fl->arg : "");
		fprintf(f, "  %-18s%s", left, strlen(left) > 18 ? "\n" : " ");
		if (strlen(left) > 18)
			fprintf(f, "%21s", "");
		for (const char *nl; (nl = strchr(h, '\n')); h = nl + 1)
			fprintf(f, "%.*s\n%21s", (int)(nl - h), h, "");
		fprintf(f, "%s\n", h);
	}
	fputs(run_usage_tail, f);
	fputs(workload__help, f);
}

static int flag__set(const struct run_flag *fl, struct run_options *o, const char *val, char *err, size_t errlen)
{
	char *field = (char *)o + fl->off;
	uint64_t v;
	double d;
	char *end;

	switch (fl->kind) {
	case FLAG_BOOL:
		*(bool *)field = true;
		return 0;
	case FLAG_STR:
		*(const char **)field = val;
		return 0;
	case FLAG_COUNT:
		if (util__parse_count(val, &v) || v < fl->min || v > fl->max) {
			snprintf(err, errlen, "--%s '%s': need an integer in %llu..%llu", fl->name, val,
				 (unsigned long long)fl->min, (unsigned long long)fl->max);
			return -EINVAL;
		}
		if (fl->width == sizeof(uint32_t))
			*(uint32_t *)field = (uint32_t)v;
		else
			*(uint64_t *)field = v;
		return 0;
	case FLAG_FRACTION:
		d = strtod(val, &end);
		if (end == val || *end || !(d >= 0.0 && d <= 1.0)) {
			snprintf(err, errlen, "--%s '%s': need a fraction in 0..1", fl->name, val);
			return -EINVAL;
		}
		*(double *)field = d;
		return 0;
	case FLAG_DURATION:
		if (util__parse_duration_ms(val, &v) || v < fl->min) {
			snprintf(err, errlen, "--%s '%s': need seconds, e.g. 2, 0.5 or 500ms%s", fl->name, val,
				 fl->min ? " (not 0)" : "");
			return -EINVAL;
		}
		*(uint64_t *)field = v;
		return 0;
	case FLAG_CUSTOM:
		return fl->parse(o, val, err, errlen);
	}
	return -EINVAL;
}

/* A named VM is one you talk to: its workload runs until `vmcompact stop`, unless the
 * spec bounds it (passes=, seconds=, updates=). */
static void run_args__named_forever(struct run_options *o)
{
	for (unsigned i = 0; i < o->nr_workloads; i++) {
		struct workload_spec *w = &o->workload[i];

		if ((w->id == VMC_WL_VERIFY || w->id == VMC_WL_GUPS || w->id == VMC_WL_STREAM ||
		     w->id == VMC_WL_CHASE) &&
		    !w->args.passes && !w->args.duration_ms && !w->args.updates)
			w->args.flags |= VMC_WL_FOREVER;
	}
}

int run__parse_args(int argc, char **argv, struct run_options *o, char *err, size_t errlen)
{
	struct option longopts[NR_RUN_FLAGS + 2];
	int c, idx;

	for (size_t i = 0; i < NR_RUN_FLAGS; i++)
		longopts[i] = (struct option){ run_flags[i].name,
					       run_flags[i].kind == FLAG_BOOL ? no_argument : required_argument,
					       NULL, 256 + (int)i };
	longopts[NR_RUN_FLAGS] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[NR_RUN_FLAGS + 1] = (struct option){ NULL, 0, NULL, 0 };

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", longopts, &idx)) != -1) {
		if (c == 'h') {
			run_args__usage(stdout);
			return 1;
		}
		if (c == ':') {
			snprintf(err, errlen, "option '%s' needs a value", argv[optind - 1]);
			return -EINVAL;
		}
		if (c < 256 || c >= 256 + (int)NR_RUN_FLAGS) {
			snprintf(err, errlen, "unknown option '%s'", argv[optind - 1]);
			return -EINVAL;
		}
		if (flag__set(&run_flags[c - 256], o, optarg, err, errlen))
			return -EINVAL;
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	if ((o->restore_lazy || o->restore_layout) && !o->restore_path) {
		snprintf(err, errlen, "--%s needs --restore FILE", o->restore_lazy ? "lazy" : "restore-layout");
		return -EINVAL;
	}
	if (o->restore_lazy && o->restore_layout) {
		snprintf(err, errlen, "--lazy restores onto a linear layout only; drop --lazy or --restore-layout");
		return -EINVAL;
	}
	if (o->name || o->socket_path)
		run_args__named_forever(o);
	if (o->mem_bytes < VMC_GPA_WORKLOAD + (uint64_t)o->cpus * VMC_HUGE_SIZE) {
		snprintf(err, errlen, "--mem %llu MiB is too small for %u vCPUs (need 4 MiB + 2 MiB per vCPU)",
			 (unsigned long long)(o->mem_bytes >> 20), o->cpus);
		return -EINVAL;
	}
	return 0;
}
