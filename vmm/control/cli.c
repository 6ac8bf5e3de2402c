/* cli.c: the `vmcompact list`, `stat`, `defrag` and `stop` commands over the control socket. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include "mm/buddy.h"
#include "vmm/control/control.h"
#include "vmm/control/cli.h"
#include "vmm/control/client.h"
#include "vmm/json.h"
#include "vmm/util.h"

#define LIST_TIMEOUT_MS 2000

/* ------------------------------------------------------------------ */
/* command helpers */

static const char exit_codes_help[] =
	"Exit status: 0 ok, 1 failed, 2 usage, 3 no such VM, 4 stale socket, 5 permission denied.\n";

static int cli__connect(struct qmp_client *c, const char *prog, const char *vm, int timeout_ms)
{
	char err[512];
	int r = qmp_client__connect(c, vm, timeout_ms, err, sizeof(err));

	if (r < 0)
		fprintf(stderr, "vmcompact %s: %s\n", prog, err);
	return r;
}

/* Execute and report errors; CLI exit code or CLI_OK. */
static int cli__execute(struct qmp_client *c, const char *prog, const char *command,
			struct json_object *args, struct json_object **ret)
{
	char err[512];
	int r = qmp_client__execute(c, command, args, ret, err, sizeof(err));

	if (r < 0) {
		fprintf(stderr, "vmcompact %s: %s\n", prog, err);
		return CLI_FAILED;
	}
	return CLI_OK;
}


/* ------------------------------------------------------------------ */
/* vmcompact list */

static void list__usage(FILE *f)
{
	fprintf(f, "usage: vmcompact list\n\n"
		"List the VMs with a control socket in %s ($%s overrides it):\n"
		"name, pid, run state, guest memory and the share of guest memory\n"
		"backed by host 2 MiB pages. Sockets nobody listens on show as \"stale\".\n\n%s",
		control__runtime_dir(), CONTROL_RUNTIME_DIR_ENV, exit_codes_help);
}

static int list__cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
	const char *dir = control__runtime_dir();
	char **names = NULL;
	size_t nr = 0, cap = 0, i;
	struct dirent *de;
	DIR *d;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			list__usage(stdout);
			return CLI_OK;
		}
		list__usage(stderr);
		return CLI_USAGE;
	}
	if (optind != argc) {
		list__usage(stderr);
		return CLI_USAGE;
	}

	d = opendir(dir);
	if (d) {
		while ((de = readdir(d))) {
			size_t n = strlen(de->d_name);

			if (n <= 5 || strcmp(de->d_name + n - 5, ".sock"))
				continue;
			if (nr == cap) {
				char **p = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*names));

				if (!p)
					break;
				names = p;
			}
			names[nr] = strndup(de->d_name, n - 5);
			if (names[nr])
				nr++;
		}
		closedir(d);
	} else if (errno != ENOENT) {
		fprintf(stderr, "vmcompact list: cannot read %s: %s\n", dir, strerror(errno));
		return CLI_FAILED;
	}
	if (nr)
		qsort(names, nr, sizeof(*names), list__cmp);   /* names is NULL when nr is 0 */

	printf("%-20s %8s %-10s %8s  %s\n", "NAME", "PID", "STATUS", "MEM", "BACKING_2M");
	for (i = 0; i < nr; i++) {
		struct qmp_client c;
		struct json_object *st = NULL;
		char err[512], mem[32];
		const char *status;
		int r;

		if (!control__valid_name(names[i])) {
			free(names[i]);
			continue;
		}
		r = qmp_client__connect(&c, names[i], LIST_TIMEOUT_MS, err, sizeof(err));
		if (r < 0) {
			status = r == -ECONNREFUSED ? "stale" : r == -EACCES ? "denied" :
				 r == -ETIMEDOUT ? "hung" : r == -EBUSY ? "busy" : "error";
			printf("%-20s %8s %-10s %8s  %s\n", names[i], "-", status, "-", "-");
			free(names[i]);
			continue;
		}
		c.timeout_ms = LIST_TIMEOUT_MS;
		if (qmp_client__execute(&c, "query-status", NULL, &st, err, sizeof(err)) < 0) {
			printf("%-20s %8s %-10s %8s  %s\n", names[i], "-", "error", "-", "-");
		} else {
			printf("%-20s %8llu %-10s %8s  %.1f%% (%llu/%llu)\n", names[i],
			       (unsigned long long)json_path_u64(st, "pid"), json_path_string(st, "status", "?"),
			       util__human_bytes(json_path_u64(st, "guest_bytes"), mem, sizeof(mem)),
			       100.0 * json_path_double(st, "backing_2m", NAN),
			       (unsigned long long)json_path_u64(st, "regions_backed_2m"),
			       (unsigned long long)json_path_u64(st, "regions"));
			json_object_put(st);
		}
		qmp_client__close(&c);
		free(names[i]);
	}
	free(names);
	return CLI_OK;
}

/* ------------------------------------------------------------------ */
/* vmcompact stat */

static void stat__usage(FILE *f)
{
	fprintf(f, "usage: vmcompact stat NAME|SOCKET [--json]\n\n"
		"Show a VM's guest memory the way Linux shows its own: buddyinfo,\n"
		"pagetypeinfo, extfrag and unusable indices per order, compaction\n"
		"counters with /proc/vmstat names, how much guest memory is backed by\n"
		"host 2 MiB pages (and how much could be), KVM's pages_4k/pages_2m, VMAs.\n\n"
		"  --json   print the raw query-memory reply\n\n%s", exit_codes_help);
}

/* Replies are untrusted input: a value of the wrong type reads as empty, never as a crash. */
static size_t jarray_len(struct json_object *a)
{
	return json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

static bool jobject(struct json_object *o)
{
	return json_object_is_type(o, json_type_object);
}

static void stat__index_line(struct json_object *arr, bool extfrag)
{
	size_t i, n = jarray_len(arr);

	printf("Node 0, zone %8s ", "Guest");
	for (i = 0; i < n; i++) {
		long v = lround(json_object_get_double(json_object_array_get_idx(arr, i)) * 1000);

		if (v < 0)
			printf("-1.000 ");   /* fragmentation_index(): enough free memory */
		else
			printf(extfrag ? "%2ld.%03ld " : "%ld.%03ld ", v / 1000, v % 1000);
	}
	printf("\n");
}

/* How KVM maps the guest (its page stats) and how the VMM hands it guest RAM (memslots, window). */
static void stat__print_kvm(struct json_object *mem, struct json_object *kvm)
{
	if (kvm && json_object_is_type(kvm, json_type_object)) {
		printf("%-22s %llu\n", "kvm pages_4k", (unsigned long long)json_path_u64(kvm, "pages_4k"));
		printf("%-22s %llu\n", "kvm pages_2m", (unsigned long long)json_path_u64(kvm, "pages_2m"));
		printf("%-22s %llu\n", "kvm pages_1g", (unsigned long long)json_path_u64(kvm, "pages_1g"));
	} else {
		printf("%-22s %s\n", "kvm pages", "not available");
	}
	printf("%-22s %llu\n", "vmas", (unsigned long long)json_path_u64(mem, "vmas"));
	printf("%-22s %s (%llu regions served from the direct map, %llu memslot switches)\n", "promote path",
	       json_path_string(mem, "promote_path", "?"), (unsigned long long)json_path_u64(mem, "regions_direct"),
	       (unsigned long long)json_path_u64(mem, "memslot_switches"));
}

static void stat__print(const char *vm, struct json_object *st, struct json_object *mem,
			struct json_object *pol)
{
	struct json_object *a, *pti, *t, *regions = json_path(mem, "regions"), *kvm = json_path(mem, "kvm");
	char b1[32], b2[32], b3[32];
	size_t i, n;
	int mt;

	printf("VM %s: %s, pid %llu, guest %s, pool %s (%s), slack %s\n\n",
	       json_path_string(st, "name", vm), json_path_string(st, "status", "?"), (unsigned long long)json_path_u64(st, "pid"),
	       util__human_bytes(json_path_u64(mem, "guest_bytes"), b1, sizeof(b1)),
	       util__human_bytes(json_path_u64(mem, "pool_bytes"), b2, sizeof(b2)),
	       json_path_string(mem, "pool_backing", "?"),
	       util__human_bytes(json_path_u64(mem, "slack_bytes"), b3, sizeof(b3)));

	printf("buddyinfo:\nNode 0, zone %8s ", "Guest");
	a = json_path(mem, "buddyinfo");
	n = jarray_len(a);
	for (i = 0; i < n; i++)
		printf("%6llu ", (unsigned long long)json_object_get_int64(json_object_array_get_idx(a, i)));
	printf("\n\n");

	pti = json_path(mem, "pagetypeinfo");
	printf("pagetypeinfo:\nPage block order: %llu\nPages per block:  %llu\n\n",
	       (unsigned long long)json_path_u64(pti, "page_block_order"),
	       (unsigned long long)json_path_u64(pti, "pages_per_block"));
	printf("%-43s", "Free pages count per migrate type at order");
	for (i = 0; i < n; i++)
		printf("%6zu ", i);
	printf("\n");
	t = json_path(pti, "free");
	for (mt = 0; mt < MIGRATE_TYPES; mt++) {
		struct json_object *row = json_path(t, migratetype_names[mt]);
		size_t k, m = jarray_len(row);

		printf("Node %4d, zone %8s, type %12s ", 0, "Guest", migratetype_names[mt]);
		for (k = 0; k < m; k++)
			printf("%6llu ", (unsigned long long)json_object_get_int64(
						 json_object_array_get_idx(row, k)));
		printf("\n");
	}
	printf("\n%-23s", "Number of blocks type ");
	for (mt = 0; mt < MIGRATE_TYPES; mt++)
		printf("%12s ", migratetype_names[mt]);
	printf("\nNode 0, zone %8s ", "Guest");
	t = json_path(pti, "blocks");
	for (mt = 0; mt < MIGRATE_TYPES; mt++)
		printf("%12llu ", (unsigned long long)json_path_u64(t, migratetype_names[mt]));
	printf("\n\n");

	printf("extfrag_index:\n");
	stat__index_line(json_path(mem, "extfrag_index"), true);
	printf("unusable_index:\n");
	stat__index_line(json_path(mem, "unusable_index"), false);
	printf("\nvmstat:\n");
	t = json_path(mem, "vmstat");
	if (jobject(t)) {
		json_object_object_foreach(t, key, val)
			printf("%s %llu\n", key, (unsigned long long)json_object_get_int64(val));
	}

	printf("\n%-22s %5.1f%%  (%llu of %llu regions; %llu in order)\n", "backing_2m",
	       100.0 * json_path_double(mem, "backing_2m", NAN), (unsigned long long)json_path_u64(regions, "backed_2m"),
	       (unsigned long long)json_path_u64(regions, "total"),
	       (unsigned long long)json_path_u64(regions, "in_order"));
	printf("%-22s %5.1f%%  (%llu regions)\n", "achievable", 100.0 * json_path_double(mem, "backing_2m_achievable", NAN),
	       (unsigned long long)json_path_u64(regions, "achievable"));
	printf("%-22s %5llu   (100 x (achievable - backed_2m) / achievable)\n", "backing_score",
	       (unsigned long long)json_path_u64(mem, "backing_score"));
	printf("%-22s %5llu   (free memory, as Linux's proactive compaction)\n",
	       "fragmentation_score", (unsigned long long)json_path_u64(mem, "fragmentation_score"));
	stat__print_kvm(mem, kvm);
	printf("%-22s %llu\n", "host huge blocks", (unsigned long long)json_path_u64(mem, "huge_blocks"));
	printf("%-22s %s\n", "metadata", util__human_bytes(json_path_u64(mem, "metadata_bytes"), b1, sizeof(b1)));
	t = json_path(mem, "frames");
	if (jobject(t)) {
		printf("%-22s", "pool frames");
		json_object_object_foreach(t, key, val)
			printf(" %s %llu", key, (unsigned long long)json_object_get_int64(val));
		printf("\n");
	}
	if (pol) {
		printf("%-22s auto %s, %s, proactiveness %llu (wmark low %llu high %llu), "
		       "%llu rounds, %llu regions promoted, %llu backoffs\n", "defragd",
		       json_object_get_boolean(json_path(pol, "auto")) ? "on" : "off",
		       json_path_string(pol, "state", "?"), (unsigned long long)json_path_u64(pol, "proactiveness"),
		       (unsigned long long)json_path_u64(pol, "wmark-low"),
		       (unsigned long long)json_path_u64(pol, "wmark-high"),
		       (unsigned long long)json_path_u64(json_path(pol, "counters"), "rounds"),
		       (unsigned long long)json_path_u64(json_path(pol, "counters"), "regions-promoted"),
		       (unsigned long long)json_path_u64(json_path(pol, "counters"), "backoffs"));
	}
}

int cmd_stat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct json_object *mem = NULL, *st = NULL, *pol = NULL;
	struct qmp_client c;
	bool json = false;
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'h':
			stat__usage(stdout);
			return CLI_OK;
		default:
			stat__usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind != argc - 1) {
		stat__usage(stderr);
		return CLI_USAGE;
	}
	r = cli__connect(&c, "stat", argv[optind], 0);
	if (r < 0)
		return cli__exit_code(r);
	r = cli__execute(&c, "stat", "query-memory", NULL, &mem);
	if (r == CLI_OK && json) {
		printf("%s\n", json_object_to_json_string_ext(mem, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
	} else if (r == CLI_OK) {
		r = cli__execute(&c, "stat", "query-status", NULL, &st);
		if (r == CLI_OK)
			r = cli__execute(&c, "stat", "query-defrag-policy", NULL, &pol);
		if (r == CLI_OK)
			stat__print(argv[optind], st, mem, pol);
	}
	json_object_put(mem);
	json_object_put(st);
	json_object_put(pol);
	qmp_client__close(&c);
	return r;
}

/* ------------------------------------------------------------------ */
/* vmcompact defrag */

static void defrag__usage(FILE *f)
{
	fprintf(f, "usage: vmcompact defrag NAME|SOCKET [--mode compact|collapse|full]\n"
		"                        [--algo planned|linux] [--order N] [--max-pause-us N]\n"
		"                        [--max-mbps N] [--max-regions N] [--wait]\n"
		"       vmcompact defrag NAME|SOCKET --cancel\n\n"
		"Defragment a running VM's guest memory backing from the host. The job runs\n"
		"in the VM process; this command returns once it started, or with --wait\n"
		"follows it to the end (a progress bar on a terminal) and prints a summary.\n\n"
		"  --mode M          compact (Linux compaction), collapse (2 MiB regions) or\n"
		"                    full (both; default)\n"
		"  --algo A          planned (GPA-order-aware placement; default) or linux\n"
		"  --order N         compaction target order 0..%d (default: whole pool)\n"
		"  --max-pause-us N  vCPU pause budget per step (default 1000)\n"
		"  --max-mbps N      copy rate limit in MB/s (default unlimited)\n"
		"  --max-regions N   promote at most N regions (0: no limit, the default)\n"
		"  --wait            follow the job; exit 1 if it fails or is cancelled. Ctrl-C cancels\n"
		"                    the job (a second Ctrl-C stops waiting at once)\n"
		"  --cancel          cancel the running job\n\n%s", MM_MAX_ORDER - 1, exit_codes_help);
}

static bool parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 0);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

struct progress_view {
	bool tty;              /* stdout is a terminal: one bar redrawn in place */
	bool drawn;            /* the bar is on screen (the line is not ended yet) */
	uint64_t last_line_ms; /* not a terminal: a plain line at most once a second */
};

static void progress_view__show(struct progress_view *v, uint64_t done, uint64_t total, bool last)
{
	unsigned pct = total ? (unsigned)(done * 100 / total) : 0;

	if (v->tty) {
		char bar[41];
		unsigned fill = pct * 40 / 100, i;

		for (i = 0; i < 40; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[40] = '\0';
		printf("\r[%s] %3u%% %llu/%llu", bar, pct, (unsigned long long)done,
		       (unsigned long long)total);
		v->drawn = true;
	} else {
		uint64_t now = (util__now_ns() / 1000000);

		if (!last && now - v->last_line_ms < 1000)
			return;
		v->last_line_ms = now;
		printf("progress %llu/%llu (%u%%)\n", (unsigned long long)done,
		       (unsigned long long)total, pct);
	}
	fflush(stdout);
}

/* End the bar's line before other output. */
static void progress_view__end(struct progress_view *v)
{
	if (v->drawn)
		printf("\n");
	v->drawn = false;
}

static void defrag__summary(uint64_t id, const char *state, struct json_object *res)
{
	printf("defrag job %llu %s in %.1f ms (compaction: %s)\n", (unsigned long long)id, state,
	       1e3 * json_path_double(res, "seconds", NAN), json_path_string(res, "compact_result", "?"));
	printf("  regions promoted %llu, zero-copy %llu, failed %llu, achievable %llu\n",
	       (unsigned long long)json_path_u64(res, "regions_promoted"),
	       (unsigned long long)json_path_u64(res, "regions_zero_copy"),
	       (unsigned long long)json_path_u64(res, "regions_failed"),
	       (unsigned long long)json_path_u64(res, "regions_achievable"));
	printf("  pages copied %llu (%.3f copies per promoted page), moved singly %llu\n",
	       (unsigned long long)json_path_u64(res, "pages_copied"), json_path_double(res, "copies_per_promoted_page", NAN),
	       (unsigned long long)json_path_u64(res, "pages_moved_4k"));
	printf("  vCPU pauses: %llu steps, max %.1f us, p99 %.1f us, total %.1f us\n",
	       (unsigned long long)json_path_u64(res, "steps"), json_path_double(res, "pause_max_us", NAN),
	       json_path_double(res, "pause_p99_us", NAN), 1e3 * json_path_double(res, "pause_total_ms", NAN));
}

/* Follow job `id` through events to its end. */
/* Ctrl-C while `defrag --wait` follows a job: the first cancels the job, a second gives up. */
static volatile sig_atomic_t defrag__interrupts;

static void defrag__on_signal(int sig)
{
	defrag__interrupts++;
}

/* Poll the interrupt count between events: 0 go on, -1 stop waiting now. */
static int defrag__check_interrupt(struct qmp_client *c, uint64_t id, int *seen)
{
	struct json_object *ret = NULL;
	char err[512];

	if (defrag__interrupts == *seen)
		return 0;
	*seen = defrag__interrupts;
	if (*seen > 1) {
		fprintf(stderr, "\nvmcompact defrag: interrupted again; job %llu may still be cancelling\n",
			(unsigned long long)id);
		return -1;
	}
	fprintf(stderr, "\nvmcompact defrag: interrupted: cancelling job %llu (Ctrl-C again to stop waiting)\n",
		(unsigned long long)id);
	if (qmp_client__execute(c, "cancel-defrag", NULL, &ret, err, sizeof(err)) < 0)
		fprintf(stderr, "vmcompact defrag: cannot cancel job %llu: %s\n", (unsigned long long)id, err);
	json_object_put(ret);
	return 0;
}

/* Follow job id's events to its end: 0 with the final event in *out, or a CLI exit code. */
static int defrag__follow(struct qmp_client *c, uint64_t id, struct progress_view *view, struct json_object **out)
{
	struct json_object *ev, *data;
	const char *name;
	int r, seen = 0;
	char err[512];

	for (;;) {
		if (defrag__check_interrupt(c, id, &seen) < 0)
			return CLI_FAILED;
		r = qmp_client__next_event(c, 200, &ev, err, sizeof(err));
		if (r == -ETIMEDOUT)
			continue;
		if (r < 0) {
			fprintf(stderr, "vmcompact defrag: %s\n", err);
			return CLI_FAILED;
		}
		name = json_path_string(ev, "event", "");
		data = json_path(ev, "data");
		if (strcmp(name, "SHUTDOWN") == 0) {
			fprintf(stderr, "vmcompact defrag: the VM shut down (%s) before job %llu "
				"finished\n", json_path_string(data, "reason", "?"), (unsigned long long)id);
			json_object_put(ev);
			return CLI_FAILED;
		}
		if (strncmp(name, "DEFRAG_", 7) || json_path_u64(data, "job-id") != id) {
			json_object_put(ev);
			continue;
		}
		if (strcmp(name, "DEFRAG_PROGRESS")) {
			if (view->drawn)   /* complete the bar; a log gets no extra line */
				progress_view__show(view, json_path_u64(data, "done"), json_path_u64(data, "total"), true);
			*out = ev;
			return 0;
		}
		progress_view__show(view, json_path_u64(data, "done"), json_path_u64(data, "total"), false);
		json_object_put(ev);
	}
}

static int defrag__wait(struct qmp_client *c, uint64_t id)
{
	struct progress_view view = { .tty = isatty(STDOUT_FILENO) };
	struct sigaction sa = { .sa_handler = defrag__on_signal }, old_int, old_term;
	struct json_object *ev = NULL, *st;
	char err[512];
	int r;

	defrag__interrupts = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	r = defrag__follow(c, id, &view, &ev);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	progress_view__end(&view);
	if (r)
		return r;
	if (strcmp(json_path_string(ev, "event", ""), "DEFRAG_CANCELLED") == 0) {
		defrag__summary(id, "cancelled", json_path(json_path(ev, "data"), "result"));
		r = CLI_FAILED;
	} else if (strcmp(json_path_string(json_path(ev, "data"), "state", ""), "done") == 0) {
		defrag__summary(id, "done", json_path(json_path(ev, "data"), "result"));
		r = CLI_OK;
	} else {
		fprintf(stderr, "vmcompact defrag: job %llu failed: %s\n", (unsigned long long)id,
			json_path_string(json_path(ev, "data"), "error", "unknown error"));
		r = CLI_FAILED;
	}
	json_object_put(ev);
	if (qmp_client__execute(c, "query-status", NULL, &st, err, sizeof(err)) == 0) {
		printf("  backing_2m now %.1f%% (%llu/%llu regions), achievable %.1f%%\n",
		       100.0 * json_path_double(st, "backing_2m", NAN),
		       (unsigned long long)json_path_u64(st, "regions_backed_2m"),
		       (unsigned long long)json_path_u64(st, "regions"),
		       100.0 * json_path_double(st, "backing_2m_achievable", NAN));
		json_object_put(st);
	}
	return r;
}

static const struct option defrag_opts[] = {
	{ "mode", required_argument, NULL, 'm' },
	{ "algo", required_argument, NULL, 'a' },
	{ "order", required_argument, NULL, 'o' },
	{ "max-pause-us", required_argument, NULL, 'p' },
	{ "max-mbps", required_argument, NULL, 'r' },
	{ "max-regions", required_argument, NULL, 'n' },
	{ "wait", no_argument, NULL, 'w' },
	{ "cancel", no_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 }
};

/* One request argument from the command line into args: 0, or -EINVAL for a bad value. */
static int defrag__arg(struct json_object *args, int opt, const char *val)
{
	long long v;

	switch (opt) {
	case 'm':
		if (defrag_mode__parse(val) < 0)
			return -EINVAL;
		json_object_object_add(args, "mode", json_object_new_string(val));
		return 0;
	case 'a':
		if (defrag_algo__parse(val) < 0)
			return -EINVAL;
		json_object_object_add(args, "algo", json_object_new_string(val));
		return 0;
	case 'o':
		if (!parse_int(val, 0, MM_MAX_ORDER - 1, &v))
			return -EINVAL;
		json_object_object_add(args, "order", json_object_new_int64(v));
		return 0;
	case 'p':
		if (!parse_int(val, DEFRAGD_PAUSE_US_MIN, DEFRAGD_PAUSE_US_MAX, &v))
			return -EINVAL;
		json_object_object_add(args, "max-pause-us", json_object_new_int64(v));
		return 0;
	case 'r':
		if (!parse_int(val, 0, DEFRAGD_MBPS_MAX, &v))
			return -EINVAL;
		json_object_object_add(args, "max-mbps", json_object_new_int64(v));
		return 0;
	case 'n':
		if (!parse_int(val, 0, UINT32_MAX, &v))
			return -EINVAL;
		json_object_object_add(args, "max-regions", json_object_new_int64(v));
		return 0;
	}
	return -EINVAL;
}

/* Start a defrag job (args consumed), or cancel the running one; --wait follows it to the end. */
static int defrag__submit(const char *vm, struct json_object *args, bool wait, bool cancel)
{
	struct json_object *ret = NULL;
	struct qmp_client c;
	uint64_t id;
	int r = cli__connect(&c, "defrag", vm, 0);

	if (r < 0) {
		json_object_put(args);
		return cli__exit_code(r);
	}
	if (cancel) {
		json_object_put(args);
		r = cli__execute(&c, "defrag", "cancel-defrag", NULL, &ret);
		if (r == CLI_OK)
			printf("cancelling defrag job %llu\n", (unsigned long long)json_path_u64(ret, "job-id"));
		json_object_put(ret);
		qmp_client__close(&c);
		return r;
	}
	r = cli__execute(&c, "defrag", "defrag", args, &ret);
	if (r != CLI_OK) {
		qmp_client__close(&c);
		return r;
	}
	id = json_path_u64(ret, "job-id");
	json_object_put(ret);
	printf("defrag job %llu started on VM %s\n", (unsigned long long)id, vm);
	fflush(stdout);
	if (wait)
		r = defrag__wait(&c, id);
	qmp_client__close(&c);
	return r;
}

int cmd_defrag(int argc, char **argv)
{
	struct json_object *args = json_object_new_object();
	bool wait = false, cancel = false;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "m:a:o:p:r:n:wch", defrag_opts, NULL)) != -1) {
		if (opt == 'w') {
			wait = true;
		} else if (opt == 'c') {
			cancel = true;
		} else if (opt == 'h') {
			json_object_put(args);
			defrag__usage(stdout);
			return CLI_OK;
		} else if (opt == '?' || opt == ':') {
			goto usage;
		} else if (defrag__arg(args, opt, optarg)) {
			size_t i;

			for (i = 0; defrag_opts[i].name && defrag_opts[i].val != opt; i++)
				;
			fprintf(stderr, "vmcompact defrag: invalid value '%s' for --%s\n", optarg, defrag_opts[i].name);
			goto usage;
		}
	}
	if (optind != argc - 1 || (cancel && (wait || json_object_object_length(args))))
		goto usage;
	return defrag__submit(argv[optind], args, wait, cancel);
usage:
	json_object_put(args);
	defrag__usage(stderr);
	return CLI_USAGE;
}

/* ------------------------------------------------------------------ */
/* vmcompact stop */

static void stop__usage(FILE *f)
{
	fprintf(f, "usage: vmcompact stop NAME|SOCKET [--timeout SECONDS] [--no-wait]\n\n"
		"Ask a running VM to stop gracefully (a running defrag job is cancelled),\n"
		"wait until it has shut down (default timeout 30 s) and show the guest's\n"
		"result: its exit status, verify errors and passes.\n\n"
		"Exit status: 0 stopped cleanly, 1 failed, 2 usage, 3 no such VM, 4 stale socket,\n"
		"5 permission denied, 6 the guest did not stop in its grace period and was\n"
		"force-stopped, 7 the guest ended with an error status (10: verify found corruption).\n");
}

/* SHUTDOWN's data: the reason and the guest's final status -> message and exit code. */
static int stop__report(const char *vm, struct json_object *data)
{
	struct json_object *g = json_path(data, "guest"), *v;
	int64_t status = -1;

	printf("VM %s stopped (%s)", vm, json_path_string(data, "reason", "?"));
	if (g && (v = json_path(g, "exit_status")) && json_object_is_type(v, json_type_int))
		status = json_object_get_int64(v);
	if (status >= 0)
		printf(": guest exit status %lld", (long long)status);
	if (g && json_path(g, "verify_errors"))
		printf(", verify errors %llu, passes %llu",
		       (unsigned long long)json_path_u64(g, "verify_errors"),
		       (unsigned long long)json_path_u64(g, "min_passes"));
	printf("\n");
	if (g && json_path(g, "forced") && json_object_get_boolean(json_path(g, "forced"))) {
		fprintf(stderr, "vmcompact stop: VM %s did not stop within its grace period and was "
			"force-stopped\n", vm);
		return CLI_FORCED;
	}
	if (status > 0) {
		fprintf(stderr, "vmcompact stop: the guest of VM %s ended with status %lld%s\n", vm,
			(long long)status, status == 10 ? " (verify found corruption)" : "");
		return CLI_GUEST_ERROR;
	}
	return CLI_OK;
}

int cmd_stop(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "no-wait", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct json_object *ret = NULL, *ev;
	long long timeout_s = 30;
	bool wait = true;
	struct qmp_client c;
	uint64_t deadline;
	char err[512];
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "t:nh", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (!parse_int(optarg, 1, 3600, &timeout_s)) {
				fprintf(stderr, "vmcompact stop: invalid --timeout '%s'\n", optarg);
				return CLI_USAGE;
			}
			break;
		case 'n':
			wait = false;
			break;
		case 'h':
			stop__usage(stdout);
			return CLI_OK;
		default:
			stop__usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind != argc - 1) {
		stop__usage(stderr);
		return CLI_USAGE;
	}
	r = cli__connect(&c, "stop", argv[optind], 0);
	if (r < 0)
		return cli__exit_code(r);
	r = cli__execute(&c, "stop", "stop", NULL, &ret);
	json_object_put(ret);
	if (r != CLI_OK || !wait) {
		if (r == CLI_OK)
			printf("stop requested for VM %s\n", argv[optind]);
		qmp_client__close(&c);
		return r;
	}
	deadline = (util__now_ns() / 1000000) + (uint64_t)timeout_s * 1000;
	for (;;) {
		uint64_t now = (util__now_ns() / 1000000);

		if (now >= deadline) {
			fprintf(stderr, "vmcompact stop: VM %s did not shut down within %llds\n",
				argv[optind], timeout_s);
			r = CLI_FAILED;
			break;
		}
		r = qmp_client__next_event(&c, (int)(deadline - now), &ev, err, sizeof(err));
		if (r == -ECONNRESET) {
			printf("VM %s stopped (it closed the socket without a final status)\n", argv[optind]);
			r = CLI_OK;
			break;
		}
		if (r == -ETIMEDOUT)
			continue;
		if (r < 0) {
			fprintf(stderr, "vmcompact stop: %s\n", err);
			r = CLI_FAILED;
			break;
		}
		if (strcmp(json_path_string(ev, "event", ""), "SHUTDOWN") == 0) {
			r = stop__report(argv[optind], json_path(ev, "data"));
			json_object_put(ev);
			break;
		}
		json_object_put(ev);
	}
	qmp_client__close(&c);
	return r;
}
