/* test_trace.c: the defrag trace events (mm/trace.h) match the engine's own accounting, through a callback sink and a trace file. */
#include <string.h>
#include <unistd.h>

#include "defrag_check.h"
#include "mm/trace.h"

enum { EV_PAUSE, EV_RESUME, EV_STEP, EV_MOVE, EV_COLLAPSE, EV_CBEGIN, EV_CEND, EV_ISO_M, EV_ISO_F, EV_CMIGRATE,
       EV_MIGRATE, EV_DBEGIN, EV_DEND, EV_COUNT };
static const char *const ev_names[EV_COUNT] = {
	"vcpu_pause", "vcpu_resume", "defrag_step", "defrag_move", "mm_collapse_huge_page", "mm_compaction_begin",
	"mm_compaction_end", "mm_compaction_isolate_migratepages", "mm_compaction_isolate_freepages",
	"mm_compaction_migratepages", "mm_migrate_pages", "defrag_begin", "defrag_end",
};

struct counts {
	uint64_t n[EV_COUNT];
	uint64_t migrated;        /* sum of mm_compaction_migratepages nr_migrated */
	uint64_t pause_ns;        /* sum of vcpu_resume pause_ns */
	double last_t;
	bool ordered;             /* timestamps never go backwards */
};

/* "SECONDS EVENT: fields" -> count it. */
static void count_line(struct mm_trace *t, const char *line, size_t len)
{
	struct counts *c = t->ctx;
	char ev[64];
	double ts;
	const char *fields;

	CHECKF(len > 0 && line[len] == 0, "line not terminated");
	CHECKF(sscanf(line, "%lf %63[a-z_0-9]:", &ts, ev) == 2, "bad line '%s'", line);
	if (ts < c->last_t)
		c->ordered = false;
	c->last_t = ts;
	fields = strchr(line, ':') + 2;
	for (int i = 0; i < EV_COUNT; i++) {
		unsigned long long v;

		if (strcmp(ev, ev_names[i]))
			continue;
		c->n[i]++;
		if (i == EV_CMIGRATE && sscanf(fields, "nr_migrated=%llu", &v) == 1)
			c->migrated += v;
		if (i == EV_RESUME && strstr(fields, "pause_ns=") &&
		    sscanf(strstr(fields, "pause_ns="), "pause_ns=%llu", &v) == 1)
			c->pause_ns += v;
		return;
	}
	CHECKF(0, "unknown event in '%s'", line);
}

static void run_traced(enum defrag_algo algo, uint64_t seed)
{
	struct counts c = { .ordered = true };
	struct mm_trace t;
	struct dc_env env;
	struct dc_ops dops;
	struct mm_step_ops ops;
	struct defrag_request req;
	struct defrag_stats st;
	int ret;

	tu_seed = seed;
	tu_case = algo == DEFRAG_ALGO_LINUX ? "trace_linux" : "trace_planned";
	dc_create(&env, 64, 12, 0.9, seed);
	mm_trace__init(&t, NULL);
	t.write = count_line;
	t.ctx = &c;
	env.mm.trace = &t;
	defrag_request__init(&req);
	req.algo = algo;
	dc_ops_init(&dops, &ops, &req, &env.mm);
	ret = mm__defrag(&env.mm, &req, &ops, &st);
	dc_print(tu_case, &st);
	CHECKF(ret == 0, "mm__defrag: %d %s", ret, st.error_msg);
	CHECK(c.ordered);
	CHECK_EQ(c.n[EV_DBEGIN], 1);
	CHECK_EQ(c.n[EV_DEND], 1);
	/* every step is one pause, one resume and one step event, and the pauses add up */
	CHECK_EQ(c.n[EV_PAUSE], st.steps);
	CHECK_EQ(c.n[EV_RESUME], st.steps);
	CHECK_EQ(c.n[EV_STEP], st.steps);
	CHECK_EQ(c.pause_ns, st.pause_total_ns);
	/* every 4 KiB move (guest or ballast) is one defrag_move; every 2 MiB remap one collapse event */
	CHECK_EQ(c.n[EV_MOVE], st.pages_moved_4k + st.copies_ballast);
	CHECK_EQ(c.n[EV_COLLAPSE], st.remaps_2m);
	if (algo == DEFRAG_ALGO_LINUX) {
		CHECK(c.n[EV_CBEGIN] >= 1);
		CHECK_EQ(c.n[EV_CBEGIN], c.n[EV_CEND]);
		CHECK(c.n[EV_ISO_M] >= 1);
		CHECK(c.n[EV_ISO_F] >= 1);
		CHECK_EQ(c.n[EV_CMIGRATE], c.n[EV_MIGRATE]);
		CHECK(c.migrated > 0 && c.migrated <= st.pages_moved_4k + st.copies_ballast);
	} else {
		CHECK_EQ(c.n[EV_CBEGIN], 0);
	}
	CHECK_EQ(t.lines, (uint64_t)0 + c.n[EV_PAUSE] + c.n[EV_RESUME] + c.n[EV_STEP] + c.n[EV_MOVE] +
		 c.n[EV_COLLAPSE] + c.n[EV_CBEGIN] + c.n[EV_CEND] + c.n[EV_ISO_M] + c.n[EV_ISO_F] +
		 c.n[EV_CMIGRATE] + c.n[EV_MIGRATE] + c.n[EV_DBEGIN] + c.n[EV_DEND]);
	env.mm.trace = NULL;
	dc_destroy(&env);
}

/* The file sink: a header, then one line per event, and nothing when the sink is unset. */
static void test_file_sink(uint64_t seed)
{
	char path[] = "/tmp/vmc-trace-XXXXXX", line[512];
	struct mm_trace t;
	struct dc_env env;
	struct defrag_request req;
	struct defrag_stats st;
	uint64_t lines = 0, resumes = 0;
	FILE *f;
	int fd = mkstemp(path);

	tu_seed = seed;
	tu_case = "trace_file";
	CHECK(fd >= 0);
	close(fd);
	CHECK_EQ(mm_trace__open(&t, path, NULL, 0), 0);
	dc_create(&env, 32, 8, 0.9, seed);
	env.mm.trace = &t;
	defrag_request__init(&req);
	CHECK_EQ(mm__defrag(&env.mm, &req, NULL, &st), 0);
	env.mm.trace = NULL;
	CHECK_EQ(mm__defrag(&env.mm, &req, NULL, &st), 0); /* untraced: adds no line */
	CHECK_EQ(mm_trace__close(&t), 0);
	CHECK((f = fopen(path, "r")));
	CHECK(fgets(line, sizeof(line), f) && !strncmp(line, MM_TRACE_HEADER, strlen(MM_TRACE_HEADER)));
	while (fgets(line, sizeof(line), f)) {
		lines++;
		resumes += strstr(line, " vcpu_resume: step=") != NULL;
	}
	fclose(f);
	unlink(path);
	CHECK_EQ(lines, t.lines);
	CHECK(resumes > 0);
	dc_destroy(&env);
}

int main(void)
{
	run_traced(DEFRAG_ALGO_PLANNED, 0x7ace1);
	run_traced(DEFRAG_ALGO_LINUX, 0x7ace2);
	test_file_sink(0x7ace3);
	printf("test_trace: ok (USDT probes %s)\n", VMC_HAVE_USDT ? "compiled in" : "not compiled in: no <sys/sdt.h>");
	return 0;
}
