/* test_hardening.c: what a hostile tester found in the control plane (issue 13), each case against the real server. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/control/harness.h"
#include "vmm/json.h"

#define T_MS 10000


/* One line from fd (without the newline), as raw bytes. */
static size_t read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n < cap - 1) {
		ssize_t r = recv(fd, buf + n, 1, 0);

		CHECKF(r == 1, "no complete line from the server (%zd)", r);
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return n;
}

/*
 * Send req on a fresh connection. The reply's bytes must be valid UTF-8 and strict
 * JSON (what a strict client parser demands); returns the parsed reply.
 */
static struct json_object *strict_reply(struct harness *h, const char *req, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static char line[65536];
	struct json_tokener *tok;
	struct json_object *o;
	size_t n;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h->srv.path);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	read_line(fd, line, sizeof(line));   /* greeting */
	CHECK(send(fd, req, len, MSG_NOSIGNAL) == (ssize_t)len);
	n = read_line(fd, line, sizeof(line));
	close(fd);
	CHECKF(json__utf8_valid(line, n), "reply is not valid UTF-8: %s", line);
	tok = json_tokener_new();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, line, (int)n);
	CHECKF(o && json_tokener_get_error(tok) == json_tokener_success, "strict parser rejects: %s", line);
	json_tokener_free(tok);
	return o;
}

/* Item 9: invalid UTF-8 and NUL in a request never make the reply invalid JSON. */
static void test_utf8_and_nul(void)
{
	static const char bad_id[] = "{\"execute\": \"query-status\", \"id\": \"\xff\xfe\"}\n";
	static const char bad_exec[] = "{\"execute\": \"qu\xc3" "ery-status\", \"id\": 1}\n";
	static const char nul_exec[] = "{\"execute\": \"query-status\\u0000x\", \"id\": 2}\n";
	static const char good_id[] = "{\"execute\": \"query-defrag\", \"id\": \"caf\xc3\xa9\"}\n";
	/* json-c lets these through; found by fuzz_control */
	static const char overlong[] = "{\"execute\": \"query\xc1\xa9\"}\n";
	static const char surrogate_id[] = "{\"execute\": \"query-status\", \"id\": [\"\xed\xa0\x80\"]}\n";
	struct harness h;
	struct json_object *o;
	char big[2048];
	int n;

	harness__init(&h, "utf8", NULL);
	o = strict_reply(&h, bad_id, sizeof(bad_id) - 1);
	CHECK_ERROR(o, "GenericError", "JSON parse error");
	json_object_put(o);
	o = strict_reply(&h, bad_exec, sizeof(bad_exec) - 1);
	CHECK_ERROR(o, "GenericError", "JSON parse error");
	json_object_put(o);
	o = strict_reply(&h, overlong, sizeof(overlong) - 1);
	CHECK_ERROR(o, "GenericError", "invalid UTF-8");
	json_object_put(o);
	o = strict_reply(&h, surrogate_id, sizeof(surrogate_id) - 1);
	CHECK_ERROR(o, "GenericError", "invalid UTF-8");
	CHECK(!jhas(o, "id"));
	json_object_put(o);
	/* a NUL does not cut the name short: the error shows all of it */
	o = strict_reply(&h, nul_exec, sizeof(nul_exec) - 1);
	CHECK_ERROR(o, "CommandNotFound", "query-status\\u0000x");
	CHECK(jpath_int(o, "id") == 2);
	json_object_put(o);
	/* a long multibyte name cut to the error's size is cut between characters */
	n = snprintf(big, sizeof(big), "{\"execute\": \"");
	for (int i = 0; i < 400; i++)
		n += snprintf(big + n, sizeof(big) - (size_t)n, "\xc3\xa9");
	n += snprintf(big + n, sizeof(big) - (size_t)n, "\"}\n");
	o = strict_reply(&h, big, (size_t)n);
	CHECK_ERROR(o, "CommandNotFound", "\xc3\xa9\xc3\xa9");
	json_object_put(o);
	/* valid UTF-8 in an id comes back as it was */
	o = strict_reply(&h, good_id, sizeof(good_id) - 1);
	CHECK(jhas(o, "return") && !strcmp(jpath_str(o, "id"), "caf\xc3\xa9"));
	json_object_put(o);
	harness__fini(&h);
	printf("ok invalid UTF-8 refused, NUL shown, long names cut on a character boundary\n");
}

/* Item 14: once `stop` is accepted, `defrag` (even pipelined right behind it) is refused. */
static void test_defrag_after_stop(void)
{
	struct harness h;
	struct raw r;
	struct json_object *o;

	harness__init(&h, "afterstop", NULL);
	h.stop_delay_ms = 300;   /* as run.c's main loop: the status changes only once it acts */
	CHECK(raw__connect(&r, h.srv.path) == 0);
	o = raw__read(&r, T_MS, NULL);
	json_object_put(o);
	raw__sendf(&r, "{\"execute\": \"stop\", \"id\": 1}\n{\"execute\": \"defrag\", \"id\": 2}\n"
		   "{\"execute\": \"set-defrag-policy\", \"arguments\": {\"auto\": true}, \"id\": 3}\n");
	o = raw__reply(&r, T_MS);
	CHECKF(o && jpath_int(o, "id") == 1 && jhas(o, "return"), "%s",
	       o ? json_object_to_json_string(o) : "no reply");
	json_object_put(o);
	o = raw__reply(&r, T_MS);
	CHECK_ERROR(o, "DeviceNotActive", "shutting down");
	CHECK(jpath_int(o, "id") == 2);
	json_object_put(o);
	o = raw__reply(&r, T_MS);
	CHECK_ERROR(o, "DeviceNotActive", "shutting down");
	json_object_put(o);
	CHECK(harness__wait_destroyed(&h, T_MS));
	CHECK(!defrag_job__running(&h.host.job));
	CHECK(h.host.job.info.id == 0);   /* no job ever started */
	raw__close(&r);
	harness__fini(&h);
	printf("ok defrag and defragd refused once stop was accepted\n");
}

/* Item 12: an existing runtime directory must be private (0700, ours). */
static void test_runtime_dir_mode(void)
{
	struct harness h;
	struct control_config cfg;
	char err[512];
	int r;

	harness__init(&h, "mode", &(struct harness_opts){ .no_server = true });
	CHECK(mkdir(h.dir, 0700) == 0);
	CHECK(chmod(h.dir, 0777) == 0);
	control_config__init(&cfg);
	cfg.name = "mode";
	r = harness__start_server(&h, &cfg, err, sizeof(err));
	CHECKF(r == -EPERM && strstr(err, "mode 0777") && strstr(err, "chmod 700"), "%d %s", r, err);
	CHECK(chmod(h.dir, 0750) == 0);
	r = harness__start_server(&h, &cfg, err, sizeof(err));
	CHECKF(r == -EPERM && strstr(err, "mode 0750"), "%d %s", r, err);
	if (geteuid() == 0) {
		CHECK(chmod(h.dir, 0700) == 0 && chown(h.dir, 4242, 4242) == 0);
		r = harness__start_server(&h, &cfg, err, sizeof(err));
		CHECKF(r == -EPERM && strstr(err, "owner uid 4242"), "%d %s", r, err);
		CHECK(chown(h.dir, 0, 0) == 0);
	}
	CHECK(chmod(h.dir, 0700) == 0);
	r = harness__start_server(&h, &cfg, err, sizeof(err));
	CHECKF(r == 0, "%s", err);
	h.srv_live = true;
	harness__fini(&h);
	printf("ok runtime directory must be 0700 and ours\n");
}

/* Item 4: names longer than CONTROL_NAME_MAX are refused, never cut (cut names collide). */
static void test_long_names(void)
{
	struct harness h;
	struct control_config cfg;
	char name[CONTROL_NAME_MAX + 2], path[256], err[512];
	int r;

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	harness__init(&h, "long", &(struct harness_opts){ .no_server = true });
	control_config__init(&cfg);
	cfg.name = name;
	r = harness__start_server(&h, &cfg, err, sizeof(err));
	CHECKF(r == -ENAMETOOLONG && strstr(err, "at most 64"), "%d %s", r, err);
	r = control__socket_path(name, path, sizeof(path), err, sizeof(err));
	CHECKF(r == -ENAMETOOLONG && strstr(err, "65 characters"), "%d %s", r, err);
	/* exactly the limit is fine */
	name[CONTROL_NAME_MAX] = '\0';
	r = harness__start_server(&h, &cfg, err, sizeof(err));
	CHECKF(r == 0, "%s", err);
	h.srv_live = true;
	CHECK(!strcmp(h.srv.name, name));
	harness__fini(&h);
	printf("ok names over %d characters refused, not cut\n", CONTROL_NAME_MAX);
}

/* Item 11: defrag on a pool without host huge pages says why instead of "failed 32". */
static void test_no_huge_pages(void)
{
	struct harness h;
	struct raw r;
	struct json_object *o, *ev;
	uint64_t job;

	harness__init(&h, "nohuge", &(struct harness_opts){ .pool_path = "/dev/shm" });
	if (h.mm.pool.backing != POOL_BACKING_4K) {
		printf("ok (skipped: /dev/shm gives huge pages here)\n");
		harness__fini(&h);
		return;
	}
	CHECK(raw__connect(&r, h.srv.path) == 0);
	o = raw__read(&r, T_MS, NULL);
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"defrag\"}");
	CHECK_ERROR(o, "GenericError", "no host huge pages");
	CHECK(strstr(jpath_str(o, "error.desc"), "huge=") != NULL);   /* the pool's own diagnosis */
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"defrag\", \"arguments\": {\"mode\": \"collapse\"}}");
	CHECK_ERROR(o, "GenericError", "mode 'collapse' needs them");
	json_object_put(o);
	/* compaction of free memory still works */
	o = raw__cmd(&r, "{\"execute\": \"defrag\", \"arguments\": {\"mode\": \"compact\"}}");
	CHECKF(o && jhas(o, "return.job-id"), "%s", o ? json_object_to_json_string(o) : "no reply");
	job = (uint64_t)jpath_int(o, "return.job-id");
	json_object_put(o);
	ev = raw__wait_event(&r, "DEFRAG_COMPLETED", job, 60000);
	CHECK(ev && !strcmp(jpath_str(ev, "data.state"), "done"));
	json_object_put(ev);
	raw__close(&r);
	harness__fini(&h);
	printf("ok defrag on a 4 KiB pool refused with the reason; compact still runs\n");
}


/* Item 10: progress in one unit (guest regions) for every algorithm, moving with the work. */
struct progress_sample {
	uint64_t done, total, steps;
};

static struct progress_sample samples[1 << 16];
static unsigned nr_samples;

static void progress__sample(struct harness *h)
{
	struct defrag_job_info info;

	defrag_job__snapshot(&h->host.job, &info);
	if (nr_samples < sizeof(samples) / sizeof(samples[0]))
		samples[nr_samples++] = (struct progress_sample){ info.done, info.total, h->pauses };
}

static void progress_case(const char *mode, const char *algo, unsigned phases)
{
	struct harness h;
	struct raw r;
	struct json_object *o, *ev;
	uint64_t job, steps, regions;
	double worst = 0, at = 0;

	harness__init(&h, "progress", NULL);
	regions = h.mm.map.nr_regions;
	nr_samples = 0;
	h.on_pause = progress__sample;
	CHECK(raw__connect(&r, h.srv.path) == 0);
	o = raw__read(&r, T_MS, NULL);
	json_object_put(o);
	o = raw__cmd(&r, "{\"execute\": \"defrag\", \"arguments\": {\"mode\": \"%s\", \"algo\": \"%s\", "
		     "\"max-pause-us\": 50}}", mode, algo);
	CHECKF(o && jhas(o, "return.job-id"), "%s", o ? json_object_to_json_string(o) : "no reply");
	job = (uint64_t)jpath_int(o, "return.job-id");
	json_object_put(o);
	ev = raw__wait_event(&r, "DEFRAG_COMPLETED", job, 120000);
	CHECK(ev && !strcmp(jpath_str(ev, "data.state"), "done"));
	steps = h.pauses;
	/* the completion and every progress event count guest regions, phase after phase */
	CHECKF((uint64_t)jpath_int(ev, "data.total") == phases * regions, "%s/%s: completed %lld/%lld, "
	       "regions %llu x %u phases", mode, algo, (long long)jpath_int(ev, "data.done"),
	       (long long)jpath_int(ev, "data.total"), (unsigned long long)regions, phases);
	json_object_put(ev);
	for (unsigned i = 0, n = raw__count_events(&r, "DEFRAG_PROGRESS", job); i < n; i++) {
		ev = raw__wait_event(&r, "DEFRAG_PROGRESS", job, 0);
		CHECK(ev && (uint64_t)jpath_int(ev, "data.total") == phases * regions);
		json_object_put(ev);
	}
	/* and it moves with the work: done/total against the share of steps taken so far */
	for (unsigned i = 1; i < nr_samples; i++) {
		double frac = samples[i].total ? (double)samples[i].done / (double)samples[i].total : 0;
		double work = (double)samples[i].steps / (double)steps;

		CHECKF(samples[i].done >= samples[i - 1].done || samples[i].total != samples[i - 1].total,
		       "%s/%s: progress went back %llu -> %llu", mode, algo,
		       (unsigned long long)samples[i - 1].done, (unsigned long long)samples[i].done);
		if (work - frac > worst) {
			worst = work - frac;
			at = work;
		}
	}
	printf("  %s/%s: %llu steps, %u samples, progress lags the work by at most %.0f%% (at %.0f%% of the "
	       "steps)\n", mode, algo, (unsigned long long)steps, nr_samples, 100 * worst, 100 * at);
	CHECKF(steps < 8 || worst <= 0.30, "%s/%s: progress %.0f%% behind the work at %.0f%% of the steps",
	       mode, algo, 100 * worst, 100 * at);
	h.on_pause = NULL;
	raw__close(&r);
	harness__fini(&h);
}

static void test_progress_units(void)
{
	progress_case("full", "linux", 2);
	progress_case("full", "planned", 1);
	progress_case("collapse", "linux", 1);
	progress_case("compact", "linux", 1);
	progress_case("compact", "planned", 1);
	printf("ok progress counts guest regions for both algorithms and follows the work\n");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_utf8_and_nul();
	test_defrag_after_stop();
	test_runtime_dir_mode();
	test_long_names();
	test_no_huge_pages();
	test_progress_units();
	printf("all hardening tests passed\n");
	return 0;
}
