/* test_control_e2e.c: issue #5 end to end: real KVM guests driven through `vmcompact list/stat/defrag/stop`, raw QMP over socat, and defragd. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include "vmm/json.h"

#define SKIP 77
#define MAX_BG 8

static const char *vmcompact;
static char tmpdir[] = "/tmp/vmc-e2e.XXXXXX";
static char rundir[sizeof(tmpdir) + 8];
static bool tmpdir_made;
static pid_t bg_pids[MAX_BG];
static int failures, checks;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void msleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static bool check(bool cond, const char *fmt, ...)
{
	va_list ap;

	checks++;
	if (cond)
		return true;
	failures++;
	fprintf(stderr, "  FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return false;
}

/* ------------------------------------------------------------------ */
/* background processes, killed on any exit */

static void bg__add(pid_t pid)
{
	for (int i = 0; i < MAX_BG; i++)
		if (!bg_pids[i]) {
			bg_pids[i] = pid;
			return;
		}
}

static void bg__forget(pid_t pid)
{
	for (int i = 0; i < MAX_BG; i++)
		if (bg_pids[i] == pid)
			bg_pids[i] = 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

static void cleanup(void)
{
	for (int i = 0; i < MAX_BG; i++) {
		if (!bg_pids[i])
			continue;
		kill(bg_pids[i], SIGKILL);
		waitpid(bg_pids[i], NULL, 0);
		bg_pids[i] = 0;
	}
	if (tmpdir_made)
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	tmpdir_made = false;
}

static void on_signal(int sig)
{
	(void)sig;
	cleanup();
	_exit(1);
}

/* Start argv with stdout/stderr to files; the child dies with us (PDEATHSIG). */
static pid_t bg__spawn(const char *const *argv, const char *out_path, const char *err_path)
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0) {
		int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (o < 0 || e < 0)
			_exit(127);
		dup2(o, 1);
		dup2(e, 2);
		execvp(argv[0], (char **)argv);
		_exit(127);
	}
	bg__add(pid);
	return pid;
}

/* Exit code of a background child, -1 if it did not end within timeout (then it is killed). */
static int bg__wait(pid_t pid, double timeout)
{
	double t0 = now_s();
	int status;

	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_s() - t0 > timeout) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			bg__forget(pid);
			return -1;
		}
		msleep(20);
	}
	bg__forget(pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool bg__alive(pid_t pid)
{
	int status;

	return waitpid(pid, &status, WNOHANG) == 0;
}

static char *file__read(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	if (!f)
		return strdup("");
	for (;;) {
		char chunk[65536];
		size_t n = fread(chunk, 1, sizeof(chunk), f);

		if (!n)
			break;
		buf = realloc(buf, len + n + 1);
		memcpy(buf + len, chunk, n);
		len += n;
	}
	fclose(f);
	if (!buf)
		return strdup("");
	buf[len] = 0;
	return buf;
}

/* ------------------------------------------------------------------ */
/* foreground commands with captured output */

struct proc {
	int exit_code;          /* -1: killed (timeout or signal), 127: not found */
	char *out, *err;
	size_t out_len, err_len;
	double secs;
};

static void buf_append(char **buf, size_t *len, const char *data, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = 0;
}

/* Run argv (PATH searched), feeding `input` (may be NULL) on stdin, for at most timeout s. */
static void proc__run(struct proc *p, double timeout, const char *input, const char *const *argv)
{
	int ip[2], op[2], ep[2], status, open_fds = 2;
	size_t in_off = 0, in_len = input ? strlen(input) : 0;
	double t0 = now_s();
	bool killed = false;
	pid_t pid;

	memset(p, 0, sizeof(*p));
	buf_append(&p->out, &p->out_len, "", 0);
	buf_append(&p->err, &p->err_len, "", 0);
	if (pipe(ip) || pipe(op) || pipe(ep)) {
		perror("pipe");
		exit(1);
	}
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(ip[0], 0);
		dup2(op[1], 1);
		dup2(ep[1], 2);
		close(ip[0]); close(ip[1]); close(op[0]); close(op[1]); close(ep[0]); close(ep[1]);
		execvp(argv[0], (char **)argv);
		_exit(127);
	}
	bg__add(pid);
	close(ip[0]);
	close(op[1]);
	close(ep[1]);
	fcntl(ip[1], F_SETFL, O_NONBLOCK);
	if (!in_len) {
		close(ip[1]);
		ip[1] = -1;
	}
	while (open_fds) {
		struct pollfd pfd[3] = { { .fd = op[0], .events = POLLIN }, { .fd = ep[0], .events = POLLIN },
					 { .fd = ip[1], .events = POLLOUT } };
		char buf[65536];

		if (!killed && now_s() - t0 > timeout) {
			kill(pid, SIGKILL);
			killed = true;
		}
		if (poll(pfd, 3, 20) < 0 && errno != EINTR)
			break;
		if (ip[1] >= 0 && (pfd[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = write(ip[1], input + in_off, in_len - in_off);

			if (n > 0)
				in_off += (size_t)n;
			if (n < 0 || in_off == in_len) {
				close(ip[1]);
				ip[1] = -1;
			}
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(pfd[i].fd, buf, sizeof(buf));
			if (n > 0) {
				if (i == 0)
					buf_append(&p->out, &p->out_len, buf, (size_t)n);
				else
					buf_append(&p->err, &p->err_len, buf, (size_t)n);
			} else {
				close(pfd[i].fd);
				if (i == 0) op[0] = -1; else ep[0] = -1;
				open_fds--;
			}
		}
	}
	if (ip[1] >= 0)
		close(ip[1]);
	waitpid(pid, &status, 0);
	bg__forget(pid);
	p->secs = now_s() - t0;
	p->exit_code = !killed && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void proc__free(struct proc *p)
{
	free(p->out);
	free(p->err);
}

/* vmcompact ARGS... (NULL-terminated) */
static void vmc(struct proc *p, double timeout, const char *arg0, ...)
{
	const char *argv[32];
	int argc = 0;
	va_list ap;

	argv[argc++] = vmcompact;
	va_start(ap, arg0);
	for (const char *a = arg0; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	proc__run(p, timeout, NULL, argv);
}

static void proc__dump(const char *what, const struct proc *p)
{
	fprintf(stderr, "  --- %s: exit %d (%.2f s)\n  --- stdout:\n%.3000s\n  --- stderr:\n%.3000s\n",
		what, p->exit_code, p->secs, p->out, p->err);
}

/* ------------------------------------------------------------------ */
/* JSON helpers */

static struct json_object *jget(struct json_object *j, const char *path)
{
	return json_path(j, path);
}

static double jnum(struct json_object *j, const char *path)
{
	return json_path_double(j, path, -1e300);
}

static const char *jstr(struct json_object *j, const char *path)
{
	return json_path_string(j, path, "");
}

/* Every JSON value in text, in order (the QMP stream: greeting, replies, events). */
static int json__split(const char *text, struct json_object **objs, int max)
{
	struct json_tokener *tok = json_tokener_new();
	size_t off = 0, len = strlen(text);
	int n = 0;

	while (off < len && n < max) {
		struct json_object *o;

		while (off < len && (text[off] == ' ' || text[off] == '\n' || text[off] == '\r' || text[off] == '\t'))
			off++;
		if (off == len)
			break;
		o = json_tokener_parse_ex(tok, text + off, (int)(len - off));
		if (json_tokener_get_error(tok) != json_tokener_success)
			break;
		off += json_tokener_get_parse_end(tok);
		json_tokener_reset(tok);
		objs[n++] = o;
	}
	json_tokener_free(tok);
	return n;
}

/* ------------------------------------------------------------------ */
/* a minimal QMP client of our own, for polling while a CLI command runs */

static int qmp__connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* One command on a fresh connection; the "return" object or NULL. */
static struct json_object *qmp__execute(const char *path, const char *command)
{
	struct json_tokener *tok;
	struct json_object *ret = NULL;
	char req[256], buf[65536];
	double t0 = now_s();
	int fd = qmp__connect(path);

	if (fd < 0)
		return NULL;
	snprintf(req, sizeof(req), "{\"execute\": \"%s\", \"id\": \"poll\"}\n", command);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return NULL;
	}
	tok = json_tokener_new();
	while (!ret && now_s() - t0 < 10) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		size_t off = 0;

		if (poll(&pfd, 1, 200) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		while (off < (size_t)n && !ret) {
			struct json_object *o = json_tokener_parse_ex(tok, buf + off, (int)((size_t)n - off));
			enum json_tokener_error e = json_tokener_get_error(tok);

			if (e == json_tokener_continue)
				break;
			if (e != json_tokener_success) {
				off = (size_t)n;
				break;
			}
			off += json_tokener_get_parse_end(tok);
			json_tokener_reset(tok);
			if (!strcmp(jstr(o, "id"), "poll") && jget(o, "return"))
				ret = json_object_get(jget(o, "return"));
			json_object_put(o);
			while (off < (size_t)n && (buf[off] == '\n' || buf[off] == ' ' || buf[off] == '\r'))
				off++;
		}
	}
	json_tokener_free(tok);
	close(fd);
	return ret;
}

/* ------------------------------------------------------------------ */
/* the VMs under test */

struct vm {
	const char *name;
	char sock[256], out[256], err[256];
	pid_t pid;
};

static bool vm__start(struct vm *vm, const char *name, const char *const *extra)
{
	const char *argv[40];
	int argc = 0;
	double t0 = now_s();

	vm->name = name;
	snprintf(vm->sock, sizeof(vm->sock), "%s/%s.sock", rundir, name);
	snprintf(vm->out, sizeof(vm->out), "%s/%s.out", tmpdir, name);
	snprintf(vm->err, sizeof(vm->err), "%s/%s.err", tmpdir, name);
	argv[argc++] = vmcompact;
	argv[argc++] = "run";
	argv[argc++] = "--name";
	argv[argc++] = name;
	for (int i = 0; extra[i] && argc < 39; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;
	vm->pid = bg__spawn(argv, vm->out, vm->err);
	/* The socket is up once a connection is accepted. */
	while (now_s() - t0 < 20) {
		int fd = qmp__connect(vm->sock);

		if (fd >= 0) {
			close(fd);
			printf("     %s: control socket up after %.2f s\n", name, now_s() - t0);
			return true;
		}
		if (!bg__alive(vm->pid)) {
			char *e = file__read(vm->err);

			bg__forget(vm->pid);
			check(false, "%s: vmcompact run ended before its socket appeared:\n%.3000s", name, e);
			free(e);
			vm->pid = 0;
			return false;
		}
		msleep(20);
	}
	check(false, "%s: no control socket %s after 20 s", name, vm->sock);
	return false;
}

/* `stop NAME`, then the VM's exit status and its --json result (NULL if none). */
static struct json_object *vm__stop(struct vm *vm, int *exit_code)
{
	struct proc p;
	char *out;
	struct json_object *j;

	vmc(&p, 30, "stop", vm->name, NULL);
	if (!check(p.exit_code == 0, "stop %s: exit %d", vm->name, p.exit_code))
		proc__dump("stop", &p);
	proc__free(&p);
	*exit_code = bg__wait(vm->pid, 20);
	vm->pid = 0;
	out = file__read(vm->out);
	j = json_tokener_parse(out);
	if (!j) {
		char *e = file__read(vm->err);

		fprintf(stderr, "  --- %s stdout:\n%.3000s\n  --- stderr:\n%.3000s\n", vm->name, out, e);
		free(e);
	}
	free(out);
	return j;
}

static void vm__check_result(struct vm *vm, struct json_object *j, int exit_code)
{
	check(exit_code == 0, "%s: vmcompact run exited %d, want 0", vm->name, exit_code);
	if (!check(j != NULL, "%s: no JSON result", vm->name))
		return;
	check(jnum(j, "totals.verify_errors") == 0, "%s: totals.verify_errors %g", vm->name,
	      jnum(j, "totals.verify_errors"));
	check(jnum(j, "totals.verify_stale_words") == 0, "%s: totals.verify_stale_words %g", vm->name,
	      jnum(j, "totals.verify_stale_words"));
	check(jnum(j, "totals.min_passes") > 0, "%s: totals.min_passes %g", vm->name,
	      jnum(j, "totals.min_passes"));
	check(!strcmp(jstr(j, "stopped_by"), "stop-request"), "%s: stopped_by '%s', want stop-request",
	      vm->name, jstr(j, "stopped_by"));
	printf("     %s: exit %d, verify_errors %g, min_passes %g, backing_2m %.3f, kvm pages_2m %g, "
	       "stopped_by %s\n", vm->name, exit_code, jnum(j, "totals.verify_errors"),
	       jnum(j, "totals.min_passes"), jnum(j, "backing_2m"), jnum(j, "kvm.pages_2m"),
	       jstr(j, "stopped_by"));
}

/* `stat NAME --json` (query-memory); NULL on failure. */
static struct json_object *vm__stat_json(const char *name)
{
	struct proc p;
	struct json_object *j;

	vmc(&p, 30, "stat", name, "--json", NULL);
	j = p.exit_code == 0 ? json_tokener_parse(p.out) : NULL;
	if (!j)
		proc__dump("stat --json", &p);
	proc__free(&p);
	return j;
}

/* ------------------------------------------------------------------ */

/* b: stat (text) and list show the VM. */
static void test_stat_list(struct vm *vm)
{
	struct proc p;

	printf("b: stat %s (text), list\n", vm->name);
	vmc(&p, 30, "stat", vm->name, NULL);
	if (!check(p.exit_code == 0 && strstr(p.out, "buddyinfo:") && strstr(p.out, "pagetypeinfo:") &&
		   strstr(p.out, "Node 0, zone") && strstr(p.out, "extfrag_index:") &&
		   strstr(p.out, "compact_stall") && strstr(p.out, "backing_2m") &&
		   strstr(p.out, "kvm pages_2m"), "stat %s: exit %d or not /proc-like", vm->name, p.exit_code))
		proc__dump("stat", &p);
	proc__free(&p);

	vmc(&p, 30, "list", NULL);
	{
		char needle[128];
		const char *line;

		snprintf(needle, sizeof(needle), "\n%s ", vm->name);
		line = strstr(p.out, needle);
		if (!check(p.exit_code == 0 && strstr(p.out, "NAME") && line && strstr(line, "running"),
			   "list: exit %d, no running '%s'", p.exit_code, vm->name))
			proc__dump("list", &p);
	}
	proc__free(&p);
}

/* e: no such VM, a stale socket. */
static void test_errors(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char stale[sizeof(sa.sun_path)];
	struct proc p;
	int fd;

	printf("e: stat nosuchvm -> 3, stale socket -> 4\n");
	vmc(&p, 30, "stat", "nosuchvm", NULL);
	if (!check(p.exit_code == 3 && strstr(p.err, "no VM named 'nosuchvm'"),
		   "stat nosuchvm: exit %d (want 3) or no clear message", p.exit_code))
		proc__dump("stat nosuchvm", &p);
	proc__free(&p);

	/* A socket bound by a process that is gone (never listened): connect is refused. */
	snprintf(stale, sizeof(stale), "%s/stale.sock", rundir);
	memcpy(sa.sun_path, stale, sizeof(stale));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (!check(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %s: %s", stale,
		   strerror(errno)))
		return;
	close(fd);
	vmc(&p, 30, "stat", "stale", NULL);
	if (!check(p.exit_code == 4 && strstr(p.err, "stale socket"), "stat stale: exit %d (want 4)",
		   p.exit_code))
		proc__dump("stat stale", &p);
	proc__free(&p);
	vmc(&p, 30, "list", NULL);
	if (!check(p.exit_code == 0 && strstr(p.out, "stale"), "list with a stale socket: exit %d",
		   p.exit_code))
		proc__dump("list", &p);
	proc__free(&p);
	unlink(stale);
}

/* c + e: defrag --wait (rate-limited so it lasts), a second defrag meanwhile is refused. */
static void test_defrag_wait(struct vm *vm)
{
	const char *argv[] = { vmcompact, "defrag", vm->name, "--wait", "--max-mbps", "100", NULL };
	char out[256], err[256];
	struct json_object *st;
	bool running = false;
	double t0 = now_s();
	struct proc p;
	pid_t pid;
	int rc;

	printf("c: defrag %s --wait; e: a second defrag while it runs\n", vm->name);
	snprintf(out, sizeof(out), "%s/defrag.out", tmpdir);
	snprintf(err, sizeof(err), "%s/defrag.err", tmpdir);
	pid = bg__spawn(argv, out, err);
	while (!running && now_s() - t0 < 10 && bg__alive(pid)) {
		struct json_object *q = qmp__execute(vm->sock, "query-defrag");

		running = q && !strcmp(jstr(q, "state"), "running");
		json_object_put(q);
		if (!running)
			msleep(10);
	}
	if (check(running, "the defrag job was never seen running")) {
		vmc(&p, 30, "defrag", vm->name, NULL);
		if (!check(p.exit_code == 1 && strstr(p.err, "already running"),
			   "defrag while one runs: exit %d, want 1 and 'already running'", p.exit_code))
			proc__dump("second defrag", &p);
		else
			printf("     refused: %s", p.err);
		proc__free(&p);
	}
	rc = bg__wait(pid, 60);
	{
		char *o = file__read(out), *e = file__read(err);

		if (!check(rc == 0, "defrag --wait: exit %d, want 0", rc))
			fprintf(stderr, "  --- stdout:\n%.3000s\n  --- stderr:\n%.3000s\n", o, e);
		else
			printf("     defrag --wait: exit 0 after %.2f s\n%s", now_s() - t0, o);
		free(o);
		free(e);
	}

	st = vm__stat_json(vm->name);
	if (check(st != NULL, "stat --json failed")) {
		double b = jnum(st, "backing_2m"), a = jnum(st, "backing_2m_achievable");
		double of = jnum(st, "backing_2m_of_achievable");

		check(of >= 0.99, "backing_2m_of_achievable %.4f < 0.99", of);
		check(a > 0 && b >= 0.99 * a, "backing_2m %.4f < 0.99 x achievable %.4f", b, a);
		printf("     stat --json: backing_2m %.4f, achievable %.4f, of achievable %.4f, kvm pages_2m %g\n",
		       b, a, of, jnum(st, "kvm.pages_2m"));
		json_object_put(st);
	}
}

/* d: raw QMP through socat, good and bad requests; the VM stays up. */
static void test_socat(struct vm *vm)
{
	static const char input[] =
		"{\"execute\": \"query-status\", \"id\": \"s1\"}\n"
		"{\"execute\": \"query-memory\", \"id\": \"m1\"}\n"
		"{\"execute\": \"defrag\", \"arguments\": {\"mode\": \"full\"}, \"id\": \"d1\"}\n"
		"{\"execute\": \"query-defrag\", \"id\": \"q1\"}\n"
		"{\"execute\" \"query-status\"}\n"
		"{\"execute\": \"no-such-command\", \"id\": \"u1\"}\n"
		"{\"execute\": \"defrag\", \"arguments\": {\"max-pause-us\": \"fast\"}, \"id\": \"w1\"}\n"
		"{\"execute\": \"query-status\", \"id\": \"s2\"}\n";
	/* What each reply must be, in request order: id ("" = none), ok, error class. */
	static const struct { const char *id; bool ok; const char *cls; } want[] = {
		{ "s1", true, NULL }, { "m1", true, NULL }, { "d1", true, NULL }, { "q1", true, NULL },
		{ "", false, "GenericError" }, { "u1", false, "CommandNotFound" },
		{ "w1", false, "GenericError" }, { "s2", true, NULL },
	};
	const size_t nr_want = sizeof(want) / sizeof(want[0]);
	struct json_object *objs[256], *replies[16];
	char addr[300];
	const char *argv[] = { "socat", "-t", "5", "-", addr, NULL };
	struct proc p;
	size_t nr = 0;
	int n;

	printf("d: raw QMP over socat\n");
	snprintf(addr, sizeof(addr), "UNIX-CONNECT:%s", vm->sock);
	proc__run(&p, 30, input, argv);
	if (p.exit_code == 127) {
		/* Under VMC_REQUIRE_KVM every sub-test must run: a skip there is a failure. */
		check(!getenv("VMC_REQUIRE_KVM"), "socat is not installed (scripts/setup.sh installs it)");
		printf("     SKIP sub-test d: socat is not installed (scripts/setup.sh installs it)\n");
		proc__free(&p);
		return;
	}
	if (!check(p.exit_code == 0, "socat: exit %d", p.exit_code))
		proc__dump("socat", &p);
	n = json__split(p.out, objs, 256);
	check(n > 0 && jget(objs[0], "QMP") != NULL, "socat: no QMP greeting first");
	for (int i = 0; i < n; i++)
		if (!jget(objs[i], "QMP") && !jget(objs[i], "event") && nr < 16)
			replies[nr++] = objs[i];
	if (!check(nr == nr_want, "socat: %zu replies, want %zu", nr, nr_want))
		proc__dump("socat", &p);
	for (size_t i = 0; i < nr && i < nr_want; i++) {
		struct json_object *r = replies[i];
		const char *id = jstr(r, "id");

		check(!strcmp(id, want[i].id), "reply %zu: id '%s', want '%s'", i, id, want[i].id);
		if (want[i].ok) {
			check(jget(r, "return") != NULL, "reply %zu (%s): no return: %s", i, want[i].id,
			      json_object_to_json_string(r));
		} else {
			check(jget(r, "error") && !strcmp(jstr(r, "error.class"), want[i].cls) &&
			      jstr(r, "error.desc")[0], "reply %zu (%s): want error %s: %s", i, want[i].id,
			      want[i].cls, json_object_to_json_string(r));
			printf("     error reply: %s\n", json_object_to_json_string(r));
		}
	}
	if (nr >= 8) {
		check(!strcmp(jstr(replies[0], "return.status"), "running"), "query-status s1: not running");
		check(jnum(replies[1], "return.backing_2m") >= 0, "query-memory: no backing_2m");
		check(jnum(replies[2], "return.job-id") > 0, "defrag: no job-id");
		check(jstr(replies[3], "return.state")[0] != 0, "query-defrag: no state");
		check(!strcmp(jstr(replies[7], "return.status"), "running"),
		      "query-status after the bad requests: '%s', want running", jstr(replies[7], "return.status"));
	}
	for (int i = 0; i < n; i++)
		json_object_put(objs[i]);
	proc__free(&p);
	/* Still up for a fresh client too. */
	{
		struct json_object *q = qmp__execute(vm->sock, "query-status");

		check(q && !strcmp(jstr(q, "status"), "running"), "VM not running after the socat session");
		json_object_put(q);
	}
	check(bg__alive(vm->pid), "the VM process ended during the socat session");
}

/* g: defragd alone brings an aged guest to 2 MiB backing. */
static void test_defragd(void)
{
	static const char *const args[] = { "--mem", "128M", "--cpus", "2", "--age", "0.9",
		"--workload", "verify:forever", "--defrag", "auto", "--proactiveness", "100",
		"--defrag-max-mbps", "64", "--json", NULL };
	struct vm vm;
	struct json_object *j;
	double t0, reached = -1, last = -1;
	int rc;

	printf("g: --defrag auto --proactiveness 100, nobody calls defrag\n");
	if (!vm__start(&vm, "auto1", args))
		return;
	t0 = now_s();
	while (now_s() - t0 < 20) {
		struct json_object *st = vm__stat_json("auto1");

		last = st ? jnum(st, "backing_2m") : -1;
		json_object_put(st);
		if (last >= 0.95) {
			reached = now_s() - t0;
			break;
		}
		msleep(250);
	}
	check(reached >= 0, "defragd: backing_2m %.4f after 20 s, want >= 0.95", last);
	if (reached >= 0)
		printf("     backing_2m %.4f after %.2f s (from the socket being up)\n", last, reached);
	{
		struct json_object *pol = qmp__execute(vm.sock, "query-defrag-policy");

		printf("     defragd: state %s, %g wakeups, %g rounds, %g regions promoted, %g pages copied, "
		       "%g backoffs, interval %g ms, max-mbps %g\n",
		       jstr(pol, "state"), jnum(pol, "counters.wakeups"), jnum(pol, "counters.rounds"),
		       jnum(pol, "counters.regions-promoted"), jnum(pol, "counters.pages-copied"),
		       jnum(pol, "counters.backoffs"), jnum(pol, "interval-ms"), jnum(pol, "max-mbps"));
		check(pol && jnum(pol, "counters.rounds") > 0, "defragd ran no rounds");
		json_object_put(pol);
	}
	j = vm__stop(&vm, &rc);
	vm__check_result(&vm, j, rc);
	json_object_put(j);
}

int main(int argc, char **argv)
{
	static const char *const t1_args[] = { "--mem", "128M", "--cpus", "2", "--age", "0.9",
		"--workload", "verify:forever", "--json", NULL };
	struct sigaction sa = { .sa_handler = on_signal };
	double t0 = now_s();
	struct vm t1;
	struct json_object *j;
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: %s VMCOMPACT\n", argv[0]);
		return 2;
	}
	vmcompact = argv[1];
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("SKIP: /dev/kvm is not usable (%s): this host cannot run KVM guests\n", strerror(errno));
		return getenv("VMC_REQUIRE_KVM") ? 1 : SKIP;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	tmpdir_made = true;
	atexit(cleanup);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	snprintf(rundir, sizeof(rundir), "%s/run", tmpdir);
	setenv("VMCOMPACT_RUNTIME_DIR", rundir, 1);

	printf("a: run --name t1 --mem 128M --cpus 2 --age 0.9 --workload verify:forever --json\n");
	if (vm__start(&t1, "t1", t1_args)) {
		test_stat_list(&t1);
		test_errors();
		test_defrag_wait(&t1);
		test_socat(&t1);
		printf("f: stop t1\n");
		j = vm__stop(&t1, &rc);
		vm__check_result(&t1, j, rc);
		json_object_put(j);
	}
	test_defragd();

	printf("%d/%d checks passed in %.1f s\n", checks - failures, checks, now_s() - t0);
	return failures ? 1 : 0;
}
