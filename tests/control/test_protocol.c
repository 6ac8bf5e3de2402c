/* test_protocol.c: the control socket's protocol against an in-process server on a real small mm. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/control/harness.h"

#define T_MS 10000

static struct json_object *expect_return(struct raw *r, const char *cmd)
{
	struct json_object *o = raw__cmd(r, "%s", cmd);

	CHECKF(o && jhas(o, "return"), "%s -> %s", cmd, o ? json_object_to_json_string(o) : "nothing");
	return o;
}

/* The first key with a '-' anywhere under o (statistics use underscore names), or NULL. */
static const char *hyphen_key(struct json_object *o)
{
	const char *k;
	size_t i;

	if (json_object_is_type(o, json_type_array)) {
		for (i = 0; i < json_object_array_length(o); i++)
			if ((k = hyphen_key(json_object_array_get_idx(o, i))))
				return k;
		return NULL;
	}
	if (!json_object_is_type(o, json_type_object))
		return NULL;
	json_object_object_foreach(o, key, val) {
		if (strchr(key, '-'))
			return key;
		if ((k = hyphen_key(val)))
			return k;
	}
	return NULL;
}

static void connect_ok(struct raw *r, struct harness *h)
{
	struct json_object *g;

	CHECK(raw__connect(r, h->srv.path) == 0);
	g = raw__read(r, T_MS, NULL);
	CHECKF(g && jhas(g, "QMP"), "greeting: %s", g ? json_object_to_json_string(g) : "none");
	json_object_put(g);
}

static void test_greeting_and_socket(void)
{
	struct harness h;
	struct raw r;
	struct json_object *g, *caps, *o;
	struct stat sb;
	char dir[PATH_MAX];

	harness__init(&h, "greet", NULL);
	/* runtime dir created 0700, socket 0600 */
	snprintf(dir, sizeof(dir), "%s", h.srv.path);
	*strrchr(dir, '/') = '\0';
	CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) && (sb.st_mode & 0777) == 0700);
	CHECK(stat(h.srv.path, &sb) == 0 && S_ISSOCK(sb.st_mode) && (sb.st_mode & 0777) == 0600);
	CHECK(strstr(h.srv.path, "/greet.sock"));

	CHECK(raw__connect(&r, h.srv.path) == 0);
	g = raw__read(&r, T_MS, NULL);
	CHECK(g);
	CHECK(jpath_int(g, "QMP.version.vmcompact.major") >= 0);
	CHECK(jhas(g, "QMP.version.package"));
	caps = jpath(g, "QMP.capabilities");
	CHECK(caps && json_object_is_type(caps, json_type_array));
	json_object_put(g);

	/* negotiation is optional: a command before qmp_capabilities works */
	o = expect_return(&r, "{\"execute\": \"query-status\"}");
	CHECK(!jhas(o, "id"));
	json_object_put(o);
	o = expect_return(&r, "{\"execute\": \"qmp_capabilities\", \"id\": \"abc\"}");
	CHECK(!strcmp(jpath_str(o, "id"), "abc"));
	json_object_put(o);
	o = expect_return(&r, "{\"execute\": \"query-status\", \"id\": {\"n\": [1, 2]}}");
	CHECK(json_object_array_length(jpath(o, "id.n")) == 2);
	json_object_put(o);
	raw__close(&r);
	harness__fini(&h);
	printf("ok greeting, socket modes, optional negotiation, ids echoed\n");
}

static void check_query_commands(struct raw *r)
{
	struct json_object *o, *a;
	const char *expect[] = { "qmp_capabilities", "query-commands", "query-status",
				 "query-memory", "defrag", "query-defrag", "cancel-defrag",
				 "set-defrag-policy", "query-defrag-policy", "stop", "snapshot" };
	unsigned i, j;

	o = expect_return(r, "{\"execute\": \"query-commands\", \"id\": 1}");
	a = jpath(o, "return");
	CHECK(json_object_array_length(a) == sizeof(expect) / sizeof(expect[0]));
	for (i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		bool found = false;

		for (j = 0; j < json_object_array_length(a); j++)
			found |= !strcmp(jpath_str(json_object_array_get_idx(a, j), "name"), expect[i]);
		CHECKF(found, "command %s not listed", expect[i]);
	}
	json_object_put(o);
}

static void check_query_status(struct raw *r, struct harness *h, const struct mm_stat *st)
{
	struct json_object *o;

	o = expect_return(r, "{\"execute\": \"query-status\", \"id\": 2}");
	CHECK(!strcmp(jpath_str(o, "return.name"), "queries"));
	CHECK(jpath_int(o, "return.pid") == getpid());
	CHECK(!strcmp(jpath_str(o, "return.status"), "running"));
	CHECK(json_object_get_boolean(jpath(o, "return.running")));
	CHECK(jpath_int(o, "return.guest_bytes") == 64 << 20);
	CHECK(jpath_int(o, "return.regions") == 32);
	CHECK(jpath_int(o, "return.regions_backed_2m") == st->regions_backed_2m);
	CHECK(fabs(json_object_get_double(jpath(o, "return.backing_2m")) - st->backing_2m) < 1e-4);
	CHECK(fabs(json_object_get_double(jpath(o, "return.backing_2m_achievable")) -
		   st->backing_2m_achievable) < 1e-4);
	CHECK(!jhas(o, "return.backing-2m") && jhas(o, "return.uptime-ms"));
	CHECK(!strcmp(jpath_str(o, "return.defrag"), "idle"));
	CHECK(!strcmp(jpath_str(o, "return.defragd"), "off"));
	CHECK(!strcmp(jpath_str(o, "return.workload"), "test"));   /* host add_status hook */
	CHECK(!strcmp(jpath_str(o, "return.socket"), h->srv.path));
	json_object_put(o);
}

static void check_query_memory(struct raw *r, struct harness *h, const struct mm_stat *st)
{
	struct json_object *o, *a, *ref;
	struct kvm_pages kvm = { 0 };
	char txt[16384];
	unsigned i;

	o = expect_return(r, "{\"execute\": \"query-memory\"}");
	CHECK(jpath_int(o, "return.guest_bytes") == 64 << 20);
	CHECK(jpath_int(o, "return.pool_bytes") == 96 << 20);
	CHECK(jpath_int(o, "return.regions.total") == 32);
	CHECK(jpath_int(o, "return.regions.backed_2m") == st->regions_backed_2m);
	CHECK(jpath_int(o, "return.regions.achievable") == st->regions_achievable);
	CHECK(jpath_int(o, "return.regions.in_order") == st->regions_in_order);
	CHECK(json_object_array_length(jpath(o, "return.buddyinfo")) == MM_MAX_ORDER);
	for (i = 0; i < MM_MAX_ORDER; i++) {
		CHECK((uint64_t)json_object_get_int64(json_object_array_get_idx(
			jpath(o, "return.buddyinfo"), i)) == st->nr_free[i]);
		CHECK(fabs(json_object_get_double(json_object_array_get_idx(
			jpath(o, "return.extfrag_index"), i)) * 1000 - st->fragindex[i]) < 0.5);
	}
	CHECK(json_object_array_length(jpath(o, "return.pagetypeinfo.free.Movable")) == MM_MAX_ORDER);
	CHECK(jpath_int(o, "return.pagetypeinfo.blocks.Unmovable") == (int64_t)st->pageblocks_mt[MIGRATE_UNMOVABLE]);
	CHECK(jpath_int(o, "return.pagetypeinfo.page_block_order") == 9);
	CHECK(json_object_array_length(jpath(o, "return.unusable_index")) == MM_MAX_ORDER);
	CHECK(jpath_int(o, "return.fragmentation_score") == st->frag_score);
	CHECK(jpath_int(o, "return.backing_score") == mm_stat__backing_score(st));
	CHECK(jpath_int(o, "return.kvm.pages_2m") == st->regions_backed_2m);
	CHECK(jpath_int(o, "return.kvm.pages_4k") + 512 * jpath_int(o, "return.kvm.pages_2m") == 16384);
	CHECK(jhas(o, "return.vmstat.compact_migrate_scanned"));
	CHECK(jhas(o, "return.vmstat.thp_collapse_alloc"));
	CHECK(jpath_int(o, "return.frames.guest") == 16384);
	CHECK(jpath_int(o, "return.vmas") == (int64_t)st->vmas);
	CHECK(jpath_int(o, "return.metadata_bytes") > 0);
	CHECK(jhas(o, "return.pool_backing"));
	CHECK(fabs(json_object_get_double(jpath(o, "return.backing_2m")) - st->backing_2m) < 1e-4);
	CHECKF(!hyphen_key(jpath(o, "return")), "query-memory key '%s'", hyphen_key(jpath(o, "return")));
	/* query-memory is mm_json's picture, the one `run --json` prints */
	kvm.valid = h->host.kvm_stats(h->host.ctx, &kvm) >= 0;
	ref = mm_json__stat(st, &kvm);
	snprintf(txt, sizeof(txt), "%s", json_object_to_json_string_ext(jpath(o, "return"),
								   JSON_C_TO_STRING_PLAIN));
	CHECKF(!strcmp(txt, json_object_to_json_string_ext(ref, JSON_C_TO_STRING_PLAIN)),
	       "query-memory %s\nmm_json %s", txt, json_object_to_json_string(ref));
	json_object_put(ref);
	json_object_put(o);

	/* no KVM stats hook: "kvm": null, the rest unchanged */
	h->host.kvm_stats = NULL;
	o = expect_return(r, "{\"execute\": \"query-memory\"}");
	CHECK(json_object_object_get_ex(jpath(o, "return"), "kvm", &a) && a == NULL);
	CHECK(jpath_int(o, "return.regions.total") == 32);
	json_object_put(o);
}

static void test_queries(void)
{
	struct harness h;
	struct raw r;
	struct json_object *o;
	struct mm_stat st;

	harness__init(&h, "queries", NULL);
	harness__stat(&h, &st);
	connect_ok(&r, &h);

	check_query_commands(&r);
	check_query_status(&r, &h, &st);
	check_query_memory(&r, &h, &st);

	o = expect_return(&r, "{\"execute\": \"query-defrag\"}");
	CHECK(!strcmp(jpath_str(o, "return.state"), "idle"));
	json_object_put(o);

	o = expect_return(&r, "{\"execute\": \"query-defrag-policy\"}");
	CHECK(!json_object_get_boolean(jpath(o, "return.auto")));
	CHECK(jpath_int(o, "return.proactiveness") == 20);
	CHECK(jpath_int(o, "return.wmark-low") == 80);
	CHECK(jpath_int(o, "return.wmark-high") == 90);
	CHECK(jpath_int(o, "return.interval-ms") == 500);
	CHECK(!strcmp(jpath_str(o, "return.state"), "off"));
	CHECK(jpath_int(o, "return.counters.wakeups") == 0);
	json_object_put(o);

	o = expect_return(&r, "{\"execute\": \"set-defrag-policy\", \"arguments\": "
			      "{\"proactiveness\": 50, \"interval-ms\": 1000, \"max-mbps\": 0}}");
	CHECK(jpath_int(o, "return.proactiveness") == 50);
	CHECK(jpath_int(o, "return.wmark-low") == 50);
	CHECK(jpath_int(o, "return.wmark-high") == 60);
	CHECK(jpath_int(o, "return.interval-ms") == 1000);
	CHECK(jpath_int(o, "return.max-mbps") == 0);
	json_object_put(o);
	o = expect_return(&r, "{\"execute\": \"query-defrag-policy\"}");
	CHECK(jpath_int(o, "return.proactiveness") == 50);
	json_object_put(o);

	o = raw__cmd(&r, "{\"execute\": \"cancel-defrag\", \"id\": 9}");
	CHECK_ERROR(o, "DeviceNotActive", "no defrag job");
	CHECK(jpath_int(o, "id") == 9);
	json_object_put(o);

	raw__close(&r);
	harness__fini(&h);
	printf("ok query-commands, query-status, query-memory, policy, cancel without job\n");
}

static void check_malformed_requests(struct raw *r)
{
	struct json_object *o;

	o = raw__cmd(r, "{bad json}");
	CHECK_ERROR(o, "GenericError", "JSON parse error");
	json_object_put(o);
	/* snapshot: a string file, and a host that can write one (this fake one cannot) */
	o = raw__cmd(r, "{\"execute\": \"snapshot\", \"arguments\": {\"file\": 3}}");
	CHECK_ERROR(o, "GenericError", "expected: non-empty string");
	json_object_put(o);
	o = raw__cmd(r, "{\"execute\": \"snapshot\", \"arguments\": {\"file\": \"/tmp/x\"}}");
	CHECK_ERROR(o, "GenericError", "cannot be snapshotted");
	json_object_put(o);
	o = expect_return(r, "{\"execute\": \"query-status\", \"id\": 1}");   /* still usable */
	json_object_put(o);
	/* garbage followed by a good request on the next line */
	raw__sendf(r, "}}}} nonsense\n{\"execute\": \"query-defrag\", \"id\": 2}\n");
	o = raw__reply(r, T_MS);
	CHECK_ERROR(o, "GenericError", "JSON parse error");
	json_object_put(o);
	o = raw__reply(r, T_MS);
	CHECK(o && jpath_int(o, "id") == 2 && jhas(o, "return.state"));
	json_object_put(o);
	/* a NUL byte inside a message */
	raw__send(r, "{\"execute\"\0: 1}\n", 16);
	o = raw__reply(r, T_MS);
	CHECK_ERROR(o, "GenericError", "JSON parse error");
	json_object_put(o);

	o = raw__cmd(r, "42");
	CHECK_ERROR(o, "GenericError", "must be a JSON object");
	json_object_put(o);
	o = raw__cmd(r, "[\"execute\", \"query-status\"]");
	CHECK_ERROR(o, "GenericError", "must be a JSON object");
	json_object_put(o);
	o = raw__cmd(r, "{\"id\": 5}");
	CHECK_ERROR(o, "GenericError", "lacks member 'execute'");
	CHECK(jpath_int(o, "id") == 5);
	json_object_put(o);
	o = raw__cmd(r, "{\"execute\": 3}");
	CHECK_ERROR(o, "GenericError", "'execute' must be a string");
	json_object_put(o);
	o = raw__cmd(r, "{\"execute\": \"defrag\", \"arguments\": [1]}");
	CHECK_ERROR(o, "GenericError", "'arguments' must be an object");
	json_object_put(o);
	o = raw__cmd(r, "{\"execute\": \"query-status\", \"extra\": 1}");
	CHECK_ERROR(o, "GenericError", "'extra' is unexpected");
	json_object_put(o);
	o = raw__cmd(r, "{\"execute\": \"frobnicate\", \"id\": 7}");
	CHECK_ERROR(o, "CommandNotFound", "frobnicate");
	CHECK(jpath_int(o, "id") == 7);
	json_object_put(o);
}

static void test_bad_input(void)
{
	struct harness h;
	struct raw r;
	struct json_object *o;

	harness__init(&h, "bad", NULL);
	connect_ok(&r, &h);

	check_malformed_requests(&r);
	/* strict argument checking */
	o = raw__cmd(&r, "{\"execute\": \"defrag\", \"arguments\": {\"order\": \"3\"}}");
	CHECK_ERROR(o, "GenericError", "Invalid parameter type for 'order', expected: integer");
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"defrag\", \"arguments\": {\"order\": 1.5}}");
	CHECK_ERROR(o, "GenericError", "'order'");
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"defrag\", \"arguments\": {\"order\": 11}}");
	CHECK_ERROR(o, "GenericError", "'order' expects a value in 0..10");
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"defrag\", \"arguments\": {\"order\": -1}}");
	CHECK_ERROR(o, "GenericError", "'order'");
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"defrag\", \"arguments\": {\"max-mbps\": 99999999999999999999}}");
	CHECK_ERROR(o, "GenericError", "'max-mbps'");
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"defrag\", \"arguments\": {\"mode\": \"turbo\"}}");
	CHECK_ERROR(o, "GenericError", "'mode' does not accept value 'turbo'");
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"defrag\", \"arguments\": {\"algo\": 1}}");
	CHECK_ERROR(o, "GenericError", "'algo', expected: string");
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"defrag\", \"arguments\": {\"speed\": 1}}");
	CHECK_ERROR(o, "GenericError", "Parameter 'speed' is unexpected");
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"defrag\", \"arguments\": {\"mode\": \"collapse\", \"order\": 3}}");
	CHECK_ERROR(o, "GenericError", "'order' is only valid");
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"set-defrag-policy\", \"arguments\": {\"auto\": \"on\"}}");
	CHECK_ERROR(o, "GenericError", "'auto', expected: boolean");
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"set-defrag-policy\", \"arguments\": {\"proactiveness\": 101}}");
	CHECK_ERROR(o, "GenericError", "'proactiveness' expects a value in 0..100");
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"set-defrag-policy\", \"arguments\": {\"interval-ms\": 1}}");
	CHECK_ERROR(o, "GenericError", "'interval-ms'");
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"query-status\", \"arguments\": {\"verbose\": true}}");
	CHECK_ERROR(o, "GenericError", "'verbose' is unexpected");
	json_object_put(o);
	/* nothing above started a job or changed the policy */
	o = expect_return(&r, "{\"execute\": \"query-defrag\"}");
	CHECK(!strcmp(jpath_str(o, "return.state"), "idle"));
	json_object_put(o);
	o = expect_return(&r, "{\"execute\": \"query-defrag-policy\"}");
	CHECK(jpath_int(o, "return.proactiveness") == 20);
	CHECK(!json_object_get_boolean(jpath(o, "return.auto")));
	json_object_put(o);

	raw__close(&r);
	harness__fini(&h);
	printf("ok malformed JSON, bad requests, unknown command, strict arguments\n");
}

/* Client limit: with CONTROL_MAX_CLIENTS connected, a new client still gets in; the
 * connection idle the longest makes room and is told why (issue 13, item 3). */
static void check_client_limit(struct harness *h)
{
	static struct raw many[CONTROL_MAX_CLIENTS];
	struct raw extra;
	struct json_object *o;
	bool eof = false;
	size_t i;

	for (i = 0; i < CONTROL_MAX_CLIENTS; i++)
		connect_ok(&many[i], h);
	for (i = 1; i < CONTROL_MAX_CLIENTS; i++) {   /* all but many[0] have spoken */
		o = expect_return(&many[i], "{\"execute\": \"query-status\"}");
		json_object_put(o);
	}
	connect_ok(&extra, h);
	o = expect_return(&extra, "{\"execute\": \"query-status\"}");
	CHECK(!strcmp(jpath_str(o, "return.status"), "running"));
	json_object_put(o);
	o = raw__read(&many[0], T_MS, &eof);
	CHECK_ERROR(o, "GenericError", "idle the longest");
	json_object_put(o);
	o = raw__read(&many[0], T_MS, &eof);
	CHECK(!o && eof);
	for (i = 1; i < CONTROL_MAX_CLIENTS; i++) {   /* nobody else was disturbed */
		o = expect_return(&many[i], "{\"execute\": \"query-defrag\"}");
		json_object_put(o);
	}
	pthread_mutex_lock(&h->srv.lock);
	CHECK(h->srv.counters.evicted == 1);
	pthread_mutex_unlock(&h->srv.lock);
	raw__close(&extra);
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++)
		raw__close(&many[i]);
}

static void test_framing_limits(void)
{
	struct harness h;
	struct raw r, r2;
	struct json_object *o;
	size_t big = CONTROL_MAX_MSG + 4096, i;
	char *msg = malloc(big + 64);
	bool eof = false;
	int n;

	harness__init(&h, "limits", NULL);

	/* oversized message: error, then the server closes this connection */
	connect_ok(&r, &h);
	n = snprintf(msg, big, "{\"execute\": \"query-status\", \"arguments\": {\"x\": \"");
	memset(msg + n, 'A', big - (size_t)n);
	raw__send(&r, msg, big);
	o = raw__reply(&r, T_MS);
	CHECK_ERROR(o, "GenericError", "message too large");
	json_object_put(o);
	o = raw__read(&r, T_MS, &eof);
	CHECK(!o && eof);
	raw__close(&r);

	/* pipelined requests: many in one write, each answered, in order */
	connect_ok(&r, &h);
	{
		size_t len = 0, cap = 1 << 20;
		char *buf = malloc(cap);

		for (i = 0; i < 2000; i++)
			len += (size_t)snprintf(buf + len, cap - len,
						"{\"execute\":\"qmp_capabilities\",\"id\":%zu}\n", i);
		CHECK(len > CONTROL_MAX_MSG);   /* more than one message's limit in one go */
		raw__send(&r, buf, len);
		free(buf);
	}
	for (i = 0; i < 2000; i++) {
		o = raw__reply(&r, T_MS);
		CHECKF(o && jhas(o, "return") && (size_t)jpath_int(o, "id") == i, "reply %zu", i);
		json_object_put(o);
	}
	/* a request split across writes */
	raw__sendf(&r, "{\"execute\": \"query-");
	h__sleep_ms(50);
	raw__sendf(&r, "defrag\", \"id\": 77}\n");
	o = raw__reply(&r, T_MS);
	CHECK(o && jpath_int(o, "id") == 77);
	json_object_put(o);
	/* several requests on one line without newlines between them */
	raw__sendf(&r, "{\"execute\":\"query-defrag\",\"id\":1}{\"execute\":\"query-defrag\",\"id\":2}\n");
	o = raw__reply(&r, T_MS);
	CHECK(o && jpath_int(o, "id") == 1);
	json_object_put(o);
	o = raw__reply(&r, T_MS);
	CHECK(o && jpath_int(o, "id") == 2);
	json_object_put(o);

	/* half-close (socat style): request, shutdown(SHUT_WR), reply still arrives */
	connect_ok(&r2, &h);
	raw__sendf(&r2, "{\"execute\": \"query-status\", \"id\": 3}\n");
	shutdown(r2.fd, SHUT_WR);
	o = raw__reply(&r2, T_MS);
	CHECK(o && jpath_int(o, "id") == 3 && jhas(o, "return.status"));
	json_object_put(o);
	o = raw__read(&r2, T_MS, &eof);
	CHECK(!o && eof);
	raw__close(&r2);

	/* the server survived all of it */
	o = expect_return(&r, "{\"execute\": \"query-status\"}");
	json_object_put(o);
	raw__close(&r);

	check_client_limit(&h);
	free(msg);
	harness__fini(&h);
	printf("ok oversized message, pipelining, split requests, half-close, client limit evicts the idlest\n");
}

/* Wait until the job is held at the gate (its first pause). */
static void wait_gated(struct harness *h)
{
	uint64_t end = h__now_ms() + 30000;

	while (!h->at_gate && h__now_ms() < end)
		h__sleep_ms(1);
	CHECK(h->at_gate && defrag_job__running(&h->host.job));
}

static void check_job_busy(struct raw *b, uint64_t job)
{
	struct json_object *o;

	/* while it runs: a second defrag from another client is refused */
	o = raw__cmd(b, "{\"execute\": \"defrag\", \"id\": 2}");
	CHECK_ERROR(o, "GenericError", "defrag already running");
	CHECK(jpath_int(o, "id") == 2);
	json_object_put(o);
	/* and the socket still answers (the job does not block it) */
	o = expect_return(b, "{\"execute\": \"query-defrag\"}");
	CHECK(!strcmp(jpath_str(o, "return.state"), "running"));
	CHECK((uint64_t)jpath_int(o, "return.job-id") == job);
	CHECK(!strcmp(jpath_str(o, "return.origin"), "manual"));
	CHECK(!strcmp(jpath_str(o, "return.mode"), "full"));
	CHECK(!strcmp(jpath_str(o, "return.algo"), "planned"));
	CHECK(jpath_int(o, "return.order") == -1);
	json_object_put(o);
	o = expect_return(b, "{\"execute\": \"query-memory\"}");
	json_object_put(o);
	o = expect_return(b, "{\"execute\": \"query-status\"}");
	CHECK(!strcmp(jpath_str(o, "return.defrag"), "running"));
	json_object_put(o);
}

static void defrag_job_busy_disconnect_events(void)
{
	struct harness h;
	struct raw a, b;
	struct json_object *o, *ev;
	struct mm_stat before, after;
	uint64_t job, t0, elapsed;
	unsigned progress;

	harness__init(&h, "jobs", NULL);
	harness__stat(&h, &before);
	connect_ok(&a, &h);
	connect_ok(&b, &h);

	/* the gate holds the job in its first step while we look at it */
	h.gate_closed = 1;
	o = expect_return(&a, "{\"execute\": \"defrag\", \"arguments\": {\"mode\": \"full\", "
			      "\"algo\": \"planned\", \"max-pause-us\": 500}, \"id\": 1}");
	job = (uint64_t)jpath_int(o, "return.job-id");
	CHECK(job == 1);
	json_object_put(o);
	t0 = h__now_ms();
	wait_gated(&h);

	check_job_busy(&b, job);

	/* client a disconnects mid-job: the job goes on */
	raw__close(&a);
	h__sleep_ms(20);
	h.gate_closed = 0;

	ev = raw__wait_event(&b, "DEFRAG_COMPLETED", job, 120000);
	CHECKF(ev, "no DEFRAG_COMPLETED");
	elapsed = h__now_ms() - t0;
	CHECKF(!strcmp(jpath_str(ev, "data.state"), "done"), "%s", json_object_to_json_string(ev));
	CHECK(!strcmp(jpath_str(ev, "data.origin"), "manual"));
	CHECK(jhas(ev, "timestamp.seconds") && jhas(ev, "timestamp.microseconds"));
	CHECK(jhas(ev, "data.result.regions_promoted"));
	CHECK(jhas(ev, "data.result.pause_max_us"));
	CHECKF(!hyphen_key(jpath(ev, "data.result")), "event result key '%s'",
	       hyphen_key(jpath(ev, "data.result")));
	CHECK(jpath_int(ev, "data.result.steps") > 0);
	/* progress events came, throttled to at most 10 a second (plus slack for the edges) */
	progress = raw__count_events(&b, "DEFRAG_PROGRESS", job);
	CHECKF(progress >= 1 && progress <= elapsed / 100 + 2, "%u progress events in %llu ms",
	       progress, (unsigned long long)elapsed);
	json_object_put(ev);

	o = expect_return(&b, "{\"execute\": \"query-defrag\"}");
	CHECK(!strcmp(jpath_str(o, "return.state"), "done"));
	CHECK(jhas(o, "return.result.copies_per_promoted_page"));
	CHECK(jhas(o, "return.result.pause_p99_us"));
	CHECK(jhas(o, "return.result.regions_zero_copy"));
	CHECK(jhas(o, "return.result.regions_failed"));
	CHECK(jhas(o, "return.result.regions_achievable"));
	CHECK(jhas(o, "return.result.seconds"));
	CHECK(jhas(o, "return.result.vmstat.compact_migrate_scanned"));
	CHECK(jpath_int(o, "return.result.pages_copied") >= 0);
	CHECKF(!hyphen_key(jpath(o, "return.result")), "result key '%s'",
	       hyphen_key(jpath(o, "return.result")));
	CHECK(jhas(o, "return.job-id") && jhas(o, "return.elapsed-ms") && jhas(o, "return.progress.done"));
	json_object_put(o);

	harness__stat(&h, &after);
	CHECK(h.pauses > 0 && h.pauses == h.resumes);
	if (harness__thp(&h) && before.regions_achievable > before.regions_backed_2m)
		CHECKF(after.regions_backed_2m > before.regions_backed_2m,
		       "backed_2m %u -> %u (achievable %u)", before.regions_backed_2m,
		       after.regions_backed_2m, before.regions_achievable);
	else
		printf("  (pool is not THP-backed here: backing_2m not checked)\n");
	raw__close(&b);
	harness__fini(&h);
}

static void defrag_job_slow_throttled(void)
{
	struct harness h;
	struct raw b;
	struct json_object *o, *ev;
	uint64_t job, t0, elapsed;
	unsigned progress;

	/* a slow job (10 ms per step) sends progress events at most 10 a second */
	harness__init(&h, "slow", NULL);
	connect_ok(&b, &h);
	h.pause_delay_us = 10000;
	o = expect_return(&b, "{\"execute\": \"defrag\", \"arguments\": {\"algo\": \"linux\"}}");
	job = (uint64_t)jpath_int(o, "return.job-id");
	json_object_put(o);
	t0 = h__now_ms();
	h__sleep_ms(1000);
	h.pause_delay_us = 0;
	ev = raw__wait_event(&b, "DEFRAG_COMPLETED", job, 120000);
	CHECK(ev);
	elapsed = h__now_ms() - t0;
	json_object_put(ev);
	progress = raw__count_events(&b, "DEFRAG_PROGRESS", job);
	CHECKF(progress >= 5 && progress <= elapsed / 100 + 2, "%u progress events in %llu ms",
	       progress, (unsigned long long)elapsed);
	raw__close(&b);
	harness__fini(&h);
}

static void defrag_job_cancel(void)
{
	struct harness h;
	struct raw b, c;
	struct json_object *o, *ev;
	uint64_t job;

	/* cancel, from another client */
	harness__init(&h, "cancel", NULL);
	connect_ok(&b, &h);
	connect_ok(&c, &h);
	h.gate_closed = 1;
	o = expect_return(&b, "{\"execute\": \"defrag\"}");
	job = (uint64_t)jpath_int(o, "return.job-id");
	json_object_put(o);
	wait_gated(&h);
	o = expect_return(&c, "{\"execute\": \"cancel-defrag\"}");
	CHECK((uint64_t)jpath_int(o, "return.job-id") == job);
	json_object_put(o);
	h.gate_closed = 0;
	ev = raw__wait_event(&b, "DEFRAG_CANCELLED", job, 30000);
	CHECKF(ev, "no DEFRAG_CANCELLED for job %llu", (unsigned long long)job);
	CHECK(jhas(ev, "data.result"));
	json_object_put(ev);
	ev = raw__wait_event(&c, "DEFRAG_CANCELLED", job, 30000);   /* every client gets it */
	CHECK(ev);
	json_object_put(ev);
	o = expect_return(&c, "{\"execute\": \"query-defrag\"}");
	CHECK(!strcmp(jpath_str(o, "return.state"), "cancelled"));
	json_object_put(o);
	/* a new job may start after a cancelled one, and gets the next id */
	o = expect_return(&c, "{\"execute\": \"defrag\", \"arguments\": {\"mode\": \"compact\", \"order\": 9, "
			      "\"algo\": \"linux\"}}");
	CHECK((uint64_t)jpath_int(o, "return.job-id") == job + 1);
	json_object_put(o);
	ev = raw__wait_event(&c, "DEFRAG_COMPLETED", job + 1, 120000);
	CHECK(ev);
	json_object_put(ev);
	harness__fini(&h);
	raw__close(&b);
	raw__close(&c);
}

static void defrag_job_failure(void)
{
	struct harness h;
	struct raw c;
	struct json_object *o, *ev;
	uint64_t job;

	/* a failing step (pause error) fails the job, with the reason */
	harness__init(&h, "fail", NULL);
	connect_ok(&c, &h);
	h.pause_error = -EIO;
	o = expect_return(&c, "{\"execute\": \"defrag\"}");
	job = (uint64_t)jpath_int(o, "return.job-id");
	json_object_put(o);
	ev = raw__wait_event(&c, "DEFRAG_COMPLETED", job, 30000);
	CHECK(ev);
	CHECKF(!strcmp(jpath_str(ev, "data.state"), "failed"), "%s", json_object_to_json_string(ev));
	CHECK(jpath_str(ev, "data.error")[0]);
	json_object_put(ev);
	o = expect_return(&c, "{\"execute\": \"query-defrag\"}");
	CHECK(!strcmp(jpath_str(o, "return.state"), "failed"));
	CHECK(jpath_str(o, "return.error")[0]);
	json_object_put(o);
	h.pause_error = 0;

	raw__close(&c);
	harness__fini(&h);
}

static void test_defrag_jobs(void)
{
	defrag_job_busy_disconnect_events();
	defrag_job_slow_throttled();
	defrag_job_cancel();
	defrag_job_failure();
	printf("ok defrag job: busy error, disconnect mid-job, events, throttling, cancel, failure\n");
}

static void test_peer_uid(void)
{
	struct harness h;
	struct control_config cfg;
	struct raw r;
	struct json_object *o;
	bool eof;
	pid_t pid;
	int status;

	/* the allowed uid is injectable: pretend the VM belongs to uid 4242 */
	control_config__init(&cfg);
	cfg.name = "peer";
	cfg.allowed_uid = 4242;
	cfg.allow_root = false;
	harness__init(&h, "peer", &(struct harness_opts){ .cfg = &cfg });
	CHECK(raw__connect(&r, h.srv.path) == 0);
	o = raw__read(&r, T_MS, NULL);
	CHECK_ERROR(o, "GenericError", "permission denied");
	json_object_put(o);
	o = raw__read(&r, T_MS, &eof);
	CHECK(!o && eof);
	raw__close(&r);
	pthread_mutex_lock(&h.srv.lock);
	CHECK(h.srv.counters.refused_uid == 1);
	pthread_mutex_unlock(&h.srv.lock);
	harness__fini(&h);

	/* root may connect to anybody's VM when allow_root is set */
	cfg.allow_root = true;
	harness__init(&h, "peer", &(struct harness_opts){ .cfg = &cfg });
	if (geteuid() == 0) {
		connect_ok(&r, &h);
		raw__close(&r);
	}

	/* a real other user cannot even reach the socket (0700 dir, 0600 socket) */
	if (geteuid() == 0) {
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			struct sockaddr_un sa = { .sun_family = AF_UNIX };
			int fd;

			if (setgid(65534) || setuid(65534))
				_exit(3);
			fd = socket(AF_UNIX, SOCK_STREAM, 0);
			snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h.srv.path);
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
				_exit(1);
			_exit(errno == EACCES ? 0 : 2);
		}
		CHECK(waitpid(pid, &status, 0) == pid);
		CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	}
	harness__fini(&h);
	printf("ok peer uid refused (injected uid), other user blocked by file modes\n");
}

static void test_socket_lifecycle(void)
{
	struct harness h;
	struct control_server second;
	struct control_config cfg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char err[512], path[PATH_MAX + 32];
	int fd, r;

	/* a stale socket (bound, nobody listening) is replaced at start, with a note */
	harness__init(&h, "life", &(struct harness_opts){ .no_server = true });
	CHECK(mkdir(h.dir, 0700) == 0);
	snprintf(path, sizeof(path), "%s/life.sock", h.dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(fd);
	control_config__init(&cfg);
	cfg.name = "life";
	r = harness__start_server(&h, &cfg, err, sizeof(err));
	CHECKF(r == 0, "%s", err);
	h.srv_live = true;
	CHECKF(strstr(h.srv.note, "stale"), "note: %s", h.srv.note);

	/* a live VM with the same name: a clear error, and the first one is untouched */
	r = control__start(&second, &h.host, &cfg, err, sizeof(err));
	CHECK(r == -EADDRINUSE);
	CHECKF(strstr(err, "a VM named life is already running"), "%s", err);
	{
		struct raw raw;

		connect_ok(&raw, &h);
		raw__close(&raw);
	}

	/* a non-socket file in the way is never deleted */
	{
		struct control_config c2;
		char p2[PATH_MAX + 32];

		snprintf(p2, sizeof(p2), "%s/file.sock", h.dir);
		fd = open(p2, O_CREAT | O_WRONLY, 0600);
		close(fd);
		control_config__init(&c2);
		c2.name = "file";
		r = control__start(&second, &h.host, &c2, err, sizeof(err));
		CHECK(r == -EEXIST && strstr(err, "not a socket"));
		CHECK(access(p2, F_OK) == 0);
		unlink(p2);
		/* invalid names are refused */
		c2.name = "../evil";
		r = control__start(&second, &h.host, &c2, err, sizeof(err));
		CHECK(r == -EINVAL);
		/* an explicit path works too */
		c2.name = "bypath";
		snprintf(p2, sizeof(p2), "%s/explicit.socket", h.dir);
		c2.path = p2;
		r = control__start(&second, &h.host, &c2, err, sizeof(err));
		CHECKF(r == 0, "%s", err);
		{
			struct raw raw;
			struct json_object *o;

			CHECK(raw__connect(&raw, p2) == 0);
			o = raw__read(&raw, T_MS, NULL);
			CHECK(o && jhas(o, "QMP"));
			json_object_put(o);
			raw__close(&raw);
		}
		control__destroy(&second, NULL);
		CHECK(access(p2, F_OK) < 0);
	}

	/* destroy unlinks the socket */
	control__destroy(&h.srv, NULL);
	h.srv_live = false;
	CHECK(access(path, F_OK) < 0);
	harness__fini(&h);
	printf("ok stale socket replaced, live name refused, explicit path, unlink at exit\n");
}

static void test_stop(void)
{
	struct harness h;
	struct raw a, b;
	struct json_object *o, *ev;
	bool eof;

	harness__init(&h, "stopme", NULL);
	connect_ok(&a, &h);
	connect_ok(&b, &h);
	h.gate_closed = 1;
	o = expect_return(&b, "{\"execute\": \"defrag\"}");
	json_object_put(o);
	wait_gated(&h);

	o = expect_return(&a, "{\"execute\": \"stop\", \"id\": 1}");
	CHECK(jpath_int(o, "id") == 1);
	json_object_put(o);
	/* the VMM tears the control plane down, which cancels the job at its next step */
	h__sleep_ms(50);
	CHECK(!h.destroyed);
	h.gate_closed = 0;
	CHECK(harness__wait_destroyed(&h, 30000));
	/* every client saw the cancellation, then SHUTDOWN, then EOF */
	ev = raw__wait_event(&b, "DEFRAG_CANCELLED", 0, T_MS);
	CHECK(ev);
	json_object_put(ev);
	ev = raw__wait_event(&a, "SHUTDOWN", 0, T_MS);
	CHECK(ev && !strcmp(jpath_str(ev, "data.reason"), "host-qmp-stop"));
	json_object_put(ev);
	ev = raw__wait_event(&b, "SHUTDOWN", 0, T_MS);
	CHECK(ev);
	json_object_put(ev);
	o = raw__read(&a, T_MS, &eof);
	CHECK(!o && eof);
	CHECK(access(h.srv.path, F_OK) < 0);
	raw__close(&a);
	raw__close(&b);
	harness__fini(&h);
	printf("ok stop: job cancelled, SHUTDOWN to every client, socket removed\n");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_greeting_and_socket();
	test_queries();
	test_bad_input();
	test_framing_limits();
	test_peer_uid();
	test_socket_lifecycle();
	test_defrag_jobs();
	test_stop();
	printf("all protocol tests passed\n");
	return 0;
}
