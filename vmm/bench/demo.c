/* demo.c: `vmcompact demo`: an aged guest, its fragmentation, live defrag over the control socket, before/after. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "vmm/bench/bench.h"
#include "vmm/control/control.h"
#include "vmm/control/client.h"
#include "vmm/json.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static const char demo__usage[] =
"Usage: vmcompact demo [OPTIONS]\n"
"The main job, in under a minute: launch a guest on an aged pool (vCPU 0 runs GUPS or a pointer\n"
"chase, vCPU 1 the\n"
"verify integrity oracle), show its fragmentation and GUPS, defragment its backing through the\n"
"control socket while it keeps running, and show the same figures after, side by side.\n"
"Exits non-zero if any guest data was lost or a step failed.\n"
"\n"
"Options:\n"
"  --mem SIZE       guest RAM (default 256M: a scattered guest needs one mapping per 4 KiB\n"
"                   page and 256M at --age 0.9 fits the default vm.max_map_count)\n"
"  --age FRACTION   share of 2 MiB regions scattered (default 0.9)\n"
"  --seed N         layout seed (default 7)\n"
"  --algo A         planned (default) or linux\n"
"  --workload W     what vCPU 0 measures: gups (default; random updates, whose memory-level\n"
"                   parallelism hides part of each TLB miss) or chase (dependent random loads:\n"
"                   every TLB miss is paid, what TLB studies measure)\n";

struct demo_opts {
	const char *mem;
	const char *age;
	const char *seed;
	const char *algo;
	const char *workload;      /* gups or chase, on vCPU 0 */
};

static int demo__check(const struct demo_opts *o, int argc, char **argv, char *err, size_t errlen)
{
	uint64_t v;
	double age;
	char *end;

	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	if (util__parse_size(o->mem, &v) || v % VMC_HUGE_SIZE || v < VMC_MIN_RAM || v > VMC_MAX_RAM) {
		snprintf(err, errlen, "--mem '%s': need a size that is a multiple of 2 MiB in 8M..64G", o->mem);
		return -EINVAL;
	}
	age = strtod(o->age, &end);
	if (end == o->age || *end || !(age >= 0.0 && age <= 1.0)) {
		snprintf(err, errlen, "--age '%s': need a fraction in 0..1", o->age);
		return -EINVAL;
	}
	if (util__parse_count(o->seed, &v)) {
		snprintf(err, errlen, "--seed '%s': need an integer", o->seed);
		return -EINVAL;
	}
	if (strcmp(o->algo, "planned") && strcmp(o->algo, "linux")) {
		snprintf(err, errlen, "--algo '%s': need planned or linux", o->algo);
		return -EINVAL;
	}
	if (strcmp(o->workload, "gups") && strcmp(o->workload, "chase")) {
		snprintf(err, errlen, "--workload '%s': need gups or chase", o->workload);
		return -EINVAL;
	}
	return 0;
}

/* What the demo reads off the running VM at one point. */
struct demo_snap {
	struct json_object *mem;   /* query-memory return */
	double rate;               /* vCPU 0's updates (gups) or accesses (chase) per second */
	uint64_t verify_errors;
	uint64_t passes;
};

/* Start `vmcompact run` as a child; its --json result comes back on *out_fd. */
static pid_t demo__spawn(const struct demo_opts *o, const char *name, int *out_fd, char *err, size_t errlen)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int pfd[2];
	pid_t pid;

	if (n <= 0 || pipe2(pfd, O_CLOEXEC)) {
		snprintf(err, errlen, "cannot prepare the guest process: %s", strerror(errno));
		return -1;
	}
	exe[n] = 0;
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		char spec[64];
		char *argv[] = { exe, "run", "--name", (char *)name, "--mem", (char *)o->mem, "--cpus", "2",
				 "--age", (char *)o->age, "--seed", (char *)o->seed,
				 "--workload", spec, "--json", NULL };

		snprintf(spec, sizeof(spec), "%s:forever+verify:forever", o->workload);

		dup2(pfd[1], STDOUT_FILENO);
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the demo */
		execv(exe, argv);
		_exit(127);
	}
	close(pfd[1]);
	*out_fd = pfd[0];
	return pid;
}

static int demo__connect(struct qmp_client *c, const char *name, pid_t child, char *err, size_t errlen)
{
	uint64_t until = util__now_ns() + 60ull * 1000000000ull;

	for (;;) {
		int status;

		if (qmp_client__connect(c, name, 5000, err, errlen) == 0)
			return 0;
		if (waitpid(child, &status, WNOHANG) == child) {
			snprintf(err, errlen, "the guest process exited before its control socket came up "
				 "(status %d); its error is above", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
			return -1;
		}
		if (util__now_ns() > until)
			return -1;
		usleep(50000);
	}
}

static int demo__status(struct qmp_client *c, const char *workload, double *ops, double *secs, uint64_t *errors,
			uint64_t *passes, char *err, size_t errlen)
{
	bool chase = !strcmp(workload, "chase");
	struct json_object *st;

	if (qmp_client__execute(c, "query-status", NULL, &st, err, errlen))
		return -1;
	*ops = json_path_double(st, chase ? "chase_accesses" : "gups_updates", 0.0);
	*secs = json_path_double(st, chase ? "chase_seconds" : "gups_seconds", 0.0);
	*errors = json_path_u64(st, "verify_errors");
	*passes = json_path_u64(st, "min_passes");
	json_object_put(st);
	return 0;
}

/* Read memory stats and measure vCPU 0's rate over window_ms. */
static int demo__snapshot(struct qmp_client *c, const char *workload, unsigned window_ms, struct demo_snap *s,
			  char *err, size_t errlen)
{
	double u0, t0, u1, t1;
	uint64_t e, p;

	if (demo__status(c, workload, &u0, &t0, &e, &p, err, errlen))
		return -1;
	usleep(window_ms * 1000u);
	if (demo__status(c, workload, &u1, &t1, &s->verify_errors, &s->passes, err, errlen))
		return -1;
	s->rate = t1 > t0 ? (u1 - u0) / (t1 - t0) : 0;
	return qmp_client__execute(c, "query-memory", NULL, &s->mem, err, errlen) ? -1 : 0;
}

static void demo__buddyinfo(const char *label, struct json_object *mem)
{
	struct json_object *a = json_path(mem, "buddyinfo");

	printf("  %-8s", label);
	for (size_t i = 0; a && i < json_object_array_length(a); i++)
		printf(" %6lld", (long long)json_object_get_int64(json_object_array_get_idx(a, i)));
	printf("\n");
}

static double demo__index(struct json_object *mem, const char *key, int order)
{
	struct json_object *a = json_path(mem, key);

	return a ? json_object_get_double(json_object_array_get_idx(a, order)) : 0;
}

static void demo__table(const struct demo_snap *b, const struct demo_snap *a, struct json_object *result,
			bool chase)
{
	printf("\n%-40s %14s %14s\n", "", "before", "after");
	printf("%-40s %14.3f %14.3f\n", "backing_2m (regions on host 2M blocks)",
	       json_path_double(b->mem, "backing_2m", 0.0), json_path_double(a->mem, "backing_2m", 0.0));
	printf("%-40s %14.3f %14.3f\n", "  of achievable", json_path_double(b->mem, "backing_2m_of_achievable", 0.0),
	       json_path_double(a->mem, "backing_2m_of_achievable", 0.0));
	printf("%-40s %14llu %14llu\n", "KVM pages_2m", (unsigned long long)json_path_u64(b->mem, "kvm.pages_2m"),
	       (unsigned long long)json_path_u64(a->mem, "kvm.pages_2m"));
	printf("%-40s %14llu %14llu\n", "KVM pages_4k", (unsigned long long)json_path_u64(b->mem, "kvm.pages_4k"),
	       (unsigned long long)json_path_u64(a->mem, "kvm.pages_4k"));
	printf("%-40s %14.3f %14.3f\n", "KVM 2M coverage of mapped guest memory", json_path_double(b->mem, "kvm.coverage_2m", 0.0),
	       json_path_double(a->mem, "kvm.coverage_2m", 0.0));
	printf("%-40s %14.3f %14.3f\n", "extfrag index, order 9", demo__index(b->mem, "extfrag_index", 9),
	       demo__index(a->mem, "extfrag_index", 9));
	printf("%-40s %14.3f %14.3f\n", "unusable index, order 9", demo__index(b->mem, "unusable_index", 9),
	       demo__index(a->mem, "unusable_index", 9));
	printf("%-40s %14llu %14llu\n", "fragmentation score (free memory)",
	       (unsigned long long)json_path_u64(b->mem, "fragmentation_score"),
	       (unsigned long long)json_path_u64(a->mem, "fragmentation_score"));
	printf("%-40s %14llu %14llu\n", "window VMAs", (unsigned long long)json_path_u64(b->mem, "vmas"),
	       (unsigned long long)json_path_u64(a->mem, "vmas"));
	printf("%-40s %14.1f %14.1f\n", chase ? "guest chase, M accesses/s (vCPU 0)" : "guest GUPS, M updates/s (vCPU 0)",
	       b->rate / 1e6, a->rate / 1e6);
	printf("%-40s %14.2f %14.2f\n", chase ? "guest ns per access" : "guest ns per update",
	       b->rate > 0 ? 1e9 / b->rate : 0, a->rate > 0 ? 1e9 / a->rate : 0);
	if (b->rate > 0 && a->rate > 0)
		printf("%-40s %14s %13.2fx\n", chase ? "chase speed-up" : "GUPS speed-up", "", a->rate / b->rate);
	printf("%-40s %14llu %14llu\n", "verify errors so far (vCPU 1)", (unsigned long long)b->verify_errors,
	       (unsigned long long)a->verify_errors);
	printf("%-40s %14llu %14llu\n", "verify passes so far", (unsigned long long)b->passes,
	       (unsigned long long)a->passes);
	if (result) {
		printf("\ndefrag (%s): %.3f s, %llu regions promoted + %llu zero-copy, %llu pages copied "
		       "(%.3f per promoted page),\n  %llu steps, vCPU pause max %.0f us, p99 %.0f us\n",
		       json_object_get_string(json_path(result, "algo")) ? json_object_get_string(json_path(result, "algo")) : "",
		       json_path_double(result, "seconds", 0.0), (unsigned long long)json_path_u64(result, "regions_promoted"),
		       (unsigned long long)json_path_u64(result, "regions_zero_copy"), (unsigned long long)json_path_u64(result, "pages_copied"),
		       json_path_double(result, "copies_per_promoted_page", 0.0), (unsigned long long)json_path_u64(result, "steps"),
		       json_path_double(result, "pause_max_us", 0.0), json_path_double(result, "pause_p99_us", 0.0));
	}
}

/* Trigger defrag and follow its events until it completes. The result object is returned. */
static int demo__defrag(struct qmp_client *c, const char *algo, struct json_object **result, char *err, size_t errlen)
{
	struct json_object *args = json_object_new_object(), *ret, *ev;
	uint64_t id, last_print = 0;

	json_object_object_add(args, "mode", json_object_new_string("full"));
	json_object_object_add(args, "algo", json_object_new_string(algo));
	if (qmp_client__execute(c, "defrag", args, &ret, err, errlen))
		return -1;
	id = json_path_u64(ret, "job-id");
	json_object_put(ret);
	printf("defrag job %llu started through the control socket\n", (unsigned long long)id);
	for (;;) {
		const char *name;
		struct json_object *data;

		if (qmp_client__next_event(c, 120000, &ev, err, errlen))
			return -1;
		name = json_object_get_string(json_path(ev, "event"));
		data = json_path(ev, "data");
		if (!name || json_path_u64(data, "job-id") != id) {
			json_object_put(ev);
			continue;
		}
		if (!strcmp(name, "DEFRAG_PROGRESS")) {
			uint64_t now = util__now_ns();

			if (now - last_print > 300000000ull) {
				printf("  progress %llu / %llu\n", (unsigned long long)json_path_u64(data, "done"),
				       (unsigned long long)json_path_u64(data, "total"));
				last_print = now;
			}
			json_object_put(ev);
			continue;
		}
		if (!strcmp(name, "DEFRAG_COMPLETED") && !strcmp(json_object_get_string(json_path(data, "state")), "done")) {
			*result = json_object_get(json_path(data, "result"));
			json_object_object_add(*result, "algo", json_object_new_string(algo));
			json_object_put(ev);
			return 0;
		}
		snprintf(err, errlen, "defrag job ended with %s: %s", name,
			 json_path(data, "error") ? json_object_get_string(json_path(data, "error")) : "no detail");
		json_object_put(ev);
		return -1;
	}
}

/* The guest's final --json result from the child process. */
static struct json_object *demo__read_result(int fd)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = NULL;
	char buf[8192];
	ssize_t n;

	while (!o && (n = read(fd, buf, sizeof(buf))) > 0)
		o = json_tokener_parse_ex(tok, buf, (int)n);
	json_tokener_free(tok);
	return o;
}

int cmd_demo(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mem", required_argument, NULL, 'm' }, { "age", required_argument, NULL, 'a' },
		{ "seed", required_argument, NULL, 's' }, { "algo", required_argument, NULL, 'g' },
		{ "workload", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	struct demo_opts o = { .mem = "256M", .age = "0.9", .seed = "7", .algo = "planned", .workload = "gups" };
	struct demo_snap before = { 0 }, after = { 0 };
	struct json_object *result = NULL, *final = NULL, *stop_ret = NULL;
	struct qmp_client c = { .fd = -1 };
	char name[64], err[1024] = "";
	int out_fd = -1, status = 0, rc = 1, opt;
	uint64_t t0 = util__now_ns(), verify_errors;
	pid_t child;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'm': o.mem = optarg; break;
		case 'a': o.age = optarg; break;
		case 's': o.seed = optarg; break;
		case 'g': o.algo = optarg; break;
		case 'w': o.workload = optarg; break;
		case 'h': fputs(demo__usage, stdout); return 0;
		case ':':
			fprintf(stderr, "vmcompact demo: option '%s' needs a value\nTry 'vmcompact demo --help'.\n",
				argv[optind - 1]);
			return VMC_EXIT_USAGE;
		default:
			fprintf(stderr, "vmcompact demo: unknown option '%s'\nTry 'vmcompact demo --help'.\n", argv[optind - 1]);
			return VMC_EXIT_USAGE;
		}
	}
	/* everything the guest process would refuse, refused here first: no work starts on bad input */
	if (demo__check(&o, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "vmcompact demo: %s\nTry 'vmcompact demo --help'.\n", err);
		return VMC_EXIT_USAGE;
	}
	snprintf(name, sizeof(name), "demo-%d", (int)getpid());
	printf("== vmcompact demo: %s guest at --age %s --seed %s, vCPU 0 %s, vCPU 1 verify ==\n", o.mem, o.age, o.seed,
	       o.workload);
	child = demo__spawn(&o, name, &out_fd, err, sizeof(err));
	if (child < 0)
		goto fail;
	if (demo__connect(&c, name, child, err, sizeof(err)))
		goto fail_child;
	printf("guest '%s' is up (socket %s); warming up...\n", name, c.path);
	usleep(1500000);
	if (demo__snapshot(&c, o.workload, 2000, &before, err, sizeof(err)))
		goto fail_child;
	printf("\nbuddyinfo (free blocks per order 0..10) before:\n");
	demo__buddyinfo("before", before.mem);
	printf("backing_2m %.3f (achievable %.3f), KVM pages_2m %llu, %s %.1f M/s\n\n",
	       json_path_double(before.mem, "backing_2m", 0.0), json_path_double(before.mem, "backing_2m_achievable", 0.0),
	       (unsigned long long)json_path_u64(before.mem, "kvm.pages_2m"), o.workload, before.rate / 1e6);
	if (demo__defrag(&c, o.algo, &result, err, sizeof(err)))
		goto fail_child;
	usleep(1500000); /* the guest touches its memory again; KVM rebuilds 2 MiB entries */
	if (demo__snapshot(&c, o.workload, 2000, &after, err, sizeof(err)))
		goto fail_child;
	printf("\nbuddyinfo after:\n");
	demo__buddyinfo("before", before.mem);
	demo__buddyinfo("after", after.mem);
	demo__table(&before, &after, result, !strcmp(o.workload, "chase"));

	if (qmp_client__execute(&c, "stop", NULL, &stop_ret, err, sizeof(err))) {
		fprintf(stderr, "vmcompact demo: stop: %s\n", err);
		kill(child, SIGTERM);
	}
	json_object_put(stop_ret);
	qmp_client__close(&c);
	final = demo__read_result(out_fd);
	waitpid(child, &status, 0);
	verify_errors = final ? json_path_u64(final, "totals.verify_errors") : UINT64_MAX;
	printf("\nguest exit status %d, verify errors at exit: %s%llu; demo took %.1f s\n",
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1, final ? "" : "unknown (no result) ",
	       (unsigned long long)(final ? verify_errors : 0), (util__now_ns() - t0) / 1e9);
	rc = WIFEXITED(status) && WEXITSTATUS(status) == 0 && final && verify_errors == 0 ? 0 : 1;
	printf("%s\n", rc ? "DEMO FAILED: guest data lost or the guest did not exit cleanly"
			  : "no guest data lost: every page verified after the moves");
	goto out;

fail_child:
	kill(child, SIGTERM);
	waitpid(child, &status, 0);
fail:
	fprintf(stderr, "vmcompact demo: %s\n", err);
out:
	if (c.fd >= 0)
		qmp_client__close(&c);
	if (out_fd >= 0)
		close(out_fd);
	json_object_put(before.mem);
	json_object_put(after.mem);
	json_object_put(result);
	json_object_put(final);
	return rc;
}
