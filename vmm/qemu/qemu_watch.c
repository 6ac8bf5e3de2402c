/* qemu_watch.c: `vmcompact watch`: keep a QEMU guest's RAM on 2 MiB pages with the background defragmenter's policy. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/defragd.h"
#include "vmm/qemu/qemu_cli.h"
#include "vmm/util.h"
#include "vmm/qemu/qemu_target_cli.h"

/* A foreign guest has no vCPU pause; the budget is the longest process_madvise call. */
#define WATCH_DEFAULT_STALL_US 5000

static volatile sig_atomic_t watch_stop;

static void watch__on_signal(int sig)
{
	watch_stop = 1;
}

struct watch {
	struct defragd_policy policy;
	uint64_t duration_ms;
	struct qemu_target t;
	struct collapse_range *ranges;
	size_t nr_ranges;
	enum defragd_state state;
	struct defragd_counters counters;
	uint64_t backoff_until_ms;
};

static void watch__usage(FILE *f)
{
	fprintf(f, "usage: vmcompact watch --domain NAME | --qemu PID | --qmp PATH [--proactiveness N]\n"
		"                       [--interval-ms N] [--max-mbps N] [--max-stall-ms N]\n"
		"                       [--backoff-ms N] [--regions-per-wakeup N] [--duration SECS]\n\n"
		"Keep a QEMU guest's RAM on 2 MiB host pages with the background defragmenter's\n"
		"policy (kcompactd's proactive compaction): every interval, score = 100 x\n"
		"(populated 2 MiB regions not on a huge page) / (populated regions); over the high\n"
		"watermark (low + 10, low = max(100 - proactiveness, 5)) collapse up to N regions\n"
		"per wakeup until the score is at or under the low one; back off when a round\n"
		"makes no progress. One line per round. Stops on Ctrl-C or when QEMU exits.\n\n"
		QEMU_TARGET_USAGE
		"  --proactiveness N      0..100 (%u)\n"
		"  --interval-ms N        wakeup period (%u)\n"
		"  --max-mbps N           collapse rate in MB/s, 0 = unlimited (%u)\n"
		"  --max-stall-ms N       longest single process_madvise call to aim for (%u)\n"
		"  --backoff-ms N         sleep after a round without progress (%u)\n"
		"  --regions-per-wakeup N (%u)\n"
		"  --duration SECS        stop after this long, 0 = until stopped (0)\n\n%s",
		((struct defragd_policy)DEFRAGD_POLICY_DEFAULTS).proactiveness,
		((struct defragd_policy)DEFRAGD_POLICY_DEFAULTS).interval_ms,
		((struct defragd_policy)DEFRAGD_POLICY_DEFAULTS).max_mbps, WATCH_DEFAULT_STALL_US / 1000,
		((struct defragd_policy)DEFRAGD_POLICY_DEFAULTS).backoff_ms,
		((struct defragd_policy)DEFRAGD_POLICY_DEFAULTS).regions_per_wakeup,
		qemu_exit_codes_help);
}

static int watch__parse(int argc, char **argv, struct qemu_target_opts *o, struct watch *w)
{
	static const struct option opts[] = {
		QEMU_TARGET_LONGOPTS,
		{ "proactiveness", required_argument, NULL, 'p' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "max-mbps", required_argument, NULL, 'r' },
		{ "max-stall-ms", required_argument, NULL, 's' },
		{ "backoff-ms", required_argument, NULL, 'b' },
		{ "regions-per-wakeup", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct defragd_policy p = DEFRAGD_POLICY_DEFAULTS;
	bool bad = false;
	char err[160], *end;
	unsigned long long v;
	int opt;

	p.enabled = true;
	p.max_pause_us = WATCH_DEFAULT_STALL_US;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (qemu_target_opts__take(o, opt, optarg, &bad))
			continue;
		if (opt == 'h') {
			watch__usage(stdout);
			return -1;
		}
		if (!strchr("pirsbnt", opt)) {
			bad = true;
			continue;
		}
		errno = 0;
		v = strtoull(optarg, &end, 10);
		if (errno || end == optarg || *end || v > UINT32_MAX) {
			fprintf(stderr, "vmcompact watch: invalid number '%s'\n", optarg);
			bad = true;
			continue;
		}
		switch (opt) {
		case 'p': p.proactiveness = (unsigned)v; break;
		case 'i': p.interval_ms = (uint32_t)v; break;
		case 'r': p.max_mbps = (uint32_t)v; break;
		case 's': p.max_pause_us = (uint32_t)(v * 1000 > UINT32_MAX ? UINT32_MAX : v * 1000); break;
		case 'b': p.backoff_ms = (uint32_t)v; break;
		case 'n': p.regions_per_wakeup = (uint32_t)v; break;
		case 't': w->duration_ms = v * 1000; break;
		}
	}
	if (!bad && defragd__check_policy(&p, err, sizeof(err))) {
		fprintf(stderr, "vmcompact watch: %s\n", err);
		bad = true;
	}
	if (bad || optind != argc) {
		watch__usage(stderr);
		return QEMU_EXIT_USAGE;
	}
	w->policy = p;
	return 0;
}

/* Populated and huge 2 MiB regions of the collapsible blocks; -ESRCH when QEMU is gone. */
static int watch__measure(struct watch *w, uint64_t *populated, uint64_t *huge)
{
	char err[256];

	*populated = *huge = 0;
	for (size_t i = 0; i < w->nr_ranges; i++) {
		struct region_map m;
		int r = region_map__scan(w->t.pid, w->ranges[i].start, w->ranges[i].end, &m, err,
					 sizeof(err));

		if (r < 0)
			return r;
		*populated += m.nr - m.count[REGION_EMPTY];
		*huge += m.count[REGION_HUGE];
		region_map__free(&m);
	}
	return 0;
}

static unsigned watch__score(uint64_t populated, uint64_t huge)
{
	return populated ? (unsigned)(100 * (populated - huge) / populated) : 0;
}

static void watch__backoff(struct watch *w)
{
	w->counters.backoffs++;
	w->backoff_until_ms = (util__now_ns() / 1000000) + w->policy.backoff_ms;
	w->state = DEFRAGD_BACKOFF;
}

/* One collapse round of at most regions_per_wakeup regions. */
static int watch__round(struct watch *w, unsigned score_before, uint64_t huge_before)
{
	struct collapse_job job = {
		.pid = w->t.pid, .ranges = w->ranges, .nr_ranges = w->nr_ranges, .cancel = &watch_stop,
		.budget = { .max_stall_us = w->policy.max_pause_us, .max_mbps = w->policy.max_mbps,
			    .max_regions = w->policy.regions_per_wakeup, .retry_failed = true },
	};
	struct collapse_result res;
	uint64_t populated, huge;
	unsigned score;
	char err[256];
	int r = collapse__run(&job, &res, err, sizeof(err));

	if (r == -ESRCH || r == -EPERM)
		return r;
	w->counters.rounds++;
	if (r < 0 && r != -ECANCELED) {
		w->counters.failures++;
		printf("round %" PRIu64 ": %s\n", w->counters.rounds, err);
		watch__backoff(w);
		return 0;
	}
	w->counters.regions_promoted += res.collapsed;
	r = watch__measure(w, &populated, &huge);
	if (r < 0)
		return r;
	score = watch__score(populated, huge);
	w->counters.last_score = score;
	printf("round %" PRIu64 ": collapsed %" PRIu64 "/%" PRIu64 " (failed %" PRIu64 ": EAGAIN %"
	       PRIu64 " ENOMEM %" PRIu64 "), longest call %.2f ms, score %u -> %u, huge %" PRIu64
	       "/%" PRIu64 "\n", w->counters.rounds, res.collapsed, res.attempted, res.failed,
	       res.failed_eagain, res.failed_enomem, res.call_max_ms, score_before, score, huge,
	       populated);
	fflush(stdout);
	if (res.cancelled)
		return 0;
	if (huge <= huge_before && score >= score_before)
		watch__backoff(w);
	else if (score <= defragd__wmark(w->policy.proactiveness, true))
		w->state = DEFRAGD_IDLE;
	return 0;
}

/* One wakeup, the shape of defragd's: start over high, work until at or under low. */
static int watch__wakeup(struct watch *w)
{
	unsigned low = defragd__wmark(w->policy.proactiveness, true);
	unsigned high = defragd__wmark(w->policy.proactiveness, false);
	enum defragd_state was = w->state;
	uint64_t populated, huge;
	unsigned score;
	int r;

	w->counters.wakeups++;
	if (w->state == DEFRAGD_BACKOFF) {
		if ((util__now_ns() / 1000000) < w->backoff_until_ms)
			return 0;
		w->state = DEFRAGD_IDLE;
	}
	r = watch__measure(w, &populated, &huge);
	if (r < 0)
		return r;
	score = watch__score(populated, huge);
	w->counters.last_score = score;
	if (w->state != DEFRAGD_COMPACTING && score > high)
		w->state = DEFRAGD_COMPACTING;
	if (w->state == DEFRAGD_COMPACTING && score <= low)
		w->state = DEFRAGD_IDLE;
	if (w->state != was)
		printf("state %s -> %s (score %u, wmark low %u high %u, huge %" PRIu64 "/%" PRIu64
		       " populated regions)\n", defragd_state_names[was],
		       defragd_state_names[w->state], score, low, high, huge, populated);
	fflush(stdout);
	if (w->state != DEFRAGD_COMPACTING)
		return 0;
	return watch__round(w, score, huge);
}

static int watch__loop(struct watch *w)
{
	uint64_t start = (util__now_ns() / 1000000);
	int r = 0;

	while (!watch_stop && (!w->duration_ms || (util__now_ns() / 1000000) - start < w->duration_ms)) {
		struct timespec ts = { .tv_sec = w->policy.interval_ms / 1000,
				       .tv_nsec = (long)(w->policy.interval_ms % 1000) * 1000000L };

		r = watch__wakeup(w);
		if (r < 0)
			break;
		nanosleep(&ts, NULL);
	}
	if (r == -ESRCH) {
		printf("%s exited\n", w->t.label);
		r = 0;
	} else if (r == -EPERM) {
		fprintf(stderr, "vmcompact watch: permission denied on PID %d (process_madvise needs "
			"CAP_SYS_NICE and ptrace access)\n", (int)w->t.pid);
	}
	printf("watch: %" PRIu64 " wakeups, %" PRIu64 " rounds, %" PRIu64 " regions collapsed, %"
	       PRIu64 " backoffs, last score %u\n", w->counters.wakeups, w->counters.rounds,
	       w->counters.regions_promoted, w->counters.backoffs, w->counters.last_score);
	return qemu_exit__from_errno(r);
}

int cmd_watch(int argc, char **argv)
{
	struct qemu_target_opts o = { 0 };
	struct watch *w = calloc(1, sizeof(*w));
	char err[1024];
	int r;

	if (!w)
		return QEMU_EXIT_FAILED;
	r = watch__parse(argc, argv, &o, w);
	if (r) {
		free(w);
		return r < 0 ? QEMU_EXIT_OK : r;
	}
	r = qemu_target_opts__open(&o, "watch", &w->t);
	if (r) {
		free(w);
		return r;
	}
	r = qemu_target__ranges(&w->t, &w->ranges, &w->nr_ranges, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "vmcompact watch: %s\n", err);
		r = qemu_exit__from_errno(r);
	} else {
		watch_stop = 0;
		signal(SIGINT, watch__on_signal);
		signal(SIGTERM, watch__on_signal);
		w->state = DEFRAGD_IDLE;
		printf("watching %s: proactiveness %u (wmark low %u high %u), every %u ms, up to %u "
		       "regions per wakeup, %u MB/s, calls under %.1f ms\n", w->t.label,
		       w->policy.proactiveness, defragd__wmark(w->policy.proactiveness, true),
		       defragd__wmark(w->policy.proactiveness, false), w->policy.interval_ms,
		       w->policy.regions_per_wakeup, w->policy.max_mbps, w->policy.max_pause_us / 1e3);
		r = watch__loop(w);
	}
	free(w->ranges);
	qemu_target__close(&w->t);
	free(w);
	return r;
}
