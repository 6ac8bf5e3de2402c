/* qemu_bench.c: `vmcompact bench qemu-collapse`: the same collapse of 4 KiB-backed RAM chunked vs one process_madvise call over all of it. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vmm/qemu/qemu_cli.h"
#include "vmm/qemu/qemu_target_cli.h"
#include "vmm/util.h"

/*
 * The target is a holder process standing in for a paused QEMU: it maps the
 * RAM 2 MiB-aligned (as QEMU maps anonymous RAM, or a file with align=2M),
 * writes every 4 KiB page and waits. Another process collapses it from
 * outside exactly as `vmcompact defrag --qemu` does.
 */
struct holder {
	pid_t pid;
	int release_fd;          /* closing it lets the holder exit */
	uint64_t start, end;
};

struct bench_opts {
	uint64_t size;
	bool shmem, cold, json;
	uint32_t max_stall_us;
	unsigned rounds, cold_wait_s;
};

static void holder__child(const struct bench_opts *o, int ready_fd, int release_fd)
{
	size_t len = (size_t)o->size;
	char *reserve = mmap(NULL, len + REGION_2M, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *ram = (char *)(((uintptr_t)reserve + REGION_2M - 1) & ~(uintptr_t)(REGION_2M - 1));
	uint64_t range[2];
	int fd = -1;
	char c;

	if (reserve == MAP_FAILED)
		_exit(1);
	if (o->shmem) {
		fd = memfd_create("vmcompact-bench-ram", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
			_exit(1);
		ram = mmap(ram, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	} else {
		ram = mmap(ram, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			   -1, 0);
	}
	if (ram == MAP_FAILED)
		_exit(1);
	for (size_t off = 0; off < len; off += 4096)
		ram[off] = (char)(off >> 12 | 1);
	range[0] = (uint64_t)(uintptr_t)ram;
	range[1] = range[0] + len;
	if (write(ready_fd, range, sizeof(range)) != sizeof(range))
		_exit(1);
	while (read(release_fd, &c, 1) > 0)
		;
	_exit(0);
}

static int holder__start(struct holder *h, const struct bench_opts *o)
{
	int ready[2], release[2];
	ssize_t n;

	if (pipe(ready) || pipe(release))
		return -errno;
	h->pid = fork();
	if (h->pid < 0)
		return -errno;
	if (h->pid == 0) {
		close(ready[0]);
		close(release[1]);
		holder__child(o, ready[1], release[0]);
	}
	close(ready[1]);
	close(release[0]);
	h->release_fd = release[1];
	{
		uint64_t range[2];

		n = read(ready[0], range, sizeof(range));
		h->start = range[0];
		h->end = range[1];
	}
	close(ready[0]);
	return n == (ssize_t)(2 * sizeof(uint64_t)) ? 0 : -EIO;
}

static void holder__stop(struct holder *h)
{
	close(h->release_fd);
	waitpid(h->pid, NULL, 0);
}

/* Allocate and free as many 2 MiB pages as the collapse needs, so that they are at hand. */
static void bench__warm(uint64_t size)
{
	size_t len = (size_t)size + REGION_2M;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	madvise(p, len, MADV_HUGEPAGE);
	for (size_t off = 0; off < len; off += 4096)
		p[off] = 1;
	munmap(p, len);
}

struct bench_run {
	bool single;
	struct collapse_result res;
	double share_before, share_after;
};

static int bench__one(const struct bench_opts *o, struct bench_run *run, char *err, size_t errlen)
{
	struct collapse_job job = { 0 };
	struct collapse_range range;
	struct smaps_cover c;
	struct holder h = { 0 };
	int r = holder__start(&h, o);

	if (r < 0) {
		snprintf(err, errlen, "cannot start the holder process: %s", strerror(-r));
		return r;
	}
	if (o->cold) {
		struct timespec ts = { .tv_sec = o->cold_wait_s };

		nanosleep(&ts, NULL);
	} else {
		bench__warm(o->size);
	}
	range.start = h.start;
	range.end = h.end;
	if (smaps_cover__read(h.pid, h.start, h.end, &c, err, errlen) == 0)
		run->share_before = smaps_cover__share(&c);
	job.pid = h.pid;
	job.ranges = &range;
	job.nr_ranges = 1;
	job.budget.single_call = run->single;
	job.budget.max_stall_us = o->max_stall_us;
	job.budget.retry_failed = true;
	r = collapse__run(&job, &run->res, err, errlen);
	if (r == 0 && smaps_cover__read(h.pid, h.start, h.end, &c, err, errlen) == 0)
		run->share_after = smaps_cover__share(&c);
	holder__stop(&h);
	return r;
}

static void bench__usage(FILE *f)
{
	fprintf(f, "usage: vmcompact bench qemu-collapse [--size SIZE] [--backing shmem|anon]\n"
		"                  [--max-stall-ms N] [--rounds N] [--cold [--cold-wait SECS]] [--json]\n\n"
		"The same host-side collapse of 4 KiB-backed guest RAM done two ways in one run:\n"
		"chunked under a stall budget (vmcompact defrag --qemu) and as ONE\n"
		"process_madvise(MADV_COLLAPSE) call over all of it (KubeVirt's way). The target\n"
		"is a process holding the RAM as a paused QEMU does (memfd shmem or anonymous,\n"
		"2 MiB-aligned, every page written). Before each collapse the free huge pages are\n"
		"made warm (allocated and freed), or with --cold left alone for --cold-wait\n"
		"seconds (5) so that the host can reclaim them. Rounds alternate the order.\n\n"
		"  --size SIZE        RAM to collapse (1G)\n"
		"  --backing B        shmem (memfd, as QEMU's memfd/file backends) or anon (shmem)\n"
		"  --max-stall-ms N   chunked mode's budget for one call (5)\n"
		"  --rounds N         1..20 (1)\n"
		"  --json             machine-readable\n");
}

static int bench__parse(int argc, char **argv, struct bench_opts *o)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "backing", required_argument, NULL, 'b' },
		{ "max-stall-ms", required_argument, NULL, 'm' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "cold", no_argument, NULL, 'c' },
		{ "cold-wait", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	uint64_t v;
	int opt;

	*o = (struct bench_opts){ .size = 1ULL << 30, .shmem = true, .max_stall_us = 5000,
				  .rounds = 1, .cold_wait_s = 5 };
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (util__parse_size(optarg, &o->size) || o->size < REGION_2M ||
			    o->size % REGION_2M || o->size > (64ULL << 30))
				goto bad;
			break;
		case 'b':
			if (strcmp(optarg, "shmem") && strcmp(optarg, "anon"))
				goto bad;
			o->shmem = !strcmp(optarg, "shmem");
			break;
		case 'm':
			if (util__parse_count(optarg, &v) || v < 1 || v > 10000)
				goto bad;
			o->max_stall_us = (uint32_t)v * 1000;
			break;
		case 'r':
			if (util__parse_count(optarg, &v) || v < 1 || v > 20)
				goto bad;
			o->rounds = (unsigned)v;
			break;
		case 'w':
			if (util__parse_count(optarg, &v) || v > 600)
				goto bad;
			o->cold_wait_s = (unsigned)v;
			break;
		case 'c': o->cold = true; break;
		case 'j': o->json = true; break;
		case 'h': bench__usage(stdout); return -1;
		default: bench__usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		bench__usage(stderr);
		return 2;
	}
	return 0;
bad:
	fprintf(stderr, "vmcompact bench qemu-collapse: invalid value '%s' for --%s\n", optarg,
		opt == 's' ? "size" : opt == 'b' ? "backing" : opt == 'm' ? "max-stall-ms" :
		opt == 'r' ? "rounds" : "cold-wait");
	return 2;
}

static struct json_object *bench__run_json(const struct bench_run *run)
{
	struct json_object *o = collapse_result__json(&run->res);

	json_object_object_add(o, "mode", json_object_new_string(run->single ? "single" : "chunked"));
	json_object_object_add(o, "share_2m_before", json_object_new_double(run->share_before));
	json_object_object_add(o, "share_2m_after", json_object_new_double(run->share_after));
	return o;
}

static int dbl__cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double bench__median(const struct bench_run *runs, unsigned n, bool single, bool call_max)
{
	double v[40];
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		if (runs[i].single == single)
			v[k++] = call_max ? runs[i].res.call_max_ms : runs[i].res.seconds;
	qsort(v, k, sizeof(*v), dbl__cmp);
	return k ? (k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2) : 0;
}

static void bench__report(const struct bench_opts *o, const struct bench_run *runs, unsigned n)
{
	double cs = bench__median(runs, n, false, false), ss = bench__median(runs, n, true, false);
	double cm = bench__median(runs, n, false, true), sm = bench__median(runs, n, true, true);
	char b[32];

	if (o->json) {
		struct json_object *root = json_object_new_object(), *arr = json_object_new_array();
		struct json_object *sum = json_object_new_object();

		json_object_object_add(root, "size", json_object_new_uint64(o->size));
		json_object_object_add(root, "backing", json_object_new_string(o->shmem ? "shmem" :
										   "anon"));
		json_object_object_add(root, "huge_pages", json_object_new_string(o->cold ? "cold" :
										      "warm"));
		json_object_object_add(root, "max_stall_ms", json_object_new_double(o->max_stall_us / 1e3));
		for (unsigned i = 0; i < n; i++)
			json_object_array_add(arr, bench__run_json(&runs[i]));
		json_object_object_add(root, "runs", arr);
		json_object_object_add(sum, "chunked_seconds", json_object_new_double(cs));
		json_object_object_add(sum, "single_seconds", json_object_new_double(ss));
		json_object_object_add(sum, "chunked_over_single", json_object_new_double(ss ? cs / ss : 0));
		json_object_object_add(sum, "chunked_call_max_ms", json_object_new_double(cm));
		json_object_object_add(sum, "single_call_max_ms", json_object_new_double(sm));
		json_object_object_add(root, "summary", sum);
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
		json_object_put(root);
		return;
	}
	printf("collapse of %s %s RAM on 4 KiB pages, huge pages %s, chunked budget %.1f ms per call\n",
	       util__human_bytes(o->size, b, sizeof(b)), o->shmem ? "shmem (memfd)" : "anonymous",
	       o->cold ? "cold" : "warm", o->max_stall_us / 1e3);
	printf("%-8s %9s %7s %12s %9s %6s %10s %13s\n", "MODE", "TIME(s)", "CALLS", "LONGEST(ms)",
	       "P99(ms)", "OVER", "COLLAPSED", "2M BEFORE>AFTER");
	for (unsigned i = 0; i < n; i++)
		printf("%-8s %9.3f %7" PRIu64 " %12.2f %9.2f %6" PRIu64 " %6" PRIu64 "/%-4" PRIu64
		       " %6.1f%% > %.1f%%\n", runs[i].single ? "single" : "chunked",
		       runs[i].res.seconds, runs[i].res.calls, runs[i].res.call_max_ms,
		       runs[i].res.call_p99_ms, runs[i].res.calls_over_budget, runs[i].res.collapsed,
		       runs[i].res.regions, 100 * runs[i].share_before, 100 * runs[i].share_after);
	printf("chunked/single time: %.2f (%.3f s vs %.3f s); longest call: chunked %.2f ms, single "
	       "%.2f ms\n", ss ? cs / ss : 0, cs, ss, cm, sm);
}

int cmd_bench_qemu_collapse(int argc, char **argv)
{
	struct bench_run runs[40];
	struct bench_opts o;
	char err[256];
	unsigned n = 0;
	int r = bench__parse(argc, argv, &o);

	if (r)
		return r < 0 ? 0 : r;
	for (unsigned round = 0; round < o.rounds; round++) {
		for (unsigned k = 0; k < 2; k++) {
			struct bench_run *run = &runs[n++];

			memset(run, 0, sizeof(*run));
			run->single = (k == 0) == (round % 2 == 0);
			r = bench__one(&o, run, err, sizeof(err));
			if (r < 0) {
				fprintf(stderr, "vmcompact bench qemu-collapse: %s\n", err);
				return r == -EPERM ? 5 : 1;
			}
			if (!o.json)
				fprintf(stderr, "  %s: %.3f s, longest call %.2f ms\n",
					run->single ? "single" : "chunked", run->res.seconds,
					run->res.call_max_ms);
		}
	}
	bench__report(&o, runs, n);
	return 0;
}
