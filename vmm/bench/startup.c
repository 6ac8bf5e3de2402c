/* bench_startup.c: `vmcompact bench startup`: time from exec of `vmcompact run` to the guest's first hypercall. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <json-c/json.h>
#include "vmm/bench/bench.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define STARTUP_TARGET_MS 50.0

static const char bench_startup__usage[] =
"Usage: vmcompact bench startup [--mem SIZE] [--cpus N] [--runs N] [--agent PATH] [--json]\n"
"Runs `vmcompact run --workload noop --json` N times as child processes and reports the\n"
"time from fork+exec to the guest's first hypercall (spawn_ms; CLOCK_MONOTONIC in both\n"
"processes) and from the child's main() to it (startup_ms), against a 50 ms target.\n"
"  --mem SIZE    guest RAM (default 1G)\n"
"  --cpus N      vCPUs (default 1)\n"
"  --runs N      measured runs (default 10), after one warm-up run\n";

struct startup_sample {
	double spawn_ms, startup_ms, total_ms;
};

/* One child run; 0 on success. */
static int bench_startup__once(const char *mem, const char *cpus, const char *agent,
			       struct startup_sample *s)
{
	char *argv[12];
	int argc = 0, pfd[2], status;
	char buf[65536];
	size_t len = 0;
	uint64_t t0, first;
	struct json_object *j, *v;
	pid_t pid;
	ssize_t n;

	argv[argc++] = "vmcompact";
	argv[argc++] = "run";
	argv[argc++] = "--mem";
	argv[argc++] = (char *)mem;
	argv[argc++] = "--cpus";
	argv[argc++] = (char *)cpus;
	argv[argc++] = "--workload";
	argv[argc++] = "noop";
	argv[argc++] = "--json";
	if (agent) {
		argv[argc++] = "--agent";
		argv[argc++] = (char *)agent;
	}
	argv[argc] = NULL;
	if (pipe(pfd))
		return -errno;
	t0 = util__now_ns();
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		dup2(pfd[1], 1);
		if (devnull >= 0)
			dup2(devnull, 2);  /* guest console; a failed run is reported below */
		close(pfd[0]);
		close(pfd[1]);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(pfd[1]);
	while (len < sizeof(buf) - 1 && (n = read(pfd[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = 0;
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	s->total_ms = (double)(util__now_ns() - t0) / 1e6;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "vmcompact bench startup: child failed (status 0x%x)\n", status);
		return -EIO;
	}
	j = json_tokener_parse(buf);
	if (!j)
		return -EIO;
	if (!json_object_object_get_ex(j, "first_hypercall_monotonic_ns", &v) ||
	    !(first = json_object_get_uint64(v)) || first < t0) {
		json_object_put(j);
		return -EIO;
	}
	s->spawn_ms = (double)(first - t0) / 1e6;
	s->startup_ms = json_object_object_get_ex(j, "startup_ms", &v) ? json_object_get_double(v) : -1;
	json_object_put(j);
	return 0;
}

static int bench_startup__cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void bench_startup__stats(double *v, int n, double *min, double *med, double *max)
{
	qsort(v, (size_t)n, sizeof(*v), bench_startup__cmp);
	*min = v[0];
	*max = v[n - 1];
	*med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct startup_opts {
	const char *mem, *cpus, *agent;   /* passed on to `vmcompact run` as given */
	uint64_t runs;
	bool json;
};

/* 0 parsed, 1 help printed, -EINVAL with a one-line message printed. */
static int startup__parse_opt(struct startup_opts *o, int c, char **argv)
{
	uint64_t v;

	switch (c) {
	case 'm':
		if (util__parse_size(optarg, &v) || v % VMC_HUGE_SIZE || v < VMC_MIN_RAM || v > VMC_MAX_RAM) {
			fprintf(stderr, "vmcompact bench startup: --mem '%s': need a size that is a "
				"multiple of 2 MiB in 8M..64G\n", optarg);
			return -EINVAL;
		}
		o->mem = optarg;
		return 0;
	case 'c':
		if (util__parse_count(optarg, &v) || !v || v > VMC_MAX_VCPUS) {
			fprintf(stderr, "vmcompact bench startup: --cpus '%s': need 1..%d\n", optarg, VMC_MAX_VCPUS);
			return -EINVAL;
		}
		o->cpus = optarg;
		return 0;
	case 'a':
		o->agent = optarg;
		return 0;
	case 'j':
		o->json = true;
		return 0;
	case 'r':
		if (util__parse_count(optarg, &v) || !v || v > 10000) {
			fprintf(stderr, "vmcompact bench startup: --runs '%s': need 1..10000\n", optarg);
			return -EINVAL;
		}
		o->runs = v;
		return 0;
	case 'h':
		fputs(bench_startup__usage, stdout);
		return 1;
	case ':':
		fprintf(stderr, "vmcompact bench startup: option '%s' needs a value\n", argv[optind - 1]);
		return -EINVAL;
	default:
		fprintf(stderr, "vmcompact bench startup: unknown option '%s'\n%s", argv[optind - 1],
			bench_startup__usage);
		return -EINVAL;
	}
}

/* Everything checked before any work: the child runs would refuse these one by one. */
static int startup__parse(int argc, char **argv, struct startup_opts *o)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' }, { "cpus", required_argument, NULL, 'c' },
		{ "runs", required_argument, NULL, 'r' }, { "agent", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t m = 0, n = 1;
	int c, r;

	*o = (struct startup_opts){ .mem = "1G", .cpus = "1", .runs = 10 };
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1)
		if ((r = startup__parse_opt(o, c, argv)))
			return r;
	if (optind < argc) {
		fprintf(stderr, "vmcompact bench startup: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	util__parse_size(o->mem, &m);
	util__parse_count(o->cpus, &n);
	if (m < VMC_GPA_WORKLOAD + n * VMC_HUGE_SIZE) {
		fprintf(stderr, "vmcompact bench startup: --mem %s is too small for %s vCPUs "
			"(need 4 MiB + 2 MiB per vCPU)\n", o->mem, o->cpus);
		return -EINVAL;
	}
	if (o->agent && access(o->agent, R_OK) < 0) {
		fprintf(stderr, "vmcompact bench startup: --agent %s: %s\n", o->agent, strerror(errno));
		return -EINVAL;
	}
	return 0;
}

/* r[k] = min, median, max of spawn, startup and total over the runs. */
static void startup__print(const struct startup_opts *o, double r[3][3])
{
	static const char *const names[3] = { "spawn_ms", "startup_ms", "total_ms" };
	struct json_object *j;

	if (!o->json) {
		printf("vmcompact bench startup: --mem %s --cpus %s, %llu runs (+1 warm-up)\n", o->mem, o->cpus,
		       (unsigned long long)o->runs);
		printf("  exec -> first hypercall (spawn_ms):   min %7.2f  median %7.2f  max %7.2f ms\n",
		       r[0][0], r[0][1], r[0][2]);
		printf("  main() -> first hypercall (startup):  min %7.2f  median %7.2f  max %7.2f ms\n",
		       r[1][0], r[1][1], r[1][2]);
		printf("  whole run incl. teardown:             min %7.2f  median %7.2f  max %7.2f ms\n",
		       r[2][0], r[2][1], r[2][2]);
		printf("  target %.0f ms: %s (median exec -> first hypercall)\n", STARTUP_TARGET_MS,
		       r[0][1] < STARTUP_TARGET_MS ? "met" : "MISSED");
		return;
	}
	j = json_object_new_object();
	json_object_object_add(j, "mem", json_object_new_string(o->mem));
	json_object_object_add(j, "cpus", json_object_new_string(o->cpus));
	json_object_object_add(j, "runs", json_object_new_uint64(o->runs));
	json_object_object_add(j, "target_ms", json_object_new_double(STARTUP_TARGET_MS));
	for (int k = 0; k < 3; k++) {
		struct json_object *m = json_object_new_object();

		json_object_object_add(m, "min", json_object_new_double(r[k][0]));
		json_object_object_add(m, "median", json_object_new_double(r[k][1]));
		json_object_object_add(m, "max", json_object_new_double(r[k][2]));
		json_object_object_add(j, names[k], m);
	}
	json_object_object_add(j, "meets_target", json_object_new_boolean(r[0][1] < STARTUP_TARGET_MS));
	printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
	json_object_put(j);
}

int bench_startup__cmd(int argc, char **argv)
{
	struct startup_opts o;
	double *spawn = NULL, *startup = NULL, *total = NULL, r[3][3];
	int rc = startup__parse(argc, argv, &o);

	if (rc)
		return rc > 0 ? 0 : VMC_EXIT_USAGE;
	spawn = calloc(o.runs, sizeof(double));
	startup = calloc(o.runs, sizeof(double));
	total = calloc(o.runs, sizeof(double));
	if (!spawn || !startup || !total) {
		rc = VMC_EXIT_HOST_ERROR;
		goto out;
	}
	for (uint64_t i = 0; i <= o.runs; i++) {
		struct startup_sample s;

		if (bench_startup__once(o.mem, o.cpus, o.agent, &s)) {
			fprintf(stderr, "vmcompact bench startup: run %llu failed (try: vmcompact run --mem %s --workload noop)\n",
				(unsigned long long)i, o.mem);
			rc = VMC_EXIT_HOST_ERROR;
			goto out;
		}
		if (i == 0)
			continue;  /* warm-up */
		spawn[i - 1] = s.spawn_ms;
		startup[i - 1] = s.startup_ms;
		total[i - 1] = s.total_ms;
	}
	bench_startup__stats(spawn, (int)o.runs, &r[0][0], &r[0][1], &r[0][2]);
	bench_startup__stats(startup, (int)o.runs, &r[1][0], &r[1][1], &r[1][2]);
	bench_startup__stats(total, (int)o.runs, &r[2][0], &r[2][1], &r[2][2]);
	startup__print(&o, r);
out:
	free(spawn);
	free(startup);
	free(total);
	return rc;
}
