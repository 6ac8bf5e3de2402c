/* qemu_cli.c: `vmcompact stat` and `vmcompact defrag` for QEMU guests vmcompact did not start (--domain/--qemu/--qmp). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vmm/qemu/qemu_cli.h"
#include "vmm/qemu/qemu_target_cli.h"

bool qemu_cli__wants(int argc, char **argv)
{
	static const char *const names[] = { "--domain", "--qemu", "--qmp" };

	for (int i = 1; i < argc; i++)
		for (size_t k = 0; k < 3; k++) {
			size_t n = strlen(names[k]);

			if (!strncmp(argv[i], names[k], n) && (argv[i][n] == '\0' || argv[i][n] == '='))
				return true;
		}
	return false;
}

/* ------------------------------------------------------------------ */
/* stat */

static void qstat__usage(FILE *f)
{
	fprintf(f, "usage: vmcompact stat --domain NAME | --qemu PID | --qmp PATH [--map] [--json]\n\n"
		"A QEMU guest's RAM blocks (QMP query-memdev matched to /proc/PID/maps):\n"
		"size, backing, share on 2 MiB host pages (smaps AnonHugePages, ShmemPmdMapped,\n"
		"FilePmdMapped, hugetlb), 2 MiB regions by state from pagemap + kpageflags\n"
		"(H huge, 4 small pages, . empty, U unknown), and KVM's pages_4k/pages_2m\n"
		"through QMP query-stats when QEMU runs with KVM.\n\n"
		QEMU_TARGET_USAGE
		"  --map             print the per-region map\n"
		"  --json            machine-readable\n\n%s", qemu_exit_codes_help);
}

int cmd_qemu_stat(int argc, char **argv)
{
	static const struct option opts[] = {
		QEMU_TARGET_LONGOPTS,
		{ "map", no_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct qemu_target_opts o = { 0 };
	struct qemu_target t;
	struct qemu_cover c;
	bool json = false, map = false, bad = false;
	char err[512];
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "jmh", opts, NULL)) != -1) {
		if (qemu_target_opts__take(&o, opt, optarg, &bad))
			continue;
		if (opt == 'j')
			json = true;
		else if (opt == 'm')
			map = true;
		else if (opt == 'h') {
			qstat__usage(stdout);
			return QEMU_EXIT_OK;
		} else
			bad = true;
	}
	if (bad || optind != argc) {
		qstat__usage(stderr);
		return QEMU_EXIT_USAGE;
	}
	r = qemu_target_opts__open(&o, "stat", &t);
	if (r)
		return r;
	r = qemu_cover__take(&t, &c, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "vmcompact stat: %s\n", err);
		r = qemu_exit__from_errno(r);
	} else if (json) {
		struct json_object *o2 = qemu_cover__json(&t, &c, map);

		printf("%s\n", json_object_to_json_string_ext(o2, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o2);
	} else {
		qemu_cover__print(&t, &c, map, stdout);
	}
	qemu_cover__free(&c, t.nr_blocks);
	qemu_target__close(&t);
	return r;
}

/* ------------------------------------------------------------------ */
/* defrag */

static volatile sig_atomic_t qdefrag_cancel;

static void qdefrag__on_signal(int sig)
{
	qdefrag_cancel = 1;
}

static void qdefrag__usage(FILE *f)
{
	fprintf(f, "usage: vmcompact defrag --domain NAME | --qemu PID | --qmp PATH [--wait]\n"
		"                        [--max-stall-ms N] [--max-mbps N] [--max-regions N]\n"
		"                        [--single-call] [--json]\n\n"
		"Put a running QEMU guest's RAM on 2 MiB host pages from outside, with\n"
		"pidfd_open + process_madvise(MADV_COLLAPSE): the most populated 4 KiB regions\n"
		"first, in calls sized so that one call (the guest's longest stall on that\n"
		"memory) stays under --max-stall-ms, at most --max-mbps. Ctrl-C cancels\n"
		"between calls. Without --wait the work continues in the background.\n\n"
		QEMU_TARGET_USAGE
		"  --wait            stay, show progress and the result (exit 1 if regions failed)\n"
		"  --max-stall-ms N  longest single call to aim for, 0.1..10000 (5)\n"
		"  --max-mbps N      collapse rate limit in MB/s, 0 = unlimited (0)\n"
		"  --max-regions N   attempt at most N regions\n"
		"  --single-call     one call over all RAM, no budgets (KubeVirt's way)\n"
		"  --json            the result as JSON (implies --wait)\n\n%s", qemu_exit_codes_help);
}

static void qdefrag__progress(void *ctx, uint64_t done, uint64_t total,
			      const struct collapse_result *r)
{
	bool *tty = ctx;

	if (!*tty)
		return;
	printf("\r[%3u%%] %" PRIu64 "/%" PRIu64 " regions, %" PRIu64 " collapsed, %" PRIu64
	       " failed, longest call %.2f ms", total ? (unsigned)(done * 100 / total) : 100, done,
	       total, r->collapsed, r->failed, r->call_max_ms);
	fflush(stdout);
}

static void qdefrag__summary(const struct collapse_result *r, const struct qemu_cover *before,
			     const struct qemu_cover *after)
{
	if (r->cancelled)
		printf("cancelled after %" PRIu64 " regions\n", r->attempted);
	printf("collapsed %" PRIu64 " of %" PRIu64 " regions attempted in %.3f s (%" PRIu64
	       " calls, longest %.2f ms, %.3f s in calls, %.3f s throttled)\n", r->collapsed,
	       r->attempted, r->seconds, r->calls, r->call_max_ms, r->call_seconds, r->sleep_seconds);
	printf("  regions: %" PRIu64 " total, %" PRIu64 " already huge, %" PRIu64 " unpopulated "
	       "(skipped), %" PRIu64 " huge now\n", r->regions, r->already_huge, r->unpopulated,
	       r->huge_after);
	if (r->failed)
		printf("  not collapsed: %" PRIu64 " (EAGAIN %" PRIu64 ": pages busy/locked, ENOMEM %"
		       PRIu64 ": no free huge page, EINVAL %" PRIu64 ", other %" PRIu64 ")\n",
		       r->failed, r->failed_eagain, r->failed_enomem, r->failed_einval,
		       r->failed_other);
	printf("  2 MiB share (smaps): %.1f%% -> %.1f%%\n", 100.0 * qemu_cover__share(before),
	       100.0 * qemu_cover__share(after));
	if (after->kvm.valid)
		printf("  KVM pages_2m %" PRIu64 " -> %" PRIu64 ", pages_4k %" PRIu64 " -> %" PRIu64 "\n",
		       before->kvm.pages_2m, after->kvm.pages_2m, before->kvm.pages_4k,
		       after->kvm.pages_4k);
	else
		printf("  KVM pages: %s\n", after->kvm.why);
}

struct qdefrag_opts {
	struct collapse_budget budget;
	bool wait, json;
};

static int qdefrag__parse(int argc, char **argv, struct qemu_target_opts *o, struct qdefrag_opts *d)
{
	static const struct option opts[] = {
		QEMU_TARGET_LONGOPTS,
		{ "wait", no_argument, NULL, 'w' },
		{ "max-stall-ms", required_argument, NULL, 's' },
		{ "max-mbps", required_argument, NULL, 'r' },
		{ "max-regions", required_argument, NULL, 'n' },
		{ "single-call", no_argument, NULL, '1' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	static const struct collapse_budget defaults = COLLAPSE_BUDGET_DEFAULTS;
	bool bad = false;
	char *end;
	double v;
	int opt;

	d->budget = defaults;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "wjh", opts, NULL)) != -1) {
		if (qemu_target_opts__take(o, opt, optarg, &bad))
			continue;
		if (opt == 'h') {
			qdefrag__usage(stdout);
			return -1;
		}
		if (opt == 'w' || opt == 'j' || opt == '1') {
			d->wait |= opt != '1';
			d->json |= opt == 'j';
			d->budget.single_call |= opt == '1';
			continue;
		}
		if (opt != 's' && opt != 'r' && opt != 'n') {
			bad = true;
			continue;
		}
		errno = 0;
		v = strtod(optarg, &end);
		if (errno || end == optarg || *end || v < 0 || (opt == 's' && (v < 0.1 || v > 10000)) ||
		    (opt != 's' && (v != (double)(uint32_t)v))) {
			fprintf(stderr, "vmcompact defrag: invalid value '%s' for --%s\n", optarg,
				opt == 's' ? "max-stall-ms" : opt == 'r' ? "max-mbps" : "max-regions");
			bad = true;
		} else if (opt == 's') {
			d->budget.max_stall_us = (uint32_t)(v * 1000);
		} else if (opt == 'r') {
			d->budget.max_mbps = (uint32_t)v;
		} else {
			d->budget.max_regions = (uint32_t)v;
		}
	}
	if (bad || optind != argc) {
		qdefrag__usage(stderr);
		return QEMU_EXIT_USAGE;
	}
	return 0;
}

/* Without --wait: the collapse continues in a detached child. */
static int qdefrag__background(const struct collapse_job *job, const char *label)
{
	struct collapse_result res;
	char err[256];
	pid_t child = fork();

	if (child < 0) {
		fprintf(stderr, "vmcompact defrag: fork: %s\n", strerror(errno));
		return QEMU_EXIT_FAILED;
	}
	if (child > 0) {
		printf("defrag of %s continues in the background (pid %d)\n", label, (int)child);
		return QEMU_EXIT_OK;
	}
	setsid();
	if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
		_exit(1);
	_exit(collapse__run(job, &res, err, sizeof(err)) < 0 || res.failed ? 1 : 0);
}

static int qdefrag__report(const struct qdefrag_opts *d, const struct qemu_target *t,
			   const struct collapse_result *res, const struct qemu_cover *before,
			   const struct qemu_cover *after)
{
	if (d->json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "target", json_object_new_string(t->label));
		json_object_object_add(o, "result", collapse_result__json(res));
		json_object_object_add(o, "before", qemu_cover__json(t, before, false));
		json_object_object_add(o, "after", qemu_cover__json(t, after, false));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		qdefrag__summary(res, before, after);
	}
	if (res->failed) {
		fprintf(stderr, "vmcompact defrag: %" PRIu64 " regions of %s not collapsed (EAGAIN %"
			PRIu64 ", ENOMEM %" PRIu64 ", EINVAL %" PRIu64 ", other %" PRIu64 ")\n",
			res->failed, t->label, res->failed_eagain, res->failed_enomem,
			res->failed_einval, res->failed_other);
		return QEMU_EXIT_FAILED;
	}
	return res->cancelled ? QEMU_EXIT_FAILED : QEMU_EXIT_OK;
}

int cmd_qemu_defrag(int argc, char **argv)
{
	struct qemu_target_opts o = { 0 };
	struct qdefrag_opts d = { 0 };
	struct collapse_range *ranges = NULL;
	struct collapse_result res;
	struct collapse_job job = { 0 };
	struct qemu_cover before = { 0 }, after = { 0 };
	struct qemu_target t;
	bool tty = isatty(STDOUT_FILENO);
	char err[1024];
	int r;

	r = qdefrag__parse(argc, argv, &o, &d);
	if (r)
		return r < 0 ? QEMU_EXIT_OK : r;
	r = qemu_target_opts__open(&o, "defrag", &t);
	if (r)
		return r;
	r = qemu_target__ranges(&t, &ranges, &job.nr_ranges, err, sizeof(err));
	if (r == 0 && d.wait)
		r = qemu_cover__take(&t, &before, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "vmcompact defrag: %s\n", err);
		r = qemu_exit__from_errno(r);
		goto out;
	}
	job.pid = t.pid;
	job.ranges = ranges;
	job.budget = d.budget;
	job.cancel = &qdefrag_cancel;
	job.progress = qdefrag__progress;
	job.ctx = &tty;
	tty = tty && !d.json;
	if (!d.wait) {
		r = qdefrag__background(&job, t.label);
		goto out;
	}
	signal(SIGINT, qdefrag__on_signal);
	signal(SIGTERM, qdefrag__on_signal);
	r = collapse__run(&job, &res, err, sizeof(err));
	if (tty)
		printf("\n");
	if (r < 0 && r != -ECANCELED) {
		fprintf(stderr, "vmcompact defrag: %s\n", err);
		r = qemu_exit__from_errno(r);
		goto out;
	}
	r = qemu_cover__take(&t, &after, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "vmcompact defrag: %s\n", err);
		r = qemu_exit__from_errno(r);
		goto out;
	}
	r = qdefrag__report(&d, &t, &res, &before, &after);
out:
	qemu_cover__free(&before, t.nr_blocks);
	qemu_cover__free(&after, t.nr_blocks);
	free(ranges);
	qemu_target__close(&t);
	return r;
}

/* ------------------------------------------------------------------ */
/* qemu age */

static void qage__usage(FILE *f)
{
	fprintf(f, "usage: vmcompact qemu age --domain NAME | --qemu PID | --qmp PATH [--share F]\n"
		"                          [--seed N]\n\n"
		"Age a running QEMU guest for tests and demos: split the 2 MiB host pages of a\n"
		"share of its anonymous RAM's 2 MiB regions into 4 KiB pages, as host memory pressure, KSM\n"
		"or migration do (process_madvise(MADV_COLD) on one 4 KiB page per region; the\n"
		"guest's data stays). Then `vmcompact stat` shows the loss and `defrag` repairs it.\n\n"
		QEMU_TARGET_USAGE
		"  --share F         0..1 (1)\n"
		"  --seed N          region choice (1)\n\n%s", qemu_exit_codes_help);
}

/*
 * A partial MADV_COLD splits an anonymous THP into 4 KiB pages, but on shmem it
 * only unmaps the 2 MiB page (the page cache keeps it whole), so only
 * anonymous RAM can be aged this way.
 */
static int qage__anonymous_only(const struct qemu_target *t, struct collapse_range *ranges,
				size_t *nr, char *err, size_t errlen)
{
	size_t n = 0;

	for (size_t i = 0; i < t->nr_blocks; i++)
		if (t->blocks[i].collapsible && t->blocks[i].kind == RAM_ANON)
			ranges[n++] = (struct collapse_range){ t->blocks[i].start, t->blocks[i].end };
	*nr = n;
	if (n)
		return 0;
	snprintf(err, errlen, "%s has no anonymous guest RAM; qemu age splits anonymous 2 MiB pages "
		 "only (on shmem MADV_COLD unmaps them and the page cache keeps them whole)",
		 t->label);
	return -ENODATA;
}

int cmd_qemu_age(int argc, char **argv)
{
	static const struct option opts[] = {
		QEMU_TARGET_LONGOPTS,
		{ "share", required_argument, NULL, 'f' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct qemu_target_opts o = { 0 };
	struct collapse_range *ranges = NULL;
	unsigned long long seed = 1;
	struct qemu_target t;
	double share = 1.0;
	bool bad = false;
	uint64_t split = 0;
	char err[1024], *end;
	size_t nr = 0;
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (qemu_target_opts__take(&o, opt, optarg, &bad))
			continue;
		errno = 0;
		if (opt == 'f') {
			share = strtod(optarg, &end);
			bad |= errno || end == optarg || *end || !(share >= 0 && share <= 1);
		} else if (opt == 's') {
			seed = strtoull(optarg, &end, 0);
			bad |= errno || end == optarg || *end;
		} else if (opt == 'h') {
			qage__usage(stdout);
			return QEMU_EXIT_OK;
		} else {
			bad = true;
		}
	}
	if (bad || optind != argc) {
		qage__usage(stderr);
		return QEMU_EXIT_USAGE;
	}
	r = qemu_target_opts__open(&o, "qemu age", &t);
	if (r)
		return r;
	r = qemu_target__ranges(&t, &ranges, &nr, err, sizeof(err));
	if (r == 0)
		r = qage__anonymous_only(&t, ranges, &nr, err, sizeof(err));
	if (r == 0)
		r = collapse__split(t.pid, ranges, nr, share, seed, &split, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "vmcompact qemu age: %s\n", err);
		r = qemu_exit__from_errno(r);
	} else {
		printf("split %" PRIu64 " regions of %s into 4 KiB pages\n", split, t.label);
	}
	free(ranges);
	qemu_target__close(&t);
	return r;
}
