/* experiment.c: `vmcompact experiment`: a spec's matrix of backings x workloads x sizes, each run a child vmcompact, tidy CSV, summary, plots. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/bench/bench.h"
#include "vmm/bench/experiment.h"
#include "vmm/json.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static const char experiment__usage[] =
"Usage: vmcompact experiment [--spec FILE] [--quick] --out DIR [--list]\n"
"Run a matrix of hugepage-backing experiments from a spec file and write DIR/results.csv\n"
"(one row per run and metric, each with the command that reproduces it), DIR/machine.json,\n"
"DIR/summary.md and PNG plots in DIR/plots (gnuplot). Every run is a child vmcompact process.\n"
"Rows that cannot run here (no /dev/kvm, no QEMU support, no reserved huge pages) are written\n"
"as skipped with the reason. Without /dev/kvm the engine runs at the mm level: the same pool,\n"
"window and defrag engine, host threads in place of vCPUs.\n"
"\n"
"Options:\n"
"  --spec FILE   the matrix (default scripts/experiments/default.spec)\n"
"  --quick       scripts/experiments/quick.spec: about 10 minutes on 2 cores\n"
"  --out DIR     output directory (created)\n"
"  --list        print the runs without running them\n"
"Exit status: 0 all runs ok or skipped, 1 some run failed, 2 usage or bad spec.\n";

#define EXP_CHILD_TIMEOUT_S 900

struct exp_ctx {
	struct exp_spec spec;
	struct exp_host host;
	struct exp_rows rows;
	char out[PATH_MAX];
	bool list_only;
	unsigned runs, failed;
};

/* --- child processes --- */

static void quote_into(char *dst, size_t len, char *const *argv)
{
	size_t o = 0;

	dst[0] = 0;
	for (int i = 0; argv[i] && o + 4 < len; i++) {
		bool plain = strspn(argv[i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,/:+%") ==
			     strlen(argv[i]) && argv[i][0];

		o += (size_t)snprintf(dst + o, len - o, plain ? "%s%s" : "%s'%s'", i ? " " : "", argv[i]);
		if (o >= len)
			o = len - 1;
	}
}

/* Run argv with stdout to out_path and stderr to err_path; the exit status, 124 on timeout, -1 not started. */
static int run_child(char *const *argv, const char *out_path, const char *err_path, unsigned timeout_s)
{
	uint64_t deadline = util__now_ns() + (uint64_t)timeout_s * 1000000000ull;
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		if (util__now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return 124;
		}
		usleep(20000);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Run a child vmcompact and parse its JSON stdout. NULL on failure, with the reason in why. */
static struct json_object *exp_run_json(struct exp_ctx *c, char *const *argv, const char *tag, char *why,
					size_t whylen)
{
	char out[PATH_MAX + 64], errp[PATH_MAX + 64];
	struct json_object *j;
	uint64_t t0 = util__now_ns();
	int rc;

	snprintf(out, sizeof(out), "%s/runs/%s.json", c->out, tag);
	snprintf(errp, sizeof(errp), "%s/runs/%s.log", c->out, tag);
	c->runs++;
	rc = run_child(argv, out, errp, EXP_CHILD_TIMEOUT_S);
	fprintf(stderr, "experiment: run %u %s: exit %d, %.1f s\n", c->runs, tag, rc, (util__now_ns() - t0) / 1e9);
	if (rc) {
		FILE *f = fopen(errp, "re");
		char last[200] = "", line[200];

		while (f && fgets(line, sizeof(line), f))
			if (line[0] != '\n')
				snprintf(last, sizeof(last), "%s", line);
		if (f)
			fclose(f);
		last[strcspn(last, "\n")] = 0;
		snprintf(why, whylen, "exit %d%s%s (runs/%s.log)", rc, last[0] ? ": " : "", last, tag);
		c->failed++;
		return NULL;
	}
	j = json_object_from_file(out);
	if (!j) {
		snprintf(why, whylen, "no JSON result in runs/%s.json", tag);
		c->failed++;
	}
	return j;
}

/* --- rows --- */

static void row_init(struct exp_row *r, const char *experiment, const char *level, const char *backing,
		     const char *workload, uint64_t ws, uint64_t guest, unsigned vcpus, unsigned rep)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->experiment, sizeof(r->experiment), "%s", experiment);
	snprintf(r->level, sizeof(r->level), "%s", level);
	snprintf(r->backing, sizeof(r->backing), "%s", backing);
	snprintf(r->workload, sizeof(r->workload), "%s", workload ? workload : "");
	r->ws_bytes = ws;
	r->guest_bytes = guest;
	r->vcpus = vcpus;
	r->rep = rep;
	r->t_s = -1;
	strcpy(r->status, "ok");
}

static void add_metric(struct exp_ctx *c, const struct exp_row *base, const char *metric, double v, const char *unit)
{
	struct exp_row r = *base;

	snprintf(r.metric, sizeof(r.metric), "%s", metric);
	snprintf(r.unit, sizeof(r.unit), "%s", unit);
	r.value = v;
	exp_rows__add(&c->rows, &r);
}

static void add_status(struct exp_ctx *c, const struct exp_row *base, const char *status, const char *reason)
{
	struct exp_row r = *base;

	snprintf(r.status, sizeof(r.status), "%s", status);
	snprintf(r.reason, sizeof(r.reason), "%s", reason);
	exp_rows__add(&c->rows, &r);
}

static const char *size_str(uint64_t b, char *buf, size_t len)
{
	if (b % (1ull << 30) == 0)
		snprintf(buf, len, "%lluG", (unsigned long long)(b >> 30));
	else
		snprintf(buf, len, "%lluM", (unsigned long long)(b >> 20));
	return buf;
}

/* A scattered guest needs about one mapping per 4 KiB page: does `mem` at `age` fit here? */
static bool vma_fits(const struct exp_ctx *c, uint64_t mem, double age, char *why, size_t len)
{
	uint64_t need = (uint64_t)(age * (double)(mem >> 12)) + 4096;

	if (need <= c->host.max_map_count)
		return true;
	snprintf(why, len, "needs ~%llu mappings, vm.max_map_count is %llu: run scripts/setup.sh --raise-map-count",
		 (unsigned long long)need, (unsigned long long)c->host.max_map_count);
	return false;
}

#define ARGV_MAX 48
struct argv_buf { char *v[ARGV_MAX]; char s[ARGV_MAX][PATH_MAX / 8]; int n; };

static void av_add(struct argv_buf *a, const char *s)
{
	if (a->n < ARGV_MAX - 1) {
		snprintf(a->s[a->n], sizeof(a->s[a->n]), "%.511s", s);
		a->v[a->n] = a->s[a->n];
		a->v[++a->n] = NULL;
	}
}

static void av_addf(struct argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void av_addf(struct argv_buf *a, const char *fmt, ...)
{
	char buf[PATH_MAX / 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	av_add(a, buf);
}

/* --- the matrix --- */

static const char *algo_of(const char *backing)
{
	return !strcmp(backing, "aged+planned") ? "planned" : !strcmp(backing, "aged+linux") ? "linux" : NULL;
}

/* Run one child (or print it with --list); the JSON result, or NULL with why set. */
static struct json_object *exp_child(struct exp_ctx *c, struct argv_buf *a, const char *tag, struct exp_row *base,
				     char *why, size_t whylen)
{
	quote_into(base->command, sizeof(base->command), a->v);
	if (c->list_only) {
		printf("%-40s %s\n", tag, base->command);
		snprintf(why, whylen, "listed only");
		return NULL;
	}
	return exp_run_json(c, a->v, tag, why, whylen);
}

static void ws_list(const struct exp_spec *s, char *buf, size_t len)
{
	size_t o = 0;
	char sz[32];

	buf[0] = 0;
	for (unsigned i = 0; i < s->nr_working_sets && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "", size_str(s->working_sets[i], sz, sizeof(sz)));
}

/* Skipped or failed: one row per workload and working set of this run. */
static void add_status_all(struct exp_ctx *c, struct exp_row *base, const char *status, const char *why)
{
	for (unsigned w = 0; w < c->spec.nr_workloads; w++)
		for (unsigned i = 0; i < c->spec.nr_working_sets; i++) {
			snprintf(base->workload, sizeof(base->workload), "%s", c->spec.workloads[w]);
			base->ws_bytes = c->spec.working_sets[i];
			add_status(c, base, status, why);
		}
}

static void add_measurements(struct exp_ctx *c, struct exp_row *base, struct json_object *j, const char *phase)
{
	struct json_object *meas = json_path(j, "measurements");
	size_t n = meas ? json_object_array_length(meas) : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(meas, i);
		const char *wl = json_path_string(m, "workload", "?");

		if (strcmp(json_path_string(m, "phase", ""), phase))
			continue;
		snprintf(base->workload, sizeof(base->workload), "%s", wl);
		base->ws_bytes = json_path_u64(m, "ws_bytes");
		if (!strcmp(wl, "chase") || !strcmp(wl, "verify"))
			add_metric(c, base, "ns_per_access", json_path_double(m, "ns_per_access", 0), "ns");
		if (!strcmp(wl, "gups"))
			add_metric(c, base, "ns_per_update", json_path_double(m, "ns_per_update", 0), "ns");
		if (!strcmp(wl, "stream"))
			add_metric(c, base, "bytes_per_sec", json_path_double(m, "bytes_per_sec", 0), "B/s");
		if (!strcmp(wl, "verify"))
			add_metric(c, base, "verify_errors", (double)json_path_u64(m, "errors"), "words");
		add_metric(c, base, "ops_per_sec", json_path_double(m, "per_sec", 0), json_path_string(m, "unit", "op"));
	}
}

static void mm_workload_run(struct exp_ctx *c, const char *backing, double age, const char *pool_path,
			    unsigned vcpus, unsigned rep)
{
	const struct exp_spec *s = &c->spec;
	const char *algo = algo_of(backing);
	struct argv_buf a = { .n = 0 };
	struct exp_row base;
	char sz[32], list[256], tag[96], why[400];
	struct json_object *j;

	row_init(&base, "workload", "mm", backing, NULL, 0, s->guest, vcpus, rep);
	av_add(&a, c->host.self); av_add(&a, "bench"); av_add(&a, "mm");
	av_add(&a, "--mem"); av_add(&a, size_str(s->guest, sz, sizeof(sz)));
	av_add(&a, "--age"); av_addf(&a, "%g", age);
	av_add(&a, "--seed"); av_addf(&a, "%llu", (unsigned long long)s->seed);
	av_add(&a, "--slack"); av_add(&a, s->slack);
	if (pool_path) { av_add(&a, "--pool-path"); av_add(&a, pool_path); }
	list[0] = 0;
	for (unsigned w = 0; w < s->nr_workloads; w++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", w ? "," : "", s->workloads[w]);
	av_add(&a, "--workload"); av_add(&a, list);
	ws_list(s, list, sizeof(list));
	av_add(&a, "--ws"); av_add(&a, list);
	av_add(&a, "--threads"); av_addf(&a, "%u", vcpus);
	av_add(&a, "--measure-ms"); av_addf(&a, "%llu", (unsigned long long)s->measure_ms);
	if (s->chase_page) av_add(&a, "--chase-page");
	if (algo) { av_add(&a, "--defrag"); av_add(&a, algo); av_add(&a, "--measure"); av_add(&a, "after"); }
	av_add(&a, "--json");
	snprintf(tag, sizeof(tag), "workload-mm-%s-%uv-r%u", backing, vcpus, rep);
	if (!vma_fits(c, s->guest, age, why, sizeof(why))) {
		quote_into(base.command, sizeof(base.command), a.v);
		add_status_all(c, &base, "skipped", why);
		return;
	}
	j = exp_child(c, &a, tag, &base, why, sizeof(why));
	if (!j) {
		if (!c->list_only)
			add_status_all(c, &base, "failed", why);
		return;
	}
	add_measurements(c, &base, j, algo ? "after" : "before");
	base.workload[0] = 0;
	base.ws_bytes = 0;
	add_metric(c, &base, "backing_2m", json_path_double(j, algo ? "after.backing_2m" : "before.backing_2m", 0), "fraction");
	if (algo)
		add_metric(c, &base, "defrag_seconds", json_path_double(j, "defrag.seconds", 0), "s");
	json_object_put(j);
}

/* A real guest: `vmcompact run` with the workload on every vCPU (needs /dev/kvm). */
static void kvm_workload_run(struct exp_ctx *c, const char *backing, double age, unsigned vcpus, unsigned rep,
			     const char *wl, uint64_t ws)
{
	const struct exp_spec *s = &c->spec;
	const char *algo = algo_of(backing);
	struct argv_buf a = { .n = 0 };
	struct exp_row base;
	char sz[32], wsz[32], tag[128], why[400];
	struct json_object *j;
	double secs = (double)s->measure_ms / 1000 * (algo ? 4 : 2);

	row_init(&base, "workload", "kvm", backing, wl, ws, s->guest, vcpus, rep);
	av_add(&a, c->host.self); av_add(&a, "run");
	av_add(&a, "--mem"); av_add(&a, size_str(s->guest, sz, sizeof(sz)));
	av_add(&a, "--cpus"); av_addf(&a, "%u", vcpus);
	av_add(&a, "--age"); av_addf(&a, "%g", age);
	av_add(&a, "--seed"); av_addf(&a, "%llu", (unsigned long long)s->seed);
	av_add(&a, "--slack"); av_add(&a, s->slack);
	av_add(&a, "--workload");
	if (!strcmp(wl, "verify"))
		av_addf(&a, "verify:seconds=%g", secs);
	else
		av_addf(&a, "%s:ws=%s,seconds=%g%s", wl, size_str(ws / vcpus, wsz, sizeof(wsz)), secs,
			!strcmp(wl, "chase") && s->chase_page ? ",page" : "");
	if (algo) {
		av_add(&a, "--defrag"); av_add(&a, "once");
		av_add(&a, "--defrag-algo"); av_add(&a, algo);
		av_add(&a, "--defrag-after"); av_add(&a, "0");
	}
	av_add(&a, "--json");
	quote_into(base.command, sizeof(base.command), a.v);
	snprintf(tag, sizeof(tag), "workload-kvm-%s-%s-%s-%uv-r%u", backing, wl, size_str(ws, sz, sizeof(sz)), vcpus, rep);
	if (!c->host.kvm) {
		if (!c->list_only)
			add_status(c, &base, "skipped", "no /dev/kvm on this host (a kvm-less kernel): the mm-level rows stand in");
		return;
	}
	if (!(j = exp_child(c, &a, tag, &base, why, sizeof(why)))) {
		if (!c->list_only)
			add_status(c, &base, "failed", why);
		return;
	}
	if (!strcmp(wl, "stream")) {
		add_metric(c, &base, "bytes_per_sec", json_path_double(j, "totals.stream_total_bytes_per_sec", 0), "B/s");
	} else if (!strcmp(wl, "verify")) {
		add_metric(c, &base, "verify_errors", (double)json_path_u64(j, "totals.verify_errors"), "words");
	} else {
		const char *key = !strcmp(wl, "gups") ? "ns_per_update" : "ns_per_access";
		double sum = 0;
		unsigned n = 0;
		char path[64];

		for (unsigned i = 0; i < vcpus; i++) {
			snprintf(path, sizeof(path), "vcpus.%u.%s", i, key);
			if (json_path_double(j, path, 0) > 0) {
				sum += json_path_double(j, path, 0);
				n++;
			}
		}
		add_metric(c, &base, key, n ? sum / n : 0, "ns");
	}
	json_object_put(j);
}

static void qemu_skipped(struct exp_ctx *c, const char *backing, unsigned vcpus)
{
	char why[240] = "";
	struct exp_row base;

	if (!c->host.kvm)
		snprintf(why + strlen(why), sizeof(why) - strlen(why), "no /dev/kvm; ");
	if (!c->host.qemu_cmd)
		snprintf(why + strlen(why), sizeof(why) - strlen(why), "this vmcompact has no 'qemu run' command; ");
	if (!c->host.qemu_binary)
		snprintf(why + strlen(why), sizeof(why) - strlen(why), "qemu-system-x86_64 not installed; ");
	if (!why[0])
		snprintf(why, sizeof(why), "QEMU rows are not wired into the runner yet (vmcompact qemu run exists)");
	else
		why[strlen(why) - 2] = 0;
	row_init(&base, "workload", "kvm", backing, NULL, 0, c->spec.guest, vcpus, 0);
	snprintf(base.command, sizeof(base.command), "%s qemu run (%s)", c->host.self, backing);
	if (!c->list_only)
		add_status_all(c, &base, "skipped", why);
}

static void exp_workload_matrix(struct exp_ctx *c)
{
	const struct exp_spec *s = &c->spec;

	for (unsigned b = 0; b < s->nr_backings; b++) {
		const char *bk = s->backings[b];
		double age = !strcmp(bk, "linear") || !strcmp(bk, "hugetlbfs") ? 0 : s->age;

		for (unsigned v = 0; v < s->nr_vcpus; v++) {
			if (!strncmp(bk, "qemu-", 5)) {
				qemu_skipped(c, bk, s->vcpus[v]);
				continue;
			}
			if (!strcmp(bk, "hugetlbfs") && !c->host.hugetlb) {
				struct exp_row base;

				row_init(&base, "workload", "mm", bk, NULL, 0, s->guest, s->vcpus[v], 0);
				snprintf(base.command, sizeof(base.command), "%s bench mm --age 0 --pool-path HUGETLBFS_MOUNT",
					 c->host.self);
				if (!c->list_only)
					add_status_all(c, &base, "skipped", c->host.hugetlb_mount[0] ?
						       "no huge pages reserved (HugePages_Total = 0)" :
						       "no hugetlbfs mounted and no huge pages reserved");
				continue;
			}
			for (unsigned r = 1; r <= s->repetitions; r++)
				mm_workload_run(c, bk, age, !strcmp(bk, "hugetlbfs") ? c->host.hugetlb_mount : NULL,
						s->vcpus[v], r);
			if (!strcmp(bk, "hugetlbfs"))
				continue;
			for (unsigned w = 0; w < s->nr_workloads; w++)
				for (unsigned i = 0; i < s->nr_working_sets; i++)
					for (unsigned r = 1; r <= s->repetitions; r++)
						kvm_workload_run(c, bk, age, s->vcpus[v], r, s->workloads[w],
								 s->working_sets[i]);
		}
	}
}

static void growth_rows(struct exp_ctx *c, struct exp_row *base, struct json_object *j, uint64_t size)
{
	double secs = json_path_double(j, "defrag.seconds", 0), gib = (double)size / (1ull << 30);
	uint64_t backed = json_path_u64(j, "defrag.regions_backed_2m"), achievable = json_path_u64(j, "defrag.regions_achievable");
	struct exp_row b2;

	/* A run that left achievable regions unbacked did less work: kept, flagged, left out of the fit. */
	if (backed < achievable)
		snprintf(base->reason, sizeof(base->reason), "incomplete: %llu of %llu achievable regions backed 2M",
			 (unsigned long long)backed, (unsigned long long)achievable);

	add_metric(c, base, "defrag_seconds", secs, "s");
	add_metric(c, base, "seconds_per_gib", secs / gib, "s/GiB");
	add_metric(c, base, "pages_copied", (double)json_path_u64(j, "defrag.pages_copied"), "pages");
	add_metric(c, base, "copies_per_promoted_page", json_path_double(j, "defrag.copies_per_promoted_page", 0), "copies");
	add_metric(c, base, "steps", (double)json_path_u64(j, "defrag.steps"), "steps");
	add_metric(c, base, "pause_max_us", json_path_double(j, "defrag.pause_max_us", 0), "us");
	add_metric(c, base, "pause_p99_us", json_path_double(j, "defrag.pause_p99_us", 0), "us");
	add_metric(c, base, "metadata_bytes", (double)json_path_u64(j, "before.metadata_bytes"), "B");
	add_metric(c, base, "vmas_before", (double)json_path_u64(j, "before.vmas"), "mappings");
	add_metric(c, base, "backing_2m_before", json_path_double(j, "before.backing_2m", 0), "fraction");
	add_metric(c, base, "backing_2m_after", json_path_double(j, "after.backing_2m", 0), "fraction");
	if (!json_path(j, "baseline"))
		return;
	b2 = *base;
	b2.reason[0] = 0;
	snprintf(b2.backing, sizeof(b2.backing), "memcpy");
	add_metric(c, &b2, "defrag_seconds", json_path_double(j, "baseline.memcpy_seconds", 0), "s");
	add_metric(c, &b2, "seconds_per_gib", json_path_double(j, "baseline.memcpy_seconds", 0) / gib, "s/GiB");
	snprintf(b2.backing, sizeof(b2.backing), "madv_collapse");
	if (json_path(j, "baseline.madv_collapse_error")) {
		add_status(c, &b2, "failed", json_path_string(j, "baseline.madv_collapse_error", "?"));
		return;
	}
	add_metric(c, &b2, "defrag_seconds", json_path_double(j, "baseline.madv_collapse_seconds", 0), "s");
	add_metric(c, &b2, "seconds_per_gib", json_path_double(j, "baseline.madv_collapse_seconds", 0) / gib, "s/GiB");
}

static void growth_one(struct exp_ctx *c, uint64_t size, const char *algo, unsigned rep, bool baseline)
{
	const struct exp_spec *s = &c->spec;
	struct argv_buf a = { .n = 0 };
	struct exp_row base;
	char sz[32], tag[96], why[400], backing[24], trace[PATH_MAX + 96];
	struct json_object *j;

	snprintf(backing, sizeof(backing), "aged+%s", algo);
	row_init(&base, "growth", "mm", backing, NULL, 0, size, 0, rep);
	av_add(&a, c->host.self); av_add(&a, "bench"); av_add(&a, "mm");
	av_add(&a, "--mem"); av_add(&a, size_str(size, sz, sizeof(sz)));
	av_add(&a, "--age"); av_addf(&a, "%g", s->age);
	av_add(&a, "--seed"); av_addf(&a, "%llu", (unsigned long long)s->seed);
	av_add(&a, "--slack"); av_add(&a, s->slack);
	av_add(&a, "--defrag"); av_add(&a, algo);
	if (baseline)
		av_add(&a, "--baseline");
	snprintf(tag, sizeof(tag), "growth-mm-%s-%s-r%u", sz, algo, rep);
	if (size == s->pause_trace_size && rep == 1) {
		snprintf(trace, sizeof(trace), "%s/runs/trace-%s-%s.trace", c->out, sz, algo);
		av_add(&a, "--trace"); av_add(&a, trace);
	}
	av_add(&a, "--json");
	if (!vma_fits(c, size, s->age, why, sizeof(why))) {
		quote_into(base.command, sizeof(base.command), a.v);
		if (!c->list_only)
			add_status(c, &base, "skipped", why);
		return;
	}
	if (!(j = exp_child(c, &a, tag, &base, why, sizeof(why)))) {
		if (!c->list_only)
			add_status(c, &base, "failed", why);
		return;
	}
	growth_rows(c, &base, j, size);
	json_object_put(j);
}

static void exp_growth(struct exp_ctx *c)
{
	const struct exp_spec *s = &c->spec;

	for (unsigned i = 0; i < s->nr_growth_sizes; i++) {
		uint64_t size = s->growth_sizes[i];

		if (s->growth_optional[i] && c->host.mem_available < 3 * size + (1ull << 30)) {
			struct exp_row base;
			char why[160];

			row_init(&base, "growth", "mm", "aged+planned", NULL, 0, size, 0, 0);
			snprintf(why, sizeof(why), "MemAvailable %.1f GiB < 3 x guest + 1 GiB (pool, MADV_COLLAPSE and memcpy buffers)",
				 c->host.mem_available / (double)(1ull << 30));
			if (!c->list_only)
				add_status(c, &base, "skipped", why);
			continue;
		}
		for (unsigned g = 0; g < s->nr_growth_algos; g++)
			for (unsigned r = 1; r <= s->growth_repetitions; r++)
				growth_one(c, size, s->growth_algos[g], r, g == 0);
		if (!c->host.kvm && !c->list_only) {
			struct exp_row base;

			row_init(&base, "growth", "kvm", "aged+planned", NULL, 0, size, 1, 0);
			snprintf(base.command, sizeof(base.command), "%s bench defrag --mem %lluM --age %g --seed %llu --json",
				 c->host.self, (unsigned long long)(size >> 20), s->age, (unsigned long long)s->seed);
			add_status(c, &base, "skipped", "no /dev/kvm: growth measured at the mm level (engine, no vCPUs)");
		}
	}
}

static void exp_timeline(struct exp_ctx *c)
{
	const struct exp_spec *s = &c->spec;
	struct argv_buf a = { .n = 0 };
	struct exp_row base;
	char sz[32], why[400];
	struct json_object *j, *tl;
	size_t n;

	if (!s->timeline_mem)
		return;
	row_init(&base, "timeline", "mm", "aged+planned", s->timeline_workload, s->timeline_mem, s->timeline_mem, 1, 1);
	av_add(&a, c->host.self); av_add(&a, "bench"); av_add(&a, "mm");
	av_add(&a, "--mem"); av_add(&a, size_str(s->timeline_mem, sz, sizeof(sz)));
	av_add(&a, "--age"); av_addf(&a, "%g", s->age);
	av_add(&a, "--seed"); av_addf(&a, "%llu", (unsigned long long)s->seed);
	av_add(&a, "--slack"); av_add(&a, s->slack);
	av_add(&a, "--workload"); av_add(&a, s->timeline_workload);
	if (s->chase_page) av_add(&a, "--chase-page");
	av_add(&a, "--measure-ms"); av_addf(&a, "%llu", (unsigned long long)s->measure_ms);
	av_add(&a, "--defrag"); av_add(&a, "planned");
	av_add(&a, "--max-mbps"); av_addf(&a, "%llu", (unsigned long long)s->timeline_max_mbps);
	av_add(&a, "--timeline-ms"); av_addf(&a, "%llu", (unsigned long long)s->timeline_ms);
	av_add(&a, "--json");
	if (!vma_fits(c, s->timeline_mem, s->age, why, sizeof(why))) {
		quote_into(base.command, sizeof(base.command), a.v);
		if (!c->list_only)
			add_status(c, &base, "skipped", why);
		return;
	}
	if (!(j = exp_child(c, &a, "timeline-mm", &base, why, sizeof(why)))) {
		if (!c->list_only)
			add_status(c, &base, "failed", why);
		return;
	}
	tl = json_path(j, "timeline");
	n = tl ? json_object_array_length(tl) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(tl, i);

		base.t_s = json_object_get_double(json_object_array_get_idx(p, 0));
		add_metric(c, &base, "coverage_2m", json_object_get_double(json_object_array_get_idx(p, 1)), "fraction");
		add_metric(c, &base, "ops_per_sec", json_object_get_double(json_object_array_get_idx(p, 2)),
			   !strcmp(s->timeline_workload, "gups") ? "update" : "op");
	}
	base.t_s = -1;
	add_metric(c, &base, "defrag_seconds", json_path_double(j, "defrag.seconds", 0), "s");
	add_metric(c, &base, "defrag_start_s", json_path_double(j, "timeline_defrag_start_s", 0), "s");
	json_object_put(j);
	if (!c->host.kvm) {
		row_init(&base, "timeline", "kvm", "aged+defragd", "gups", s->timeline_mem, s->timeline_mem, 1, 0);
		snprintf(base.command, sizeof(base.command), "%s bench defragd --mem %lluM --age %g --json", c->host.self,
			 (unsigned long long)(s->timeline_mem >> 20), s->age);
		add_status(c, &base, "skipped", "no /dev/kvm: the background defragmenter's timeline is the mm-level budgeted defrag");
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void exp_pause_rows(struct exp_ctx *c)
{
	const struct exp_spec *s = &c->spec;
	char sz[32], path[PATH_MAX + 96], backing[24];

	if (!s->pause_trace_size || c->list_only)
		return;
	for (unsigned g = 0; g < s->nr_growth_algos; g++) {
		struct exp_row base;
		size_t n;
		double *p;

		snprintf(path, sizeof(path), "%s/runs/trace-%s-%s.trace", c->out, size_str(s->pause_trace_size, sz, sizeof(sz)),
			 s->growth_algos[g]);
		snprintf(backing, sizeof(backing), "aged+%s", s->growth_algos[g]);
		row_init(&base, "pause", "mm", backing, NULL, 0, s->pause_trace_size, 0, 1);
		snprintf(base.command, sizeof(base.command), "trace file runs/trace-%s-%s.trace (from the growth run)", sz,
			 s->growth_algos[g]);
		p = exp_trace__pauses_us(path, &n);
		if (!p || !n) {
			add_status(c, &base, "failed", "no vcpu_resume events in the trace file");
			free(p);
			continue;
		}
		qsort(p, n, sizeof(*p), cmp_double);
		add_metric(c, &base, "steps", (double)n, "steps");
		add_metric(c, &base, "pause_p50_us", p[n / 2], "us");
		add_metric(c, &base, "pause_p90_us", p[(n * 9) / 10], "us");
		add_metric(c, &base, "pause_p99_us", p[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], "us");
		add_metric(c, &base, "pause_max_us", p[n - 1], "us");
		free(p);
	}
}

static int exp_list(struct exp_ctx *c)
{
	exp_workload_matrix(c);
	exp_growth(c);
	exp_timeline(c);
	return 0;
}

/* --- host facts --- */

static void detect_host(struct exp_host *h)
{
	FILE *f;
	char line[512];
	ssize_t n;
	uint64_t huge_total = 0;

	memset(h, 0, sizeof(*h));
	n = readlink("/proc/self/exe", h->self, sizeof(h->self) - 1);
	h->self[n > 0 ? n : 0] = 0;
	h->kvm = access("/dev/kvm", R_OK | W_OK) == 0;
	h->qemu_binary = access("/usr/bin/qemu-system-x86_64", X_OK) == 0 ||
			 access("/usr/local/bin/qemu-system-x86_64", X_OK) == 0;
	if ((f = fopen("/proc/meminfo", "re"))) {
		while (fgets(line, sizeof(line), f)) {
			unsigned long long v;

			if (sscanf(line, "MemAvailable: %llu kB", &v) == 1)
				h->mem_available = v * 1024;
			if (sscanf(line, "HugePages_Total: %llu", &v) == 1)
				huge_total = v;
		}
		fclose(f);
	}
	if ((f = fopen("/proc/mounts", "re"))) {
		char dev[128], mnt[256], type[64];

		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "%127s %255s %63s", dev, mnt, type) == 3 && !strcmp(type, "hugetlbfs")) {
				snprintf(h->hugetlb_mount, sizeof(h->hugetlb_mount), "%s", mnt);
				break;
			}
		fclose(f);
	}
	h->hugetlb = huge_total > 0 && h->hugetlb_mount[0];
	if ((f = fopen("/proc/sys/vm/max_map_count", "re"))) {
		unsigned long long v;

		if (fscanf(f, "%llu", &v) == 1)
			h->max_map_count = v;
		fclose(f);
	}
}

/* Does this binary have `qemu run`? (Another session adds it; detect rather than assume.) */
static bool detect_qemu_cmd(struct exp_ctx *c)
{
	char *argv[] = { c->host.self, "qemu", "run", "--help", NULL };
	char out[PATH_MAX + 32], err[PATH_MAX + 32];

	snprintf(out, sizeof(out), "%s/runs/qemu-help.txt", c->out);
	snprintf(err, sizeof(err), "%s/runs/qemu-help.log", c->out);
	return run_child(argv, out, err, 20) == 0;
}

static int find_spec(const struct exp_host *h, const char *name, char *path, size_t len)
{
	char dir[512];
	const char *rel[] = { "/../scripts/experiments/", "/../../scripts/experiments/", "/../../../scripts/experiments/" };

	snprintf(dir, sizeof(dir), "%s", h->self);
	if (strrchr(dir, '/'))
		*strrchr(dir, '/') = 0;
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		snprintf(path, len, "%s%s%s", dir, rel[i], name);
		if (access(path, R_OK) == 0)
			return 0;
	}
#ifdef VMC_SOURCE_ROOT
	snprintf(path, len, "%s/scripts/experiments/%s", VMC_SOURCE_ROOT, name);
	if (access(path, R_OK) == 0)
		return 0;
#endif
	return -ENOENT;
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(buf, 0755) && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	return mkdir(buf, 0755) && errno != EEXIST ? -errno : 0;
}

static int parse_args(int argc, char **argv, struct exp_ctx *c, const char **spec_path, bool *quick)
{
	static const struct option opts[] = {
		{ "spec", required_argument, NULL, 's' }, { "quick", no_argument, NULL, 'q' },
		{ "out", required_argument, NULL, 'o' }, { "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int ch;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case 's': *spec_path = optarg; break;
		case 'q': *quick = true; break;
		case 'o': snprintf(c->out, sizeof(c->out), "%s", optarg); break;
		case 'l': c->list_only = true; break;
		case 'h': fputs(experiment__usage, stdout); return 1;
		default:
			fprintf(stderr, "vmcompact experiment: unknown option or missing value '%s'\n"
				"Try 'vmcompact experiment --help'.\n", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc || (!c->out[0] && !c->list_only)) {
		fprintf(stderr, "vmcompact experiment: %s\nTry 'vmcompact experiment --help'.\n",
			optind < argc ? "unexpected argument" : "--out DIR is required");
		return -EINVAL;
	}
	return 0;
}

static int experiment_run(struct exp_ctx *c)
{
	char err[512], sub[PATH_MAX + 16], note[2048] = "";
	uint64_t t0 = util__now_ns();
	int pngs;

	snprintf(sub, sizeof(sub), "%s/runs", c->out);
	if (mkdir_p(c->out) || mkdir_p(sub)) {
		fprintf(stderr, "vmcompact experiment: cannot create %s: %s\n", sub, strerror(errno));
		return VMC_EXIT_HOST_ERROR;
	}
	c->host.qemu_cmd = detect_qemu_cmd(c);
	if (exp_report__machine_json(c->out, &c->host, err, sizeof(err)))
		fprintf(stderr, "vmcompact experiment: %s\n", err);
	exp_workload_matrix(c);
	exp_growth(c);
	exp_timeline(c);
	exp_pause_rows(c);
	if (exp_report__csv(c->out, &c->rows, err, sizeof(err)))
		fprintf(stderr, "vmcompact experiment: %s\n", err);
	pngs = exp_plot__all(c->out, &c->spec, &c->rows, note, sizeof(note));
	if (note[0])
		fprintf(stderr, "vmcompact experiment: plots: %s\n", note);
	if (exp_report__summary(c->out, &c->spec, &c->host, &c->rows, (util__now_ns() - t0) / 1e9, err, sizeof(err)))
		fprintf(stderr, "vmcompact experiment: %s\n", err);
	fprintf(stderr, "experiment: %u runs, %u failed, %d plots, %.0f s; results in %s\n", c->runs, c->failed, pngs,
		(util__now_ns() - t0) / 1e9, c->out);
	return c->failed ? VMC_EXIT_HOST_ERROR : 0;
}

int cmd_experiment(int argc, char **argv)
{
	struct exp_ctx *c = calloc(1, sizeof(*c));
	const char *spec_path = NULL;
	char path[PATH_MAX], err[1024];
	bool quick = false;
	int rc;

	if (!c)
		return VMC_EXIT_HOST_ERROR;
	rc = parse_args(argc, argv, c, &spec_path, &quick);
	if (rc) {
		free(c);
		return rc > 0 ? 0 : VMC_EXIT_USAGE;
	}
	detect_host(&c->host);
	if (!spec_path) {
		if (find_spec(&c->host, quick ? "quick.spec" : "default.spec", path, sizeof(path))) {
			fprintf(stderr, "vmcompact experiment: cannot find scripts/experiments/%s; give --spec FILE\n",
				quick ? "quick.spec" : "default.spec");
			free(c);
			return VMC_EXIT_USAGE;
		}
		spec_path = path;
	}
	if (exp_spec__load(&c->spec, spec_path, err, sizeof(err))) {
		fprintf(stderr, "vmcompact experiment: %s\n", err);
		free(c);
		return VMC_EXIT_USAGE;
	}
	rc = c->list_only ? exp_list(c) : experiment_run(c);
	exp_rows__free(&c->rows);
	free(c);
	return rc;
}
