/* test_experiment.c: the experiment spec parser, medians and the growth fit, the trace reader, and `vmcompact experiment --list`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check.h"
#include "vmm/bench/experiment.h"

static long map_count__read(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long v = 0;

	if (f && fscanf(f, "%ld", &v) != 1)
		v = 0;
	if (f)
		fclose(f);
	return v;
}

static char tmpdir[] = "/tmp/vmc-exp-test-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	CHECK((f = fopen(path, "w")));
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_spec_ok(void)
{
	struct exp_spec s;
	char err[512];
	const char *p = write_file("ok.spec",
		"# comment\nguest = 512M\nbackings = linear, aged+planned  # trailing comment\n"
		"workloads = chase,gups\nworking_sets = 64M, 512M\nvcpus = 1, 2\nrepetitions = 4\n"
		"growth_sizes = 128M, 4G?\ngrowth_algos = linux\nchase = line\npause_trace_size = 128M\n");

	tu_case = "spec_ok";
	CHECKF(exp_spec__load(&s, p, err, sizeof(err)) == 0, "%s", err);
	CHECK_EQ(s.guest, 512ull << 20);
	CHECK_EQ(s.nr_backings, 2);
	CHECK(!strcmp(s.backings[1], "aged+planned"));
	CHECK_EQ(s.nr_workloads, 2);
	CHECK_EQ(s.nr_working_sets, 2);
	CHECK_EQ(s.working_sets[1], 512ull << 20);
	CHECK_EQ(s.nr_vcpus, 2);
	CHECK_EQ(s.vcpus[1], 2);
	CHECK_EQ(s.repetitions, 4);
	CHECK_EQ(s.nr_growth_sizes, 2);
	CHECK(!s.growth_optional[0] && s.growth_optional[1]);
	CHECK_EQ(s.growth_sizes[1], 4ull << 30);
	CHECK(!s.chase_page);
	CHECK_EQ(s.growth_repetitions, 3); /* default */
}

/* Every bad input is refused with the file, line and key named. */
static void test_spec_bad(void)
{
	static const struct { const char *text, *want; } cases[] = {
		{ "backings = linear, floppy\n", "ok.spec:1: backings: bad item 'floppy'" },
		{ "guest = 64M\nworking_sets = 1G\n", "larger than guest" },
		{ "\n\nrepetitions = 0\n", ":3: repetitions" },
		{ "colour = blue\n", ":1: colour: unknown key" },
		{ "just words\n", ":1: expected 'key = value'" },
		{ "growth_sizes = 3M\n", "growth_sizes: bad item '3M'" },
		{ "workloads = \n", "workloads: empty list" },
		{ "age = 1.5\n", "age must be 0..1" },
	};
	struct exp_spec s;
	char err[512];

	tu_case = "spec_bad";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = write_file("ok.spec", cases[i].text);

		err[0] = 0;
		CHECKF(exp_spec__load(&s, p, err, sizeof(err)) == -1, "case %zu accepted", i);
		CHECKF(strstr(err, cases[i].want), "case %zu: '%s' lacks '%s'", i, err, cases[i].want);
	}
	CHECK(exp_spec__load(&s, "/nonexistent/x.spec", err, sizeof(err)) == -1 && strstr(err, "cannot open"));
}

static void test_stats_and_fit(void)
{
	struct exp_rows rows = { 0 };
	struct exp_row r = { .t_s = -1 };
	struct exp_filter f = { .experiment = "growth", .metric = "defrag_seconds", .guest_bytes = 1ull << 30 };
	double x[] = { 0.5, 1, 2, 4 }, y[4], a, b, r2;
	struct exp_stat st;

	tu_case = "stats";
	strcpy(r.experiment, "growth");
	strcpy(r.metric, "defrag_seconds");
	strcpy(r.status, "ok");
	r.guest_bytes = 1ull << 30;
	for (double v = 5; v >= 1; v--) {
		r.value = v;
		CHECK(exp_rows__add(&rows, &r));
	}
	strcpy(r.status, "skipped");  /* ignored */
	r.value = 100;
	exp_rows__add(&rows, &r);
	st = exp_rows__stat(&rows, &f);
	CHECK_EQ(st.n, 5);
	CHECK(st.median == 3 && st.min == 1 && st.max == 5);
	f.guest_bytes = 2ull << 30;
	CHECK_EQ(exp_rows__stat(&rows, &f).n, 0);
	exp_rows__free(&rows);

	for (int i = 0; i < 4; i++)
		y[i] = 0.25 + 3.0 * x[i];
	CHECK(exp_fit__line(x, y, 4, &a, &b, &r2));
	CHECKF(b > 2.999 && b < 3.001 && a > 0.249 && a < 0.251 && r2 > 0.9999, "a %f b %f r2 %f", a, b, r2);
	CHECK(!exp_fit__line(x, y, 1, &a, &b, &r2));
}

static void test_trace_reader(void)
{
	const char *p = write_file("t.trace", "# vmcompact trace v1\n"
		"0.000100000 vcpu_pause: step=1 latency_ns=10\n"
		"0.000900000 vcpu_resume: step=1 pause_ns=800000\n"
		"0.001000000 defrag_step: step=1 dur_ns=800000 ops=3 pages_copied=3\n"
		"0.002000000 vcpu_resume: step=2 pause_ns=1500\n");
	size_t n;
	double *v = exp_trace__pauses_us(p, &n);

	tu_case = "trace_reader";
	CHECK(v);
	CHECK_EQ(n, 2);
	CHECK(v[0] == 800.0 && v[1] == 1.5);
	free(v);
	CHECK(!exp_trace__pauses_us("/nonexistent", &n) && n == 0);
}

/* The real command: --list prints one line per child run, each a runnable vmcompact command. */
static void test_list(const char *exe, const char *spec_dir)
{
	char cmd[2048], line[2048];
	unsigned lines = 0, mm_runs = 0;
	FILE *p;
	int st;

	tu_case = "list";
	snprintf(cmd, sizeof(cmd), "'%s' experiment --spec '%s/quick.spec' --list", exe, spec_dir);
	CHECK((p = popen(cmd, "r")));
	while (fgets(line, sizeof(line), p)) {
		lines++;
		mm_runs += strstr(line, " bench mm --mem ") != NULL;
		CHECKF(strstr(line, exe), "not a command: %s", line);
	}
	st = pclose(p);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* Rows whose aged layout needs more mappings than vm.max_map_count allows are listed
	 * as skipped, not as runs: the default limit leaves the small sizes only. */
	CHECKF(mm_runs >= (map_count__read() >= 1000000 ? 12 + 30 + 1 : 12), "%u mm runs listed (vm.max_map_count %ld)",
	       mm_runs, map_count__read());
	CHECK_EQ(lines, mm_runs);
	snprintf(cmd, sizeof(cmd), "'%s' experiment --spec '%s/bad.spec' --out '%s/o' 2>/dev/null", exe, tmpdir, tmpdir);
	write_file("bad.spec", "backings = floppy\n");
	st = system(cmd);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	snprintf(cmd, sizeof(cmd), "'%s' experiment --spec '%s/quick.spec' 2>/dev/null", exe, spec_dir);
	st = system(cmd);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2); /* --out is required */
}

int main(int argc, char **argv)
{
	char cmd[600];

	CHECK(mkdtemp(tmpdir));
	test_spec_ok();
	test_spec_bad();
	test_stats_and_fit();
	test_trace_reader();
	if (argc >= 3)
		test_list(argv[1], argv[2]);
	else
		printf("test_experiment: no vmcompact path given, --list not tested\n");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", tmpdir);
	printf("test_experiment: ok\n");
	return 0;
}
