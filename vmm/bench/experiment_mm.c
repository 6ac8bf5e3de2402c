/* experiment_mm.c: `vmcompact bench mm`: the defrag engine and host-thread workloads on one guest-memory layout, no KVM needed. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm/defrag.h"
#include "mm/mm.h"
#include "vmm/bench/bench.h"
#include "vmm/bench/defrag_baseline.h"
#include "vmm/bench/experiment_load.h"
#include "vmm/mm_json.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static const char bench_mm__usage[] =
"Usage: vmcompact bench mm [OPTIONS]\n"
"One guest-memory layout (frame pool, GPA map, window) without a VM: measure host threads\n"
"running a workload through the window (the host's page tables stand in for KVM's), defragment\n"
"it with the engine (threads parked per step as vCPUs would be), measure again. This is the\n"
"experiment runner's path where /dev/kvm is missing; defrag cost is the engine's own.\n"
"\n"
"Options:\n"
"  --mem SIZE          guest RAM (default 1G)\n"
"  --age F --seed N    aged layout (default 0.9, seed 7); --age 0 is linear\n"
"  --slack SIZE|N%     pool slack (default 6%)\n"
"  --pool-path DIR     pool file in DIR (tmpfs with huge=, or hugetlbfs)\n"
"  --workload LIST     chase, gups, stream, verify, comma-separated (default none)\n"
"  --ws LIST           working sets, comma-separated sizes (default: the whole guest)\n"
"  --threads N         workload threads (the vCPUs), 1..16 (default 1)\n"
"  --chase-page        chase: one element per 4 KiB page (default one per 64 B line)\n"
"  --measure-ms MS     each measurement window (default 1000)\n"
"  --measure WHEN      before, after or both (default both): around the defrag\n"
"  --defrag ALGO       none, planned or linux (default none): full defrag after the measurements\n"
"  --max-pause-us N    defrag step budget (default 1000)\n"
"  --max-mbps N        defrag copy budget in MB/s, 0 unlimited (default 0)\n"
"  --timeline-ms MS    during defrag run the first workload and sample coverage and throughput\n"
"  --trace FILE        write the engine's trace events to FILE (one line each)\n"
"  --baseline          also time memcpy and MADV_COLLAPSE of the guest size\n"
"  --json              machine-readable result on stdout\n";

#define MM_MAX_LIST 8
#define MM_MAX_SAMPLES 4096

struct mm_opts {
	uint64_t mem, slack_bytes;
	double slack_pct, age;
	uint64_t seed;
	const char *pool_path;
	int workloads[MM_MAX_LIST];
	unsigned nr_workloads;
	uint64_t ws[MM_MAX_LIST];
	unsigned nr_ws;
	unsigned threads;
	bool chase_page, baseline, json;
	uint64_t measure_ms, timeline_ms, max_pause_us, max_mbps;
	unsigned phases;           /* bit 0: measure before the defrag, bit 1: after */
	int algo;                  /* -1: no defrag */
	const char *trace_path;
};

struct mm_sample { double t, coverage, ops_per_sec; };

enum { O_MEM = 0x100, O_AGE, O_SEED, O_SLACK, O_POOL, O_WL, O_WS, O_THREADS, O_CHASE_PAGE, O_MEASURE,
       O_PHASES, O_DEFRAG, O_PAUSE, O_MBPS, O_TIMELINE, O_TRACE, O_BASELINE, O_JSON };

static const struct option mm_longopts[] = {
	{ "mem", required_argument, NULL, O_MEM }, { "age", required_argument, NULL, O_AGE },
	{ "seed", required_argument, NULL, O_SEED }, { "slack", required_argument, NULL, O_SLACK },
	{ "pool-path", required_argument, NULL, O_POOL }, { "workload", required_argument, NULL, O_WL },
	{ "ws", required_argument, NULL, O_WS }, { "threads", required_argument, NULL, O_THREADS },
	{ "chase-page", no_argument, NULL, O_CHASE_PAGE }, { "measure-ms", required_argument, NULL, O_MEASURE },
	{ "measure", required_argument, NULL, O_PHASES },
	{ "defrag", required_argument, NULL, O_DEFRAG }, { "max-pause-us", required_argument, NULL, O_PAUSE },
	{ "max-mbps", required_argument, NULL, O_MBPS }, { "timeline-ms", required_argument, NULL, O_TIMELINE },
	{ "trace", required_argument, NULL, O_TRACE }, { "baseline", no_argument, NULL, O_BASELINE },
	{ "json", no_argument, NULL, O_JSON }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
};

/* Comma-separated list; each item through parse_one. 0 or -EINVAL. */
static int parse_list(const char *arg, unsigned *n, int (*parse_one)(const char *, void *, unsigned), void *out)
{
	char buf[256], *save = NULL, *tok;

	if (strlen(arg) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, arg);
	*n = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (*n == MM_MAX_LIST || parse_one(tok, out, *n))
			return -EINVAL;
		(*n)++;
	}
	return *n ? 0 : -EINVAL;
}

static int parse_workload(const char *s, void *out, unsigned i)
{
	int k = hostload__parse(s);

	((int *)out)[i] = k;
	return k < 0 ? -EINVAL : 0;
}

static int parse_ws(const char *s, void *out, unsigned i)
{
	return util__parse_size(s, &((uint64_t *)out)[i]) || ((uint64_t *)out)[i] < 64 * 1024 ? -EINVAL : 0;
}

static int parse_value(struct mm_opts *o, int c, const char *arg)
{
	uint64_t v;
	char *end;

	switch (c) {
	case O_MEM:
		return util__parse_size(arg, &o->mem) || o->mem % VMC_HUGE_SIZE || o->mem < VMC_MIN_RAM ||
		       o->mem > VMC_MAX_RAM ? -EINVAL : 0;
	case O_AGE:
		o->age = strtod(arg, &end);
		return *end || end == arg || !(o->age >= 0 && o->age <= 1) ? -EINVAL : 0;
	case O_SEED: return util__parse_count(arg, &o->seed) ? -EINVAL : 0;
	case O_SLACK:
		if (arg[0] && arg[strlen(arg) - 1] == '%') {
			o->slack_pct = strtod(arg, &end);
			o->slack_bytes = 0;
			return *end != '%' || end == arg || !(o->slack_pct >= 0 && o->slack_pct <= 100) ? -EINVAL : 0;
		}
		o->slack_pct = -1;
		return util__parse_size(arg, &o->slack_bytes) ? -EINVAL : 0;
	case O_POOL: o->pool_path = arg; return 0;
	case O_WL: return parse_list(arg, &o->nr_workloads, parse_workload, o->workloads);
	case O_WS: return parse_list(arg, &o->nr_ws, parse_ws, o->ws);
	case O_THREADS:
		if (util__parse_count(arg, &v) || v < 1 || v > HOSTLOAD_MAX_THREADS)
			return -EINVAL;
		o->threads = (unsigned)v;
		return 0;
	case O_MEASURE: return util__parse_count(arg, &o->measure_ms) || o->measure_ms < 50 ? -EINVAL : 0;
	case O_PHASES:
		o->phases = !strcmp(arg, "before") ? 1 : !strcmp(arg, "after") ? 2 : !strcmp(arg, "both") ? 3 : 0;
		return o->phases ? 0 : -EINVAL;
	case O_DEFRAG:
		o->algo = strcmp(arg, "none") ? defrag_algo__parse(arg) : -1;
		return o->algo < 0 && strcmp(arg, "none") ? -EINVAL : 0;
	case O_PAUSE:
		return util__parse_count(arg, &o->max_pause_us) || o->max_pause_us < 50 ||
		       o->max_pause_us > 1000000 ? -EINVAL : 0;
	case O_MBPS: return util__parse_count(arg, &o->max_mbps) ? -EINVAL : 0;
	case O_TIMELINE: return util__parse_count(arg, &o->timeline_ms) || o->timeline_ms < 10 ? -EINVAL : 0;
	case O_TRACE: o->trace_path = arg; return 0;
	}
	return -EINVAL;
}

/* The option whose value getopt_long just returned ("--mem 3M" and "--mem=3M" alike). */
static const char *opt_name(char **argv, int optind_now, const char *value)
{
	return optind_now >= 2 && argv[optind_now - 1] == value ? argv[optind_now - 2] : argv[optind_now - 1];
}

/* 0 parsed, 1 help printed, -EINVAL with a message printed. */
static int mm_parse(int argc, char **argv, struct mm_opts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->mem = 1ull << 30;
	o->age = 0.9;
	o->seed = 7;
	o->slack_pct = 6;
	o->threads = 1;
	o->measure_ms = 1000;
	o->max_pause_us = DEFRAG_MAX_PAUSE_US_DEFAULT;
	o->algo = -1;
	o->phases = 3;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", mm_longopts, NULL)) != -1) {
		switch (c) {
		case O_CHASE_PAGE: o->chase_page = true; break;
		case O_BASELINE: o->baseline = true; break;
		case O_JSON: o->json = true; break;
		case 'h': fputs(bench_mm__usage, stdout); return 1;
		case '?': case ':':
			fprintf(stderr, "vmcompact bench mm: unknown option or missing value '%s'\n"
				"Try 'vmcompact bench mm --help'.\n", argv[optind - 1]);
			return -EINVAL;
		default:
			if (parse_value(o, c, optarg)) {
				fprintf(stderr, "vmcompact bench mm: bad value '%s' for %s\n", optarg,
					opt_name(argv, optind, optarg));
				return -EINVAL;
			}
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vmcompact bench mm: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!o->nr_ws) {
		o->ws[0] = o->mem;
		o->nr_ws = 1;
	}
	for (unsigned i = 0; i < o->nr_ws; i++)
		if (o->ws[i] > o->mem) {
			fprintf(stderr, "vmcompact bench mm: working set %llu MiB is larger than --mem\n",
				(unsigned long long)(o->ws[i] >> 20));
			return -EINVAL;
		}
	return 0;
}

static struct json_object *measure(struct mm *mm, const struct mm_opts *o, int kind, uint64_t ws,
				   const char *phase, char *err, size_t errlen)
{
	struct hostload *hl = calloc(1, sizeof(*hl));
	struct json_object *m;
	uint64_t ops0, ops1, t0, t1, cpu0, cpu1;
	double per_s, ns;

	if (!hl || hostload__start(hl, kind, window__gpa_ptr(&mm->win, 0), ws, o->threads, o->chase_page,
				   err, errlen)) {
		free(hl);
		return NULL;
	}
	usleep(200000); /* warm-up: the threads fault in their mappings and fill the TLB */
	ops0 = hostload__ops(hl);
	cpu0 = hostload__cpu_ns(hl);
	t0 = util__now_ns();
	usleep((useconds_t)(o->measure_ms * 1000));
	ops1 = hostload__ops(hl);
	cpu1 = hostload__cpu_ns(hl);
	t1 = util__now_ns();
	hostload__stop(hl);
	/* per thread-CPU second: this host is shared, wall time would count descheduled time */
	ns = ops1 > ops0 ? (double)(cpu1 - cpu0) / (double)(ops1 - ops0) : 0;
	per_s = ns > 0 ? 1e9 * o->threads / ns : 0;
	m = json_object_new_object();
	json_object_object_add(m, "phase", json_object_new_string(phase));
	json_object_object_add(m, "workload", json_object_new_string(hostload__name(kind)));
	json_object_object_add(m, "ws_bytes", json_object_new_uint64(ws));
	json_object_object_add(m, "threads", json_object_new_int((int)o->threads));
	json_object_object_add(m, "unit", json_object_new_string(hostload__unit(kind)));
	json_object_object_add(m, "per_sec", json_object_new_double(per_s));
	json_object_object_add(m, "cpu_share", json_object_new_double(
		(double)(cpu1 - cpu0) / ((double)(t1 - t0) * o->threads)));
	if (kind == HOSTLOAD_STREAM)
		json_object_object_add(m, "bytes_per_sec", json_object_new_double(per_s));
	else
		json_object_object_add(m, kind == HOSTLOAD_GUPS ? "ns_per_update" : "ns_per_access",
				       json_object_new_double(ns));
	json_object_object_add(m, "errors", json_object_new_uint64(hostload__errors(hl)));
	free(hl);
	return m;
}

static int measure_all(struct mm *mm, const struct mm_opts *o, const char *phase, struct json_object *arr,
		       char *err, size_t errlen)
{
	for (unsigned w = 0; w < o->nr_workloads; w++)
		for (unsigned i = 0; i < o->nr_ws; i++) {
			struct json_object *m = measure(mm, o, o->workloads[w], o->ws[i], phase, err, errlen);

			if (!m)
				return -1;
			json_object_array_add(arr, m);
		}
	return 0;
}

struct defrag_thread {
	struct mm *mm;
	struct defrag_request req;
	struct mm_step_ops ops;
	struct defrag_stats st;
	int ret;
	double start_s;            /* timeline: when the defrag started, seconds after the first sample */
	volatile int done;
};

static void *defrag_thread_main(void *opaque)
{
	struct defrag_thread *d = opaque;

	d->ret = mm__defrag(d->mm, &d->req, d->ops.pause ? &d->ops : NULL, &d->st);
	__atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static double coverage_now(struct mm *mm)
{
	uint32_t n = 0;

	pthread_mutex_lock(&mm->lock);
	for (uint32_t r = 0; r < mm->map.nr_regions; r++)
		n += mm->region_huge_mapped[r];
	pthread_mutex_unlock(&mm->lock);
	return mm->map.nr_regions ? (double)n / mm->map.nr_regions : 0;
}

/* Sleep one interval, then record coverage and the workload's throughput over it. Returns now. */
static uint64_t sample(struct mm *mm, struct hostload *hl, uint64_t t0, uint64_t *last_t, uint64_t *last_ops,
		       uint64_t interval_ms, struct mm_sample *samples, unsigned *nr_samples)
{
	uint64_t ops, now;

	usleep((useconds_t)(interval_ms * 1000));
	ops = hostload__ops(hl);
	now = util__now_ns();
	if (*nr_samples < MM_MAX_SAMPLES)
		samples[(*nr_samples)++] = (struct mm_sample){ (now - t0) / 1e9, coverage_now(mm),
			(double)(ops - *last_ops) * 1e9 / (double)(now - *last_t) };
	*last_ops = ops;
	*last_t = now;
	return now;
}

/* Defrag on its own thread; with a timeline, a workload runs meanwhile and we sample it. */
static int run_defrag(struct mm *mm, const struct mm_opts *o, struct defrag_thread *d,
		      struct mm_sample *samples, unsigned *nr_samples, char *err, size_t errlen)
{
	struct hostload *hl = NULL;
	uint64_t t0, last_ops = 0, last_t;
	pthread_t tid;
	int ret;

	d->mm = mm;
	defrag_request__init(&d->req);
	d->req.algo = (enum defrag_algo)o->algo;
	d->req.max_pause_ns = o->max_pause_us * 1000;
	d->req.max_bytes_per_sec = o->max_mbps * 1000000;
	*nr_samples = 0;
	if (o->timeline_ms && o->nr_workloads) {
		hl = calloc(1, sizeof(*hl));
		if (!hl || hostload__start(hl, o->workloads[0], window__gpa_ptr(&mm->win, 0), o->ws[o->nr_ws - 1],
					   o->threads, o->chase_page, err, errlen)) {
			free(hl);
			return -1;
		}
		hostload__step_ops(hl, &d->ops);
		usleep(500000); /* a steady state before the defragmenter starts */
	}
	t0 = last_t = util__now_ns();
	if (hl) {
		last_ops = hostload__ops(hl);
		/* one second of the old backing first, so the plot shows before, during and after */
		for (int i = 0; i < 1000 / (int)o->timeline_ms; i++)
			sample(mm, hl, t0, &last_t, &last_ops, o->timeline_ms, samples, nr_samples);
	}
	d->start_s = (util__now_ns() - t0) / 1e9;
	ret = pthread_create(&tid, NULL, defrag_thread_main, d);
	if (ret) {
		snprintf(err, errlen, "defrag thread: %s", strerror(ret));
		goto out;
	}
	while (hl) {
		bool done = __atomic_load_n(&d->done, __ATOMIC_ACQUIRE);
		uint64_t now = sample(mm, hl, t0, &last_t, &last_ops, o->timeline_ms, samples, nr_samples);

		/* keep sampling a while after the end: throughput on the new backing */
		if (done && (now - t0) / 1e9 > d->start_s + d->st.wall_ns / 1e9 + 2)
			break;
	}
	pthread_join(tid, NULL);
out:
	if (hl) {
		hostload__stop(hl);
		if (hostload__errors(hl))
			fprintf(stderr, "vmcompact bench mm: VERIFY ERRORS during defrag: %llu\n",
				(unsigned long long)hostload__errors(hl));
		free(hl);
	}
	return ret ? -1 : 0;
}

static struct json_object *layout_json(const struct mm_stat *s)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "backing_2m", json_object_new_double(s->backing_2m));
	json_object_object_add(o, "backing_2m_achievable", json_object_new_double(s->backing_2m_achievable));
	json_object_object_add(o, "regions", json_object_new_int((int)s->nr_regions));
	json_object_object_add(o, "regions_backed_2m", json_object_new_int((int)s->regions_backed_2m));
	json_object_object_add(o, "vmas", json_object_new_uint64(s->vmas));
	json_object_object_add(o, "huge_blocks", json_object_new_uint64(s->huge_blocks));
	json_object_object_add(o, "metadata_bytes", json_object_new_uint64(s->metadata_bytes));
	return o;
}

static struct json_object *timeline_json(const struct mm_sample *s, unsigned n)
{
	struct json_object *a = json_object_new_array();

	for (unsigned i = 0; i < n; i++) {
		struct json_object *p = json_object_new_array();

		json_object_array_add(p, json_object_new_double(s[i].t));
		json_object_array_add(p, json_object_new_double(s[i].coverage));
		json_object_array_add(p, json_object_new_double(s[i].ops_per_sec));
		json_object_array_add(a, p);
	}
	return a;
}

static void baseline_json(struct json_object *root, uint64_t bytes, uint64_t seed)
{
	double memcpy_s = 0, collapse_s = 0;
	uint64_t collapsed = 0;
	char err[512] = "";
	struct json_object *b = json_object_new_object();

	if (baseline__memcpy_4k(bytes, seed, &memcpy_s, err, sizeof(err)))
		json_object_object_add(b, "memcpy_error", json_object_new_string(err));
	json_object_object_add(b, "memcpy_seconds", json_object_new_double(memcpy_s));
	err[0] = 0;
	if (baseline__madv_collapse(bytes, &collapse_s, &collapsed, err, sizeof(err)))
		json_object_object_add(b, "madv_collapse_error", json_object_new_string(err));
	json_object_object_add(b, "madv_collapse_seconds", json_object_new_double(collapse_s));
	json_object_object_add(b, "madv_collapse_bytes", json_object_new_uint64(collapsed));
	json_object_object_add(root, "baseline", b);
}

static void mm_config_from(const struct mm_opts *o, struct mm_config *cfg)
{
	struct aging_config ag = AGING_DEFAULTS;
	uint64_t slack = o->slack_pct >= 0 ? (uint64_t)((double)o->mem * o->slack_pct / 100) : o->slack_bytes;

	memset(cfg, 0, sizeof(*cfg));
	cfg->guest_bytes = o->mem;
	cfg->slack_bytes = (slack + VMC_HUGE_SIZE - 1) / VMC_HUGE_SIZE * VMC_HUGE_SIZE;
	cfg->pool_path = o->pool_path;
	cfg->prefault = true;
	ag.age = o->age;
	ag.seed = o->seed;
	cfg->aging = ag;
}

static void print_human(struct json_object *root)
{
	printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int bench_mm__body(const struct mm_opts *o, struct mm *mm, struct json_object *root, char *err, size_t errlen)
{
	struct json_object *meas = json_object_new_array();
	struct mm_sample *samples = calloc(MM_MAX_SAMPLES, sizeof(*samples));
	struct defrag_thread *d = calloc(1, sizeof(*d));
	struct mm_stat *s = calloc(1, sizeof(*s));
	unsigned nr_samples = 0;
	int rc = -1;

	json_object_object_add(root, "measurements", meas);
	if (!samples || !d || !s) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	mm__stat(mm, s);
	json_object_object_add(root, "before", layout_json(s));
	if ((o->phases & 1 || o->algo < 0) && measure_all(mm, o, "before", meas, err, errlen))
		goto out;
	if (o->algo >= 0) {
		if (run_defrag(mm, o, d, samples, &nr_samples, err, errlen))
			goto out;
		json_object_object_add(root, "defrag", mm_json__defrag_stats(&d->st));
		json_object_object_add(root, "defrag_algo", json_object_new_string(defrag_algo__name(o->algo)));
		if (nr_samples) {
			json_object_object_add(root, "timeline", timeline_json(samples, nr_samples));
			json_object_object_add(root, "timeline_defrag_start_s", json_object_new_double(d->start_s));
		}
		mm__stat(mm, s);
		json_object_object_add(root, "after", layout_json(s));
		if (o->phases & 2 && measure_all(mm, o, "after", meas, err, errlen))
			goto out;
		if (d->ret && d->ret != -ECANCELED) {
			snprintf(err, errlen, "defrag: %s", d->st.error_msg);
			goto out;
		}
	}
	rc = 0;
out:
	free(samples);
	free(d);
	free(s);
	return rc;
}

int bench_mm__cmd(int argc, char **argv)
{
	struct json_object *root;
	struct mm_trace trace = { 0 };
	struct mm_config cfg;
	struct mm_opts o;
	struct mm *mm;
	char err[1024] = "";
	uint64_t t0;
	int rc;

	rc = mm_parse(argc, argv, &o);
	if (rc)
		return rc > 0 ? 0 : VMC_EXIT_USAGE;
	mm = calloc(1, sizeof(*mm));
	if (!mm)
		return VMC_EXIT_HOST_ERROR;
	mm_config_from(&o, &cfg);
	t0 = util__now_ns();
	if (mm__create(mm, &cfg, err, sizeof(err))) {
		fprintf(stderr, "vmcompact bench mm: %s\n", err);
		free(mm);
		return VMC_EXIT_HOST_ERROR;
	}
	root = json_object_new_object();
	json_object_object_add(root, "level", json_object_new_string("mm"));
	json_object_object_add(root, "mem_bytes", json_object_new_uint64(o.mem));
	json_object_object_add(root, "slack_bytes", json_object_new_uint64(cfg.slack_bytes));
	json_object_object_add(root, "age", json_object_new_double(o.age));
	json_object_object_add(root, "seed", json_object_new_uint64(o.seed));
	json_object_object_add(root, "pool_backing", json_object_new_string(pool_backing__name(mm->pool.backing)));
	json_object_object_add(root, "create_seconds", json_object_new_double((util__now_ns() - t0) / 1e9));
	if (o.trace_path) {
		if (mm_trace__open(&trace, o.trace_path, err, sizeof(err)))
			goto fail;
		mm->trace = &trace;
	}
	if (bench_mm__body(&o, mm, root, err, sizeof(err)))
		goto fail;
	mm->trace = NULL;
	mm__destroy(mm);
	if (mm_trace__close(&trace))
		fprintf(stderr, "vmcompact bench mm: writing the trace file failed\n");
	if (o.baseline)
		baseline_json(root, o.mem, o.seed);
	if (o.json)
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	else
		print_human(root);
	json_object_put(root);
	free(mm);
	return 0;
fail:
	fprintf(stderr, "vmcompact bench mm: %s\n", err);
	mm->trace = NULL;
	mm__destroy(mm);
	mm_trace__close(&trace);
	json_object_put(root);
	free(mm);
	return VMC_EXIT_HOST_ERROR;
}
