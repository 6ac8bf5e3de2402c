/* harness.c: the control-plane test rig: fake VM host over a real mm, raw JSON client, output capture. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tests/control/harness.h"

uint64_t h__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void h__sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------------ */
/* fake host */

static int fake__pause(void *ctx)
{
	struct harness *h = ctx;
	int delay = h->pause_delay_us, e = h->pause_error;

	if (e)
		return e;
	while (h->gate_closed) {
		h->at_gate = 1;
		usleep(1000);
	}
	h->at_gate = 0;
	__atomic_add_fetch(&h->pauses, 1, __ATOMIC_RELAXED);
	if (h->on_pause)
		h->on_pause(h);
	if (delay > 0)
		usleep((useconds_t)delay);
	return 0;
}

static void fake__resume(void *ctx)
{
	struct harness *h = ctx;

	__atomic_add_fetch(&h->resumes, 1, __ATOMIC_RELAXED);
}

static const char *fake__status(void *ctx)
{
	struct harness *h = ctx;

	return h->status;
}

/* Fake KVM stats derived from the real layout: 2 MiB entries for regions in order. */
static int fake__kvm_stats(void *ctx, struct kvm_pages *k)
{
	struct harness *h = ctx;
	struct mm_stat st;

	mm__stat(&h->mm, &st);
	k->valid = true;
	k->pages_2m = st.regions_backed_2m;
	k->pages_4k = (st.guest_bytes >> 12) - (uint64_t)st.regions_backed_2m * 512;
	k->pages_1g = 0;
	return 0;
}

static void fake__request_stop(void *ctx)
{
	struct harness *h = ctx;

	pthread_mutex_lock(&h->lock);
	h->stop_requested = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

static void fake__add_status(void *ctx, struct json_object *o)
{
	struct harness *h = ctx;

	json_object_object_add(o, "workload", json_object_new_string("test"));
	json_object_object_add(o, "verify_errors", json_object_new_uint64(h->guest_verify_errors));
	json_object_object_add(o, "min_passes", json_object_new_uint64(3));
	if (h->destroying) {   /* the guest has ended: its final word, as run.c gives it */
		json_object_object_add(o, "exit_status", json_object_new_int(h->guest_exit_status));
		json_object_object_add(o, "forced", json_object_new_boolean(h->guest_forced));
	}
}

/* The VMM's main loop: on stop, tear the control plane down from this thread. */
static void *fake__main(void *arg)
{
	struct harness *h = arg;

	pthread_mutex_lock(&h->lock);
	while (!h->stop_requested && !h->quit)
		pthread_cond_wait(&h->cond, &h->lock);
	if (h->stop_requested && !h->quit && h->stop_delay_ms) {
		/* a busy VMM main loop takes a while to act on the request */
		pthread_mutex_unlock(&h->lock);
		h__sleep_ms(h->stop_delay_ms);
		pthread_mutex_lock(&h->lock);
	}
	if (h->stop_requested && !h->quit) {
		snprintf(h->status, sizeof(h->status), "shutdown");
		h->destroying = true;
		pthread_mutex_unlock(&h->lock);
		vmm_host__cancel_defrag(&h->host);
		control__destroy(&h->srv, "host-qmp-stop");
		pthread_mutex_lock(&h->lock);
		h->srv_live = false;
		h->destroyed = true;
		pthread_cond_broadcast(&h->cond);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

bool harness__wait_destroyed(struct harness *h, unsigned timeout_ms)
{
	uint64_t end = h__now_ms() + timeout_ms;
	bool done;

	pthread_mutex_lock(&h->lock);
	while (!h->destroyed && h__now_ms() < end) {
		pthread_mutex_unlock(&h->lock);
		h__sleep_ms(5);
		pthread_mutex_lock(&h->lock);
	}
	done = h->destroyed;
	pthread_mutex_unlock(&h->lock);
	return done;
}

int harness__start_server(struct harness *h, const struct control_config *cfg, char *err, size_t len)
{
	return control__start(&h->srv, &h->host, cfg, err, len);
}

void harness__init(struct harness *h, const char *name, const struct harness_opts *o)
{
	struct harness_opts def = { 0 };
	struct mm_config mc = { 0 };
	struct aging_config ac = AGING_DEFAULTS;
	struct control_config cfg;
	char err[512];
	int r;

	if (!o)
		o = &def;
	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", name);
	snprintf(h->status, sizeof(h->status), "running");
	snprintf(h->dir, sizeof(h->dir), "/tmp/vmc-control-test.XXXXXX");
	CHECK(mkdtemp(h->dir));
	/* a subdirectory, so control__start has to create it (0700) */
	strncat(h->dir, "/run", sizeof(h->dir) - strlen(h->dir) - 1);
	setenv(CONTROL_RUNTIME_DIR_ENV, h->dir, 1);

	mc.guest_bytes = (o->guest_mb ? o->guest_mb : 64) << 20;
	mc.slack_bytes = 32 << 20;
	mc.prefault = true;
	mc.pool_path = o->pool_path;
	ac.age = o->age != 0 ? o->age : 1.0;
	if (o->age < 0)
		ac.age = 0;
	ac.seed = o->seed ? o->seed : 7;
	mc.aging = ac;
	r = mm__create(&h->mm, &mc, err, sizeof(err));
	CHECKF(r == 0, "mm__create: %s", err);
	h->mm_live = true;

	h->ops.pause = fake__pause;
	h->ops.resume = fake__resume;
	h->ops.ctx = h;
	h->host.ctx = h;
	h->host.name = NULL;
	h->host.mm = &h->mm;
	h->host.step_ops = &h->ops;
	h->host.nr_vcpus = 1;
	h->host.status = fake__status;
	h->host.kvm_stats = fake__kvm_stats;
	h->host.request_stop = fake__request_stop;
	h->host.add_status = fake__add_status;

	r = vmm_host__start_defrag(&h->host, o->policy, err, sizeof(err));
	CHECKF(r == 0, "vmm_host__start_defrag: %s", err);
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	CHECK(pthread_create(&h->main_thread, NULL, fake__main, h) == 0);

	if (o->no_server)
		return;
	if (o->cfg) {
		cfg = *o->cfg;
	} else {
		control_config__init(&cfg);
		cfg.name = h->name;
	}
	r = harness__start_server(h, &cfg, err, sizeof(err));
	CHECKF(r == 0, "control__start: %s", err);
	h->srv_live = true;
}

static void rm_rf(const char *dir)
{
	char path[PATH_MAX + 256];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d) {
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			if (de->d_type == DT_DIR)
				rm_rf(path);
			else
				unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
}

void harness__fini(struct harness *h)
{
	char *slash;

	pthread_mutex_lock(&h->lock);
	h->quit = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->main_thread, NULL);
	vmm_host__cancel_defrag(&h->host);
	if (h->srv_live)
		control__destroy(&h->srv, NULL);
	h->srv_live = false;
	vmm_host__stop_defrag(&h->host);
	CHECKF(h->pauses == h->resumes, "vCPU pauses %llu != resumes %llu",
	       (unsigned long long)h->pauses, (unsigned long long)h->resumes);
	if (h->mm_live)
		mm__destroy(&h->mm);
	h->mm_live = false;
	rm_rf(h->dir);
	slash = strrchr(h->dir, '/');
	if (slash) {
		*slash = '\0';
		rmdir(h->dir);
	}
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
}

void harness__stat(struct harness *h, struct mm_stat *st)
{
	mm__stat(&h->mm, st);
}

bool harness__thp(struct harness *h)
{
	return h->mm.pool.backing != POOL_BACKING_4K && h->mm.pool.nr_huge_blocks > 0;
}

/* ------------------------------------------------------------------ */
/* raw client */

int raw__connect(struct raw *r, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(r, 0, sizeof(*r));
	r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(r->fd >= 0);
	CHECK(json_stream__init(&r->in, r->fd) == 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;

		raw__close(r);
		return e;
	}
	return 0;
}

void raw__close(struct raw *r)
{
	unsigned i;

	for (i = 0; i < r->nr_events; i++)
		json_object_put(r->events[i]);
	r->nr_events = 0;
	json_stream__free(&r->in);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

void raw__send(struct raw *r, const char *text, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w = send(r->fd, text + off, len - off, MSG_NOSIGNAL);

		CHECKF(w > 0, "send: %s", strerror(errno));
		off += (size_t)w;
	}
}

void raw__sendf(struct raw *r, const char *fmt, ...)
{
	char *text;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	CHECK(n >= 0);
	raw__send(r, text, (size_t)n);
	free(text);
}

struct json_object *raw__read(struct raw *r, int timeout_ms, bool *eof)
{
	struct json_object *o = NULL;
	int e = json_stream__next(&r->in, timeout_ms, &o);

	if (eof)
		*eof = e == -ECONNRESET;
	CHECKF(e != -EPROTO, "server sent bad JSON: %s", r->in.error);
	return e ? NULL : o;
}

static void raw__keep_event(struct raw *r, struct json_object *o)
{
	if (r->nr_events == sizeof(r->events) / sizeof(r->events[0])) {
		json_object_put(r->events[0]);
		memmove(r->events, r->events + 1, (r->nr_events - 1) * sizeof(r->events[0]));
		r->nr_events--;
	}
	r->events[r->nr_events++] = o;
}

struct json_object *raw__reply(struct raw *r, int timeout_ms)
{
	uint64_t end = h__now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		uint64_t now = h__now_ms();
		struct json_object *o = raw__read(r, now < end ? (int)(end - now) : 0, NULL);

		if (!o || !jhas(o, "event"))
			return o;
		raw__keep_event(r, o);
	}
}

struct json_object *raw__cmd(struct raw *r, const char *fmt, ...)
{
	char *text;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	CHECK(n >= 0);
	text = realloc(text, (size_t)n + 2);
	CHECK(text);
	text[n++] = '\n';
	raw__send(r, text, (size_t)n);   /* one write: `stop` may close the socket at once */
	free(text);
	return raw__reply(r, 10000);
}

static bool event__matches(struct json_object *ev, const char *name, uint64_t job)
{
	return !strcmp(jpath_str(ev, "event"), name) &&
	       (!job || (uint64_t)jpath_int(ev, "data.job-id") == job);
}

struct json_object *raw__wait_event(struct raw *r, const char *name, uint64_t job, int timeout_ms)
{
	uint64_t end = h__now_ms() + (uint64_t)timeout_ms;
	unsigned i;

	for (i = 0; i < r->nr_events; i++) {
		if (event__matches(r->events[i], name, job)) {
			struct json_object *o = r->events[i];

			memmove(r->events + i, r->events + i + 1,
				(r->nr_events - i - 1) * sizeof(r->events[0]));
			r->nr_events--;
			return o;
		}
	}
	for (;;) {
		uint64_t now = h__now_ms();
		struct json_object *o;

		if (now >= end)
			return NULL;
		o = raw__read(r, (int)(end - now), NULL);
		if (!o)
			return NULL;
		if (jhas(o, "event") && event__matches(o, name, job))
			return o;
		if (jhas(o, "event"))
			raw__keep_event(r, o);
		else
			json_object_put(o);
	}
}

void raw__drain(struct raw *r, int ms)
{
	uint64_t end = h__now_ms() + (uint64_t)ms;

	for (;;) {
		uint64_t now = h__now_ms();
		struct json_object *o;

		if (now >= end)
			return;
		o = raw__read(r, (int)(end - now), NULL);
		if (!o)
			return;
		if (jhas(o, "event"))
			raw__keep_event(r, o);
		else
			json_object_put(o);
	}
}

unsigned raw__count_events(struct raw *r, const char *name, uint64_t job)
{
	unsigned i, n = 0;

	for (i = 0; i < r->nr_events; i++)
		n += event__matches(r->events[i], name, job);
	return n;
}

/* ------------------------------------------------------------------ */
/* JSON helpers */

struct json_object *jpath(struct json_object *o, const char *path)
{
	char key[128];
	const char *p = path;

	while (o && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);

		snprintf(key, sizeof(key), "%.*s", (int)n, p);
		if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, key, &o))
			return NULL;
		p += n + (dot ? 1 : 0);
	}
	return o;
}

int64_t jpath_int(struct json_object *o, const char *path)
{
	struct json_object *v = jpath(o, path);

	CHECKF(v && json_object_is_type(v, json_type_int), "no integer at %s in %s", path,
	       o ? json_object_to_json_string(o) : "(null)");
	return json_object_get_int64(v);
}

const char *jpath_str(struct json_object *o, const char *path)
{
	struct json_object *v = jpath(o, path);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

bool jhas(struct json_object *o, const char *path)
{
	return jpath(o, path) != NULL;
}

void check_error(struct json_object *reply, const char *cls, const char *needle, int line)
{
	const char *txt = reply ? json_object_to_json_string(reply) : "(no reply)";

	if (!reply || !jhas(reply, "error"))
		tu_fail(__FILE__, line, "error reply", "expected %s error, got %s", cls, txt);
	if (strcmp(jpath_str(reply, "error.class"), cls))
		tu_fail(__FILE__, line, "error class", "expected %s, got %s", cls, txt);
	if (needle && !strstr(jpath_str(reply, "error.desc"), needle))
		tu_fail(__FILE__, line, "error desc", "expected '%s' in %s", needle, txt);
}

/* ------------------------------------------------------------------ */
/* output capture */

static char *slurp(int fd)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	ssize_t n;

	CHECK(buf);
	lseek(fd, 0, SEEK_SET);
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 2) {
			buf = realloc(buf, cap *= 2);
			CHECK(buf);
		}
	}
	buf[len] = '\0';
	return buf;
}

int capture(int (*fn)(int, char **), int argc, char **argv, char **out, char **err)
{
	char t1[] = "/tmp/vmc-out.XXXXXX", t2[] = "/tmp/vmc-err.XXXXXX";
	int fo = mkstemp(t1), fe = mkstemp(t2), so, se, rc;

	CHECK(fo >= 0 && fe >= 0);
	unlink(t1);
	unlink(t2);
	fflush(stdout);
	fflush(stderr);
	so = dup(1);
	se = dup(2);
	tu_fail_fd = se;
	dup2(fo, 1);
	dup2(fe, 2);
	rc = fn(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	tu_fail_fd = 2;
	close(so);
	close(se);
	*out = slurp(fo);
	*err = slurp(fe);
	close(fo);
	close(fe);
	return rc;
}
