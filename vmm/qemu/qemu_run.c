/* qemu_run.c: `vmcompact qemu run`: boot the guest agent under QEMU (PVH) on a chosen RAM backing and report its result, KVM stats and 2 MiB coverage. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vmm/qemu/qemu_cli.h"
#include "vmm/qemu/qemu_target_cli.h"
#include "vmm/util.h"

#define QRUN_SAMPLE_MS 250
#define QRUN_ARGV_MAX 48

enum qrun_backing { QB_MEMFD, QB_ANON_THP, QB_SHMEM_THP, QB_HUGETLBFS, QB_SHMEM, QB_NR };
static const char *const qrun_backing_names[] = { "memfd", "anon-thp", "shmem-thp", "hugetlbfs",
						  "shmem" };

struct qrun_opts {
	uint64_t mem;
	unsigned cpus;
	enum qrun_backing backing;
	const char *workload, *agent, *qemu;
	uint64_t timeout_ms;
	bool json;
};

struct qrun {
	struct qrun_opts o;
	char dir[64];                /* private runtime dir: QMP socket, shmem-thp mount */
	char qmp_path[108], qmp_ext[108], mnt[80], ram_path[PATH_MAX], agent[PATH_MAX], hugetlbfs[PATH_MAX];
	bool mounted;
	char *argv[QRUN_ARGV_MAX];
	char *owned[8];
	unsigned nr_owned;
	pid_t pid;
	int out_fd;
	struct json_object *result;  /* the agent's result line */
	struct qemu_cover cover;     /* last sample while it ran */
	struct qemu_target t;
	bool have_cover, have_target, kvm;
	unsigned samples;
};

static volatile sig_atomic_t qrun_stop;

static void qrun__on_signal(int sig)
{
	qrun_stop = 1;
}

static uint64_t qrun__now_ms(void)
{
	return util__now_ns() / 1000000;
}

static void qrun__usage(FILE *f)
{
	fprintf(f, "usage: vmcompact qemu run [--mem SIZE] [--cpus N] [--backing B] [--workload SPEC]\n"
		"                          [--timeout SECS] [--agent PATH] [--qemu-binary PATH] [--json]\n\n"
		"Boot the built-in guest agent under QEMU (-M microvm, PVH entry; KVM when /dev/kvm\n"
		"exists, else TCG), run the workload, and report the agent's JSON result, the RAM\n"
		"backing, QEMU's KVM stats (query-stats pages_4k/pages_2m) and the RAM's share\n"
		"on 2 MiB host pages from /proc/PID/smaps (sampled while it runs).\n\n"
		"  --mem SIZE          guest RAM, multiple of 2 MiB, 16M..64G (256M)\n"
		"  --cpus N            vCPUs 1..64 (1)\n"
		"  --backing B         memfd (4 KiB shmem pages), anon-thp (QEMU's anonymous RAM,\n"
		"                      THP), shmem-thp (a file on a private huge=always tmpfs,\n"
		"                      align=2M), hugetlbfs (needs reserved 2 MiB pages), shmem\n"
		"                      (4 KiB pages on a private huge=never tmpfs, align=2M: what\n"
		"                      `vmcompact defrag --qemu` can collapse) (anon-thp)\n"
		"  --workload SPEC     the agent's workload, as `vmcompact run` (verify:passes=3)\n"
		"  --timeout SECS      kill QEMU after this long (600)\n"
		"  --agent PATH        the agent ELF (default: next to this binary's build tree)\n"
		"  --qemu-binary PATH  (qemu-system-x86_64)\n"
		"  --json              the report as JSON on stdout, the guest console on stderr\n\n"
		"A second QMP socket is left for other tools (vmcompact stat/defrag --qemu PID).\n"
		"Exit status: the guest's (0 ok, 10 verify found corruption); 1 failure; 2 usage;\n"
		"4 stopped at --timeout or by a signal; 8 QEMU, the agent or the backing unavailable.\n");
}

static int qrun__parse(int argc, char **argv, struct qrun_opts *o)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' }, { "cpus", required_argument, NULL, 'c' },
		{ "backing", required_argument, NULL, 'b' }, { "workload", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' }, { "agent", required_argument, NULL, 'a' },
		{ "qemu-binary", required_argument, NULL, 'q' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' }, { 0 }
	};
	uint64_t v;
	int opt;

	*o = (struct qrun_opts){ .mem = 256ULL << 20, .cpus = 1, .backing = QB_ANON_THP,
				 .workload = "verify:passes=3", .qemu = "qemu-system-x86_64",
				 .timeout_ms = 600000 };
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			if (util__parse_size(optarg, &o->mem) || o->mem % (2ULL << 20) ||
			    o->mem < (16ULL << 20) || o->mem > (64ULL << 30))
				goto bad;
			break;
		case 'c':
			if (util__parse_count(optarg, &v) || v < 1 || v > 64)
				goto bad;
			o->cpus = (unsigned)v;
			break;
		case 'b':
			for (v = 0; v < QB_NR && strcmp(optarg, qrun_backing_names[v]); v++)
				;
			if (v == QB_NR)
				goto bad;
			o->backing = (enum qrun_backing)v;
			break;
		case 'w':
			if (!*optarg || strlen(optarg) > 200 || strpbrk(optarg, "\n\""))
				goto bad;
			o->workload = optarg;
			break;
		case 't':
			if (util__parse_duration_ms(optarg, &o->timeout_ms) || !o->timeout_ms)
				goto bad;
			break;
		case 'a': o->agent = optarg; break;
		case 'q': o->qemu = optarg; break;
		case 'j': o->json = true; break;
		case 'h': qrun__usage(stdout); return -1;
		default: qrun__usage(stderr); return QEMU_EXIT_USAGE;
		}
	}
	if (optind == argc)
		return 0;
	qrun__usage(stderr);
	return QEMU_EXIT_USAGE;
bad:
	fprintf(stderr, "vmcompact qemu run: invalid value '%s' for --%s\n", optarg,
		opt == 'm' ? "mem" : opt == 'c' ? "cpus" : opt == 'b' ? "backing (memfd, anon-thp, "
		"shmem-thp, hugetlbfs, shmem)" : opt == 'w' ? "workload" : "timeout");
	return QEMU_EXIT_USAGE;
}

/* The agent ELF: --agent, $VMCOMPACT_AGENT, or guest-agent/ in this binary's build tree. */
static int qrun__find_agent(struct qrun *q)
{
	static const char *const rel[] = { "/../../guest-agent/vmcompact-agent",
					   "/../guest-agent/vmcompact-agent",
					   "/../lib/vmcompact/vmcompact-agent" };
	const char *env = getenv("VMCOMPACT_AGENT");
	char exe[PATH_MAX];
	ssize_t n;

	if (q->o.agent || env) {
		snprintf(q->agent, sizeof(q->agent), "%s", q->o.agent ? q->o.agent : env);
		if (access(q->agent, R_OK) == 0)
			return 0;
		fprintf(stderr, "vmcompact qemu run: cannot read the agent %s: %s\n", q->agent,
			strerror(errno));
		return -ENOTSUP;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(q->agent, sizeof(q->agent), "%s%s", exe, rel[i]);
			if (access(q->agent, R_OK) == 0)
				return 0;
		}
	}
	fprintf(stderr, "vmcompact qemu run: cannot find the guest agent next to this binary; "
		"pass --agent PATH or set VMCOMPACT_AGENT\n");
	return -ENOTSUP;
}

/* Free 2 MiB hugetlb pages and a hugetlbfs mount; -ENOTSUP with one line otherwise. */
static int qrun__check_hugetlbfs(struct qrun *q)
{
	unsigned long long free_pages = 0, size_kb = 0;
	char line[512], dev[64], dir[PATH_MAX / 2], type[32];
	uint64_t need = q->o.mem >> 21;
	FILE *f = fopen("/proc/meminfo", "re");

	while (f && fgets(line, sizeof(line), f)) {
		sscanf(line, "HugePages_Free: %llu", &free_pages);
		sscanf(line, "Hugepagesize: %llu kB", &size_kb);
	}
	if (f)
		fclose(f);
	if (size_kb != 2048 || free_pages < need) {
		fprintf(stderr, "vmcompact qemu run: --backing hugetlbfs needs %" PRIu64 " free 2 MiB "
			"huge pages, HugePages_Free is %llu (reserve them: sysctl vm.nr_hugepages=%"
			PRIu64 ")\n", need, free_pages, need);
		return -ENOTSUP;
	}
	f = fopen("/proc/mounts", "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %2047s %31s", dev, dir, type) == 3 && !strcmp(type, "hugetlbfs")) {
			snprintf(q->hugetlbfs, sizeof(q->hugetlbfs), "%s", dir);
			break;
		}
	}
	if (f)
		fclose(f);
	if (!q->hugetlbfs[0]) {
		fprintf(stderr, "vmcompact qemu run: --backing hugetlbfs needs a mounted hugetlbfs "
			"(mount -t hugetlbfs none /dev/hugepages)\n");
		return -ENOTSUP;
	}
	return 0;
}

/* The private tmpfs for shmem(-thp); unmounted (lazily) once QEMU has mapped the file. */
static int qrun__mount_tmpfs(struct qrun *q, const char *huge)
{
	char opts[64];

	snprintf(q->mnt, sizeof(q->mnt), "%s/ram", q->dir);
	snprintf(opts, sizeof(opts), "huge=%s,size=%" PRIu64 "k", huge, (q->o.mem >> 10) + 4096);
	if (mkdir(q->mnt, 0700) < 0 || mount("vmcompact-ram", q->mnt, "tmpfs", 0, opts) < 0) {
		fprintf(stderr, "vmcompact qemu run: --backing %s needs a private huge=%s tmpfs: "
			"mount at %s: %s (run as root)\n", qrun_backing_names[q->o.backing], huge,
			q->mnt, strerror(errno));
		return errno == EPERM ? -EACCES : -ENOTSUP;
	}
	q->mounted = true;
	snprintf(q->ram_path, sizeof(q->ram_path), "%s/guest-ram", q->mnt);
	return 0;
}

static char *qrun__own(struct qrun *q, char *s)
{
	if (s && q->nr_owned < sizeof(q->owned) / sizeof(q->owned[0]))
		q->owned[q->nr_owned++] = s;
	return s;
}

static int qrun__build_argv(struct qrun *q)
{
	bool kvm = q->kvm = access("/dev/kvm", R_OK | W_OK) == 0;
	char *backend = NULL;
	unsigned n = 0;
	int r = 0;

	switch (q->o.backing) {
	case QB_MEMFD:
		r = asprintf(&backend, "memory-backend-memfd,id=m0,size=%" PRIu64 ",share=on,"
			     "prealloc=on", q->o.mem);
		break;
	case QB_ANON_THP:
		r = asprintf(&backend, "memory-backend-ram,id=m0,size=%" PRIu64 ",prealloc=on",
			     q->o.mem);
		break;
	case QB_SHMEM_THP:
	case QB_SHMEM:
	case QB_NR:
		r = asprintf(&backend, "memory-backend-file,id=m0,size=%" PRIu64 ",mem-path=%s,"
			     "share=on,align=2M,prealloc=on", q->o.mem, q->ram_path);
		break;
	case QB_HUGETLBFS:
		r = asprintf(&backend, "memory-backend-file,id=m0,size=%" PRIu64 ",mem-path=%s,"
			     "share=on,prealloc=on", q->o.mem, q->hugetlbfs);
		break;
	}
	if (r < 0 || !qrun__own(q, backend))
		return -ENOMEM;
	q->argv[n++] = (char *)q->o.qemu;
	q->argv[n++] = "-M";
	q->argv[n++] = "microvm,memory-backend=m0";
	q->argv[n++] = "-accel";
	q->argv[n++] = kvm ? "kvm" : "tcg";
	q->argv[n++] = "-cpu";
	q->argv[n++] = kvm ? "host" : "max";
	q->argv[n++] = "-smp";
	q->argv[n++] = qrun__own(q, NULL);
	if (asprintf(&q->argv[n - 1], "%u", q->o.cpus) < 0 || !qrun__own(q, q->argv[n - 1]))
		return -ENOMEM;
	q->argv[n++] = "-m";
	q->argv[n++] = qrun__own(q, NULL);
	if (asprintf(&q->argv[n - 1], "%" PRIu64 "M", q->o.mem >> 20) < 0 ||
	    !qrun__own(q, q->argv[n - 1]))
		return -ENOMEM;
	q->argv[n++] = "-object";
	q->argv[n++] = backend;
	q->argv[n++] = "-kernel";
	q->argv[n++] = q->agent;
	q->argv[n++] = "-append";
	q->argv[n++] = (char *)q->o.workload;
	q->argv[n++] = "-device";
	q->argv[n++] = "isa-debug-exit,iobase=0xf4,iosize=4";
	q->argv[n++] = "-nodefaults";
	q->argv[n++] = "-no-user-config";
	q->argv[n++] = "-display";
	q->argv[n++] = "none";
	q->argv[n++] = "-serial";
	q->argv[n++] = "stdio";
	q->argv[n++] = "-qmp";
	q->argv[n++] = qrun__own(q, NULL);
	if (asprintf(&q->argv[n - 1], "unix:%s,server=on,wait=off", q->qmp_path) < 0 ||
	    !qrun__own(q, q->argv[n - 1]))
		return -ENOMEM;
	q->argv[n++] = "-qmp";
	q->argv[n++] = qrun__own(q, NULL);
	if (asprintf(&q->argv[n - 1], "unix:%s,server=on,wait=off", q->qmp_ext) < 0 ||
	    !qrun__own(q, q->argv[n - 1]))
		return -ENOMEM;
	q->argv[n] = NULL;
	return 0;
}

static int qrun__spawn(struct qrun *q)
{
	int out[2];

	if (pipe2(out, O_CLOEXEC) < 0)
		return -errno;
	q->pid = fork();
	if (q->pid < 0)
		return -errno;
	if (q->pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		dup2(open("/dev/null", O_RDONLY), STDIN_FILENO);
		execvp(q->argv[0], q->argv);
		fprintf(stderr, "vmcompact qemu run: cannot run %s: %s\n", q->argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	q->out_fd = out[0];
	return 0;
}

/* One console line: echo it; keep the agent's result line. */
static void qrun__line(struct qrun *q, const char *line)
{
	struct json_object *o, *v;

	fprintf(q->o.json ? stderr : stdout, "%s\n", line);
	if (line[0] != '{')
		return;
	o = json_tokener_parse(line);
	if (o && json_object_object_get_ex(o, "vmcompact_agent", &v) &&
	    !strcmp(json_object_get_string(v), "result")) {
		json_object_put(q->result);
		q->result = o;
		return;
	}
	json_object_put(o);
}

/* Attach to QMP once QEMU listens, then sample coverage and KVM stats. */
static void qrun__sample(struct qrun *q)
{
	struct qemu_cover c;
	char err[512];

	if (!q->have_target) {
		if (access(q->qmp_path, F_OK) < 0 ||
		    qemu_target__open_qmp(&q->t, q->qmp_path, err, sizeof(err)) < 0)
			return;
		if (qemu_target__find_ram(&q->t, err, sizeof(err)) < 0) {
			qemu_target__close(&q->t);
			return;
		}
		q->have_target = true;
		/* QEMU has mapped the file (prealloc=on): nothing is left behind if we die */
		if (q->mounted && umount2(q->mnt, MNT_DETACH) == 0)
			q->mounted = false;
	}
	/* a sample taken while QEMU exits finds no mappings: keep the last full one */
	if (qemu_cover__take(&q->t, &c, err, sizeof(err)) < 0 || !c.ram) {
		qemu_cover__free(&c, q->t.nr_blocks);
		return;
	}
	if (q->have_cover)
		qemu_cover__free(&q->cover, q->t.nr_blocks);
	q->cover = c;
	q->have_cover = true;
	q->samples++;
}

/* Read the console until QEMU exits; returns its wait status, or -ETIMEDOUT after killing it. */
static int qrun__loop(struct qrun *q)
{
	uint64_t deadline = qrun__now_ms() + q->o.timeout_ms, next_sample = 0;
	char buf[8192];
	size_t len = 0;
	bool timed_out = false;
	int status;

	for (;;) {
		struct pollfd p = { .fd = q->out_fd, .events = POLLIN };
		uint64_t now = qrun__now_ms();
		ssize_t n;
		char *nl;

		if (now >= next_sample) {
			qrun__sample(q);
			/* eagerly until QEMU answers: a short workload may end within a second */
			next_sample = now + (q->have_cover ? QRUN_SAMPLE_MS : 20);
		}
		/* --timeout, Ctrl-C or SIGTERM: stop QEMU, then clean up as usual */
		if ((now >= deadline || qrun_stop) && !timed_out) {
			kill(q->pid, SIGTERM);
			timed_out = true;
		}
		if (poll(&p, 1, q->have_cover ? QRUN_SAMPLE_MS : 20) <= 0)
			continue;
		n = read(q->out_fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			*nl = '\0';
			if (nl > buf && nl[-1] == '\r')
				nl[-1] = '\0';
			qrun__line(q, buf);
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len + 1);
		}
		if (len == sizeof(buf) - 1) {
			qrun__line(q, buf);
			len = 0;
		}
	}
	if (len)
		qrun__line(q, buf);
	waitpid(q->pid, &status, 0);
	return timed_out ? -ETIMEDOUT : status;
}

/* isa-debug-exit makes QEMU exit with (value << 1) | 1. */
static int qrun__exit_code(struct qrun *q, int status)
{
	struct json_object *v;

	if (status == -ETIMEDOUT) {
		fprintf(stderr, "vmcompact qemu run: stopped QEMU (%s)\n",
			qrun_stop ? "signal" : "--timeout");
		return 4;
	}
	if (q->result && json_object_object_get_ex(q->result, "exit_status", &v))
		return json_object_get_int(v);
	if (WIFEXITED(status) && (WEXITSTATUS(status) & 1))
		return WEXITSTATUS(status) >> 1;
	fprintf(stderr, "vmcompact qemu run: QEMU ended (%s %d) without the agent's result line\n",
		WIFEXITED(status) ? "exit" : "signal",
		WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? QEMU_EXIT_UNAVAILABLE : 1;
}

static void qrun__report(struct qrun *q, int code)
{
	struct json_object *o = json_object_new_object();
	char b[32];

	json_object_object_add(o, "exit_status", json_object_new_int(code));
	json_object_object_add(o, "backing", json_object_new_string(qrun_backing_names[q->o.backing]));
	json_object_object_add(o, "accel", json_object_new_string(q->kvm ? "kvm" : "tcg"));
	json_object_object_add(o, "mem_bytes", json_object_new_uint64(q->o.mem));
	json_object_object_add(o, "cpus", json_object_new_uint64(q->o.cpus));
	json_object_object_add(o, "qemu_pid", json_object_new_int(q->pid));
	json_object_object_add(o, "guest", q->result ? json_object_get(q->result) : NULL);
	json_object_object_add(o, "coverage_samples", json_object_new_uint64(q->samples));
	if (q->have_cover)
		json_object_object_add(o, "ram", qemu_cover__json(&q->t, &q->cover, false));
	if (q->o.json) {
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		printf("qemu run: %s guest RAM on %s (%s), exit status %d\n",
		       util__human_bytes(q->o.mem, b, sizeof(b)), qrun_backing_names[q->o.backing],
		       q->kvm ? "kvm" : "tcg", code);
		if (q->have_cover)
			qemu_cover__print(&q->t, &q->cover, false, stdout);
		else
			printf("RAM coverage: no sample (QEMU ended before its QMP socket answered)\n");
	}
	json_object_put(o);
}

static void qrun__cleanup(struct qrun *q)
{
	if (q->have_cover)
		qemu_cover__free(&q->cover, q->t.nr_blocks);
	if (q->have_target)
		qemu_target__close(&q->t);
	if (q->out_fd > 0)
		close(q->out_fd);
	if (q->mounted)
		umount2(q->mnt, MNT_DETACH);
	if (q->mnt[0])
		rmdir(q->mnt);
	if (q->qmp_path[0])
		unlink(q->qmp_path);
	if (q->qmp_ext[0])
		unlink(q->qmp_ext);
	if (q->dir[0])
		rmdir(q->dir);
	for (unsigned i = 0; i < q->nr_owned; i++)
		free(q->owned[i]);
	json_object_put(q->result);
}

static int qrun__prepare(struct qrun *q)
{
	int r = qrun__find_agent(q);

	if (r == 0 && q->o.backing == QB_HUGETLBFS)
		r = qrun__check_hugetlbfs(q);
	if (r < 0)
		return r;
	snprintf(q->dir, sizeof(q->dir), "/tmp/vmcompact-qemu.XXXXXX");
	if (!mkdtemp(q->dir)) {
		q->dir[0] = '\0';
		fprintf(stderr, "vmcompact qemu run: mkdtemp: %s\n", strerror(errno));
		return -errno;
	}
	snprintf(q->qmp_path, sizeof(q->qmp_path), "%s/qmp.sock", q->dir);
	snprintf(q->qmp_ext, sizeof(q->qmp_ext), "%s/qmp-tools.sock", q->dir);
	if (q->o.backing == QB_SHMEM_THP || q->o.backing == QB_SHMEM) {
		r = qrun__mount_tmpfs(q, q->o.backing == QB_SHMEM ? "never" : "always");
		if (r < 0)
			return r;
	}
	r = qrun__build_argv(q);
	if (r == 0)
		r = qrun__spawn(q);
	if (r < 0)
		fprintf(stderr, "vmcompact qemu run: cannot start QEMU: %s\n", strerror(-r));
	else
		fprintf(stderr, "vmcompact qemu run: QEMU pid %d, QMP for other tools at %s\n",
			(int)q->pid, q->qmp_ext);
	return r;
}

static int qemu_run(int argc, char **argv)
{
	struct qrun *q = calloc(1, sizeof(*q));
	int r, status, code;

	if (!q)
		return QEMU_EXIT_FAILED;
	q->out_fd = -1;
	r = qrun__parse(argc, argv, &q->o);
	if (r) {
		free(q);
		return r < 0 ? QEMU_EXIT_OK : r;
	}
	r = qrun__prepare(q);
	if (r < 0) {
		code = r == -ENOTSUP ? QEMU_EXIT_UNAVAILABLE : qemu_exit__from_errno(r);
		goto out;
	}
	qrun_stop = 0;
	signal(SIGINT, qrun__on_signal);
	signal(SIGTERM, qrun__on_signal);
	status = qrun__loop(q);
	code = qrun__exit_code(q, status);
	qrun__report(q, code);
out:
	qrun__cleanup(q);
	free(q);
	return code;
}

int cmd_qemu(int argc, char **argv)
{
	static const char usage[] = "usage: vmcompact qemu run [OPTIONS]   boot the agent under QEMU\n"
				    "       vmcompact qemu age TARGET [--share F] [--seed N]   split a guest's 2 MiB pages\n"
				    "(vmcompact qemu run|age --help)\n";

	if (argc >= 2 && !strcmp(argv[1], "run"))
		return qemu_run(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "age"))
		return cmd_qemu_age(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("%s", usage);
		return QEMU_EXIT_OK;
	}
	fprintf(stderr, "%s", usage);
	return QEMU_EXIT_USAGE;
}
