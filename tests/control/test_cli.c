/* test_cli.c: `vmcompact list/stat/defrag/stop` against an in-process server, output captured. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/control/harness.h"
#include "vmm/control/cli.h"
#include "vmm/control/client.h"

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *)))
#define RUN(fn, out, err, ...) capture(fn, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), out, err)

static void expect_in(const char *hay, const char *needle, const char *what)
{
	CHECKF(strstr(hay, needle), "%s: '%s' not in:\n%s", what, needle, hay);
}

static void test_stat(void)
{
	struct harness h;
	struct json_object *j;
	char *out, *err;
	int rc;

	harness__init(&h, "clistat", NULL);

	rc = RUN(cmd_stat, &out, &err, "stat", "clistat");
	CHECKF(rc == CLI_OK, "rc %d: %s", rc, err);
	expect_in(out, "VM clistat: running", "stat");
	expect_in(out, "buddyinfo:\nNode 0, zone    Guest ", "stat buddyinfo");
	expect_in(out, "Free pages count per migrate type at order", "stat pagetypeinfo");
	expect_in(out, "Node    0, zone    Guest, type      Movable ", "stat pagetypeinfo row");
	expect_in(out, "Number of blocks type     Unmovable      Movable  Reclaimable", "stat blocks");
	expect_in(out, "extfrag_index:\nNode 0, zone    Guest ", "stat extfrag");
	expect_in(out, "unusable_index:\nNode 0, zone    Guest ", "stat unusable");
	expect_in(out, "\ncompact_migrate_scanned ", "stat vmstat");
	expect_in(out, "\nthp_collapse_alloc ", "stat vmstat");
	expect_in(out, "backing_2m ", "stat backing");
	expect_in(out, "achievable ", "stat achievable");
	expect_in(out, "kvm pages_2m ", "stat kvm");
	expect_in(out, "vmas ", "stat vmas");
	expect_in(out, "defragd ", "stat defragd");
	free(out);
	free(err);

	/* the buddyinfo line carries the real numbers */
	{
		struct mm_stat st;
		char line[256];
		int n = 0, o;

		harness__stat(&h, &st);
		n += snprintf(line + n, sizeof(line) - n, "Node 0, zone    Guest ");
		for (o = 0; o < MM_MAX_ORDER; o++)
			n += snprintf(line + n, sizeof(line) - n, "%6llu ",
				      (unsigned long long)st.nr_free[o]);
		rc = RUN(cmd_stat, &out, &err, "stat", "clistat");
		CHECK(rc == CLI_OK);
		expect_in(out, line, "buddyinfo numbers");
		/* the summary lines read query-memory's underscore keys */
		snprintf(line, sizeof(line), "%-22s %5.1f%%  (%llu of %llu regions; %llu in order)",
			 "backing_2m", 100.0 * st.backing_2m, (unsigned long long)st.regions_backed_2m,
			 (unsigned long long)st.nr_regions, (unsigned long long)st.regions_in_order);
		expect_in(out, line, "backing_2m numbers");
		snprintf(line, sizeof(line), "%-22s %5.1f%%  (%llu regions)", "achievable",
			 100.0 * st.backing_2m_achievable, (unsigned long long)st.regions_achievable);
		expect_in(out, line, "achievable numbers");
		snprintf(line, sizeof(line), "%-22s %5u ", "backing_score", mm_stat__backing_score(&st));
		expect_in(out, line, "backing_score number");
		snprintf(line, sizeof(line), "(%s), slack ", pool_backing__name(st.backing));
		expect_in(out, line, "pool backing");
		free(out);
		free(err);
	}

	/* --json: the raw query-memory return */
	rc = RUN(cmd_stat, &out, &err, "stat", "--json", "clistat");
	CHECK(rc == CLI_OK);
	j = json_tokener_parse(out);
	CHECKF(j && jhas(j, "buddyinfo") && jhas(j, "regions.achievable") && jhas(j, "kvm.pages_4k"),
	       "%s", out);
	CHECKF(jhas(j, "backing_2m") && jhas(j, "backing_2m_achievable") && jhas(j, "extfrag_index") &&
	       jhas(j, "vmstat.compact_migrate_scanned") && !jhas(j, "backing-2m"), "%s", out);
	json_object_put(j);
	free(out);
	free(err);

	/* by socket path */
	rc = RUN(cmd_stat, &out, &err, "stat", h.srv.path);
	CHECK(rc == CLI_OK);
	expect_in(out, "VM clistat", "stat by path");
	free(out);
	free(err);

	/* usage */
	rc = RUN(cmd_stat, &out, &err, "stat", "--help");
	CHECK(rc == CLI_OK);
	expect_in(out, "usage: vmcompact stat", "stat --help");
	free(out);
	free(err);
	rc = RUN(cmd_stat, &out, &err, "stat");
	CHECK(rc == CLI_USAGE);
	expect_in(err, "usage: vmcompact stat", "stat without name");
	free(out);
	free(err);
	rc = RUN(cmd_stat, &out, &err, "stat", "--bogus", "clistat");
	CHECK(rc == CLI_USAGE);
	free(out);
	free(err);

	harness__fini(&h);
	printf("ok stat: /proc-style text, --json, by path, usage\n");
}

static void check_no_such_vm(void)
{
	char *out, *err;
	int rc;

	/* no such VM */
	rc = RUN(cmd_stat, &out, &err, "stat", "nosuchvm");
	CHECK(rc == CLI_NO_VM);
	expect_in(err, "no VM named 'nosuchvm'", "missing VM");
	free(out);
	free(err);
	rc = RUN(cmd_stop, &out, &err, "stop", "/nonexistent/dir/x.sock");
	CHECK(rc == CLI_NO_VM);
	expect_in(err, "no VM control socket at /nonexistent/dir/x.sock", "missing path");
	free(out);
	free(err);
	rc = RUN(cmd_stat, &out, &err, "stat", "bad name!");
	CHECK(rc == CLI_USAGE);
	expect_in(err, "invalid VM name", "bad name");
	free(out);
	free(err);
}

/* list shows the live VM (h's) and the stale socket "ghost", sorted. */
static void check_list_live_and_stale(struct harness *h)
{
	char *out, *err;
	int rc;

	/* list: the live VM and the stale one */
	rc = RUN(cmd_list, &out, &err, "list");
	CHECK(rc == CLI_OK);
	expect_in(out, "NAME", "list header");
	expect_in(out, "BACKING_2M", "list header");
	{
		char line[128];

		snprintf(line, sizeof(line), "%-20s %8d %-10s ", "clierr", (int)getpid(), "running");
		expect_in(out, line, "list live");
	}
	expect_in(out, "64M", "list mem");
	{
		struct mm_stat st;
		char line[128];

		harness__stat(h, &st);
		snprintf(line, sizeof(line), "  %.1f%% (%llu/%llu)\n", 100.0 * st.backing_2m,
			 (unsigned long long)st.regions_backed_2m, (unsigned long long)st.nr_regions);
		expect_in(out, line, "list backing");
	}
	expect_in(out, "ghost", "list stale");
	expect_in(out, " stale ", "list stale status");
	CHECK(strstr(out, "clierr") < strstr(out, "ghost"));   /* sorted */
	free(out);
	free(err);
}

static void test_errors(void)
{
	struct harness h;
	struct control_config cfg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *out, *err, path[PATH_MAX + 32];
	int rc, fd;

	harness__init(&h, "clierr", NULL);

	check_no_such_vm();

	/* stale socket */
	snprintf(path, sizeof(path), "%s/ghost.sock", h.dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(fd);
	rc = RUN(cmd_stat, &out, &err, "stat", "ghost");
	CHECK(rc == CLI_STALE);
	expect_in(err, "stale socket", "stale");
	free(out);
	free(err);
	rc = RUN(cmd_defrag, &out, &err, "defrag", "ghost", "--wait");
	CHECK(rc == CLI_STALE);
	free(out);
	free(err);

	check_list_live_and_stale(&h);
	unlink(path);

	/* permission denied: the server only admits uid 4242 */
	control__destroy(&h.srv, NULL);
	control_config__init(&cfg);
	cfg.name = "clierr";
	cfg.allowed_uid = 4242;
	cfg.allow_root = false;
	{
		char e[256];

		CHECK(harness__start_server(&h, &cfg, e, sizeof(e)) == 0);
	}
	rc = RUN(cmd_stat, &out, &err, "stat", "clierr");
	CHECK(rc == CLI_DENIED);
	expect_in(err, "permission denied", "denied");
	free(out);
	free(err);
	rc = RUN(cmd_list, &out, &err, "list");
	CHECK(rc == CLI_OK);
	expect_in(out, " denied ", "list denied");
	free(out);
	free(err);

	/* empty runtime dir: header only */
	control__destroy(&h.srv, NULL);
	h.srv_live = false;
	rc = RUN(cmd_list, &out, &err, "list");
	CHECK(rc == CLI_OK);
	CHECK(!strchr(strchr(out, '\n') + 1, '\n'));
	free(out);
	free(err);
	rc = RUN(cmd_list, &out, &err, "list", "--help");
	CHECK(rc == CLI_OK);
	expect_in(out, "usage: vmcompact list", "list --help");
	free(out);
	free(err);

	harness__fini(&h);
	printf("ok errors: no VM, bad name, stale socket, permission denied; list\n");
}

/* The `defrag --wait` summary's figures are the job result's (underscore keys). */
static void check_summary_matches_result(struct harness *h, const char *out)
{
	struct raw r;
	struct json_object *o;
	unsigned long long copied = ~0ull, promoted = ~0ull;
	double ms = -1, total_us = -1;
	const char *p;

	p = strstr(out, " done in ");
	CHECK(p && sscanf(p, " done in %lf ms", &ms) == 1);
	p = strstr(out, "regions promoted ");
	CHECK(p && sscanf(p, "regions promoted %llu", &promoted) == 1);
	p = strstr(out, "pages copied ");
	CHECK(p && sscanf(p, "pages copied %llu", &copied) == 1);
	p = strstr(out, ", total ");
	CHECK(p && sscanf(p, ", total %lf us", &total_us) == 1);
	CHECK(raw__connect(&r, h->srv.path) == 0);
	json_object_put(raw__read(&r, 10000, NULL));
	o = raw__cmd(&r, "{\"execute\": \"query-defrag\"}");
	CHECKF(o && (unsigned long long)jpath_int(o, "return.result.pages_copied") == copied &&
	       (unsigned long long)jpath_int(o, "return.result.regions_promoted") == promoted,
	       "%s vs %s", out, o ? json_object_to_json_string(o) : "nothing");
	CHECK(fabs(json_object_get_double(jpath(o, "return.result.seconds")) * 1e3 - ms) < 0.1);
	CHECK(fabs(json_object_get_double(jpath(o, "return.result.pause_total_ms")) * 1e3 -
		   total_us) < 1.0);
	CHECK(ms > 0);
	json_object_put(o);
	raw__close(&r);
}

static void check_defrag_argument_errors(void)
{
	char *out, *err;
	int rc;

	/* server-side argument errors come back as exit 1 with the server's words */
	rc = RUN(cmd_defrag, &out, &err, "defrag", "clidefrag", "--mode", "collapse", "--order", "3");
	CHECK(rc == CLI_FAILED);
	expect_in(err, "'order' is only valid", "defrag server error");
	free(out);
	free(err);
	/* client-side validation */
	rc = RUN(cmd_defrag, &out, &err, "defrag", "clidefrag", "--mode", "turbo");
	CHECK(rc == CLI_USAGE);
	expect_in(err, "invalid value 'turbo' for --mode", "defrag bad mode");
	free(out);
	free(err);
	rc = RUN(cmd_defrag, &out, &err, "defrag", "clidefrag", "--order", "12");
	CHECK(rc == CLI_USAGE);
	free(out);
	free(err);
	rc = RUN(cmd_defrag, &out, &err, "defrag", "--help");
	CHECK(rc == CLI_OK);
	expect_in(out, "usage: vmcompact defrag", "defrag --help");
	free(out);
	free(err);
}

/* defrag while a defrag runs (the gate holds the job), then --cancel. */
static void check_defrag_busy_and_cancel(struct harness *h)
{
	struct raw r;
	struct json_object *o;
	char *out, *err;
	int rc;

	h->gate_closed = 1;
	CHECK(raw__connect(&r, h->srv.path) == 0);
	o = raw__read(&r, 10000, NULL);
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"defrag\"}");
	CHECK(o && jhas(o, "return.job-id"));
	json_object_put(o);
	rc = RUN(cmd_defrag, &out, &err, "defrag", "clidefrag");
	CHECK(rc == CLI_FAILED);
	expect_in(err, "defrag already running", "busy");
	free(out);
	free(err);
	/* --cancel */
	rc = RUN(cmd_defrag, &out, &err, "defrag", "clidefrag", "--cancel");
	CHECK(rc == CLI_OK);
	expect_in(out, "cancelling defrag job 1", "cancel");
	free(out);
	free(err);
	h->gate_closed = 0;
	o = raw__wait_event(&r, "DEFRAG_CANCELLED", 1, 30000);
	CHECK(o);
	json_object_put(o);
	rc = RUN(cmd_defrag, &out, &err, "defrag", "clidefrag", "--cancel");
	CHECK(rc == CLI_FAILED);
	expect_in(err, "no defrag job is running", "cancel idle");
	free(out);
	free(err);
	raw__close(&r);
}

static void test_defrag(void)
{
	struct harness h;
	struct mm_stat before, after;
	char *out, *err;
	int rc;

	harness__init(&h, "clidefrag", NULL);
	harness__stat(&h, &before);

	rc = RUN(cmd_defrag, &out, &err, "defrag", "clidefrag", "--mode", "full", "--algo",
		 "planned", "--wait");
	CHECKF(rc == CLI_OK, "rc %d, stderr: %s", rc, err);
	expect_in(out, "defrag job 1 started on VM clidefrag", "defrag start");
	expect_in(out, "defrag job 1 done in ", "defrag summary");
	expect_in(out, "regions promoted ", "defrag summary");
	expect_in(out, "copies per promoted page", "defrag summary");
	expect_in(out, "vCPU pauses: ", "defrag summary");
	expect_in(out, "backing_2m now ", "defrag summary");
	CHECK(!strchr(out, '\r'));   /* not a terminal: no progress bar */
	harness__stat(&h, &after);
	{
		char line[128];

		snprintf(line, sizeof(line), "backing_2m now %.1f%% (%llu/%llu regions), achievable %.1f%%",
			 100.0 * after.backing_2m, (unsigned long long)after.regions_backed_2m,
			 (unsigned long long)after.nr_regions, 100.0 * after.backing_2m_achievable);
		expect_in(out, line, "defrag summary numbers");
	}
	check_summary_matches_result(&h, out);
	free(out);
	free(err);
	if (harness__thp(&h) && before.regions_achievable > before.regions_backed_2m)
		CHECK(after.regions_backed_2m > before.regions_backed_2m);

	check_defrag_argument_errors();

	/* defrag while a defrag runs: distinct error (a fresh, aged layout; the gate holds the job) */
	harness__fini(&h);
	harness__init(&h, "clidefrag", NULL);
	check_defrag_busy_and_cancel(&h);

	harness__fini(&h);
	printf("ok defrag: --wait summary, errors, busy, --cancel\n");
}

/* `defrag --wait` on a job that another client cancels: exit 1, "cancelled". */
struct canceller {
	struct harness *h;
	pthread_t t;
};

static void *canceller__run(void *arg)
{
	struct canceller *c = arg;
	struct raw r;
	struct json_object *o;
	int i;

	CHECK(raw__connect(&r, c->h->srv.path) == 0);
	o = raw__read(&r, 10000, NULL);
	json_object_put(o);
	for (i = 0; i < 3000; i++) {
		o = raw__cmd(&r, "{\"execute\": \"cancel-defrag\"}");
		if (o && jhas(o, "return")) {
			json_object_put(o);
			break;
		}
		json_object_put(o);
		h__sleep_ms(10);
	}
	c->h->gate_closed = 0;
	raw__close(&r);
	return NULL;
}

/* Ctrl-C for `defrag --wait`: wait until the job is held at the gate, then SIGINT the process. */
static void *interrupter__run(void *arg)
{
	struct harness *h = arg;

	for (int i = 0; i < 3000 && !h->at_gate; i++)
		h__sleep_ms(10);
	h__sleep_ms(100);
	kill(getpid(), SIGINT);
	h__sleep_ms(300);
	h->gate_closed = 0;   /* the job reaches its next step and sees the cancel */
	return NULL;
}

/* issue 13, item 15: Ctrl-C on `defrag --wait` cancels the job and says so, instead of
 * leaving it running silently. */
static void test_defrag_wait_interrupted(void)
{
	struct harness h;
	pthread_t t;
	char *out, *err;
	int rc;

	harness__init(&h, "cliint", NULL);
	h.gate_closed = 1;
	CHECK(pthread_create(&t, NULL, interrupter__run, &h) == 0);
	rc = RUN(cmd_defrag, &out, &err, "defrag", "cliint", "--wait");
	pthread_join(t, NULL);
	CHECKF(rc == CLI_FAILED, "rc %d: %s %s", rc, out, err);
	expect_in(err, "interrupted: cancelling job 1", "Ctrl-C says what it does");
	expect_in(out, "defrag job 1 cancelled", "the job was cancelled");
	CHECK(!defrag_job__running(&h.host.job));
	free(out);
	free(err);
	harness__fini(&h);
	printf("ok Ctrl-C on defrag --wait cancels the job and says so\n");
}

static void test_defrag_wait_cancelled_and_stop(void)
{
	struct harness h;
	struct canceller c;
	char *out, *err;
	int rc;

	harness__init(&h, "cliwait", NULL);
	h.gate_closed = 1;
	c.h = &h;
	CHECK(pthread_create(&c.t, NULL, canceller__run, &c) == 0);
	rc = RUN(cmd_defrag, &out, &err, "defrag", "cliwait", "--wait");
	pthread_join(c.t, NULL);
	CHECKF(rc == CLI_FAILED, "rc %d: %s %s", rc, out, err);
	expect_in(out, "defrag job 1 cancelled", "wait cancelled");
	free(out);
	free(err);

	rc = RUN(cmd_stop, &out, &err, "stop", "--help");
	CHECK(rc == CLI_OK);
	expect_in(out, "usage: vmcompact stop", "stop --help");
	free(out);
	free(err);
	rc = RUN(cmd_stop, &out, &err, "stop", "cliwait");
	CHECKF(rc == CLI_OK, "rc %d: %s", rc, err);
	expect_in(out, "VM cliwait stopped", "stop");
	free(out);
	free(err);
	CHECK(harness__wait_destroyed(&h, 10000));
	CHECK(access(h.srv.path, F_OK) < 0);
	rc = RUN(cmd_stop, &out, &err, "stop", "cliwait");
	CHECK(rc == CLI_NO_VM);
	free(out);
	free(err);

	harness__fini(&h);
	printf("ok defrag --wait on a cancelled job, stop\n");
}

/* Item 3: 64 idle connections do not lock the owner out, and a live VM is never "stale". */
static void test_many_idle_clients(void)
{
	static struct raw idle[CONTROL_MAX_CLIENTS];
	struct harness h;
	char *out, *err, line[128];
	int rc, i;

	harness__init(&h, "crowded", NULL);
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct json_object *g;

		CHECK(raw__connect(&idle[i], h.srv.path) == 0);
		g = raw__read(&idle[i], 10000, NULL);
		CHECK(g && jhas(g, "QMP"));
		json_object_put(g);
	}
	rc = RUN(cmd_stat, &out, &err, "stat", "crowded");
	CHECKF(rc == CLI_OK, "stat with %d idle clients: rc %d: %s", CONTROL_MAX_CLIENTS, rc, err);
	expect_in(out, "VM crowded: running", "stat crowded");
	free(out);
	free(err);
	rc = RUN(cmd_list, &out, &err, "list");
	CHECK(rc == CLI_OK);
	snprintf(line, sizeof(line), "%-20s %8d %-10s ", "crowded", (int)getpid(), "running");
	expect_in(out, line, "list crowded");
	CHECKF(!strstr(out, "stale"), "a live VM listed as stale:\n%s", out);
	free(out);
	free(err);
	rc = RUN(cmd_defrag, &out, &err, "defrag", "crowded", "--mode", "compact", "--wait");
	CHECKF(rc == CLI_OK, "defrag with idle clients: rc %d: %s", rc, err);
	free(out);
	free(err);
	rc = RUN(cmd_stop, &out, &err, "stop", "crowded");
	CHECKF(rc == CLI_OK, "stop with idle clients: rc %d: %s", rc, err);
	free(out);
	free(err);
	CHECK(harness__wait_destroyed(&h, 10000));
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++)
		raw__close(&idle[i]);
	harness__fini(&h);
	printf("ok %d idle clients: stat, list, defrag and stop still reach the VM\n", CONTROL_MAX_CLIENTS);
}

/* Item 6: `stop` shows the guest's result, and says (exit 6) when the guest was force-stopped. */
static void stop_case(int exit_status, bool forced, uint64_t errors, int want_rc, const char *want_out,
		      const char *want_err)
{
	struct harness h;
	char *out, *err;
	int rc;

	harness__init(&h, "stopres", NULL);
	h.guest_exit_status = exit_status;
	h.guest_forced = forced;
	h.guest_verify_errors = errors;
	rc = RUN(cmd_stop, &out, &err, "stop", "stopres");
	CHECKF(rc == want_rc, "stop (status %d, forced %d): rc %d, want %d: %s %s", exit_status, forced,
	       rc, want_rc, out, err);
	expect_in(out, want_out, "stop result");
	if (want_err)
		expect_in(err, want_err, "stop error");
	free(out);
	free(err);
	CHECK(harness__wait_destroyed(&h, 10000));
	harness__fini(&h);
}

static void test_stop_reports(void)
{
	stop_case(0, false, 0, CLI_OK, "VM stopres stopped (host-qmp-stop): guest exit status 0, "
		  "verify errors 0, passes 3", NULL);
	stop_case(4, true, 0, CLI_FORCED, "guest exit status 4", "was force-stopped");
	stop_case(10, false, 7, CLI_GUEST_ERROR, "verify errors 7", "verify found corruption");
	printf("ok stop: guest result shown, force-stop exit %d, guest error exit %d\n", CLI_FORCED,
	       CLI_GUEST_ERROR);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_stat();
	test_errors();
	test_defrag();
	test_defrag_wait_cancelled_and_stop();
	test_defrag_wait_interrupted();
	test_many_idle_clients();
	test_stop_reports();
	printf("all CLI tests passed\n");
	return 0;
}
