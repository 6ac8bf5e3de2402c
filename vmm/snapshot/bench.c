/* bench.c: `vmcompact bench snapshot`: snapshot write and eager restore vs plain O_DIRECT I/O, pool prefault and file read alone (mm level, no KVM). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "mm/util.h"
#include "vmm/snapshot/cli.h"
#include "vmm/snapshot/snapshot.h"
#include "vmm/util.h"

#define BENCH_MAX_DIRS 4
#define BENCH_MAX_ROUNDS 9

struct bench_opts {
	uint64_t mem;
	double age, touched;
	unsigned depth, rounds;
	const char *dirs[BENCH_MAX_DIRS];
	unsigned nr_dirs;
	bool json;
};

/* One file system's figures. */
struct bench_fs {
	const char *dir;
	char io_note[160];
	uint64_t data_bytes, file_bytes, touched_bytes;
	double write_s, write_mem_s, plain_write_s;
	double restore_read_s, restore_total_s, plain_read_s;
	double prefault_s[2];           /* pool prefault alone, before and after the restore */
	double backing_2m;
};

static double mbps(uint64_t bytes, double s)
{
	return s > 0 ? bytes / s / 1e6 : 0;
}

static int dbl__cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), dbl__cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One file system over the rounds: each time is the median of its rounds (host huge pages come
 * back warm or cold from one phase to the next here, so single rounds swing by 2x and more). */
static void bench__combine(const struct bench_fs *rounds, unsigned n, struct bench_fs *out)
{
	double v[BENCH_MAX_ROUNDS];

	*out = rounds[0];
#define MEDIAN_OF(field) do { for (unsigned i = 0; i < n; i++) v[i] = rounds[i].field; out->field = median(v, n); } while (0)
	MEDIAN_OF(write_s);
	MEDIAN_OF(write_mem_s);
	MEDIAN_OF(plain_write_s);
	MEDIAN_OF(restore_read_s);
	MEDIAN_OF(restore_total_s);
	MEDIAN_OF(plain_read_s);
	MEDIAN_OF(prefault_s[0]);
	MEDIAN_OF(prefault_s[1]);
#undef MEDIAN_OF
	for (unsigned i = 0; i < n; i++)
		if (rounds[i].backing_2m < out->backing_2m)
			out->backing_2m = rounds[i].backing_2m;
}

/* Plain sequential transfer of len bytes from/to path, 2 MiB requests, same depth, no copies. */
static int bench__plain(const char *path, bool write, uint64_t len, unsigned depth, double *secs, char *err,
			size_t errlen)
{
	struct snap_io io;
	uint64_t t, off = 0;
	unsigned next = 0;
	int ret = snap_io__open(&io, path, write, depth, err, errlen);

	if (ret)
		return ret;
	for (unsigned i = 0; write && i < io.depth; i++)
		memset(snap_io__buf(&io, i), 0x5a + (int)i, SNAP_IO_BUF_SIZE);
	t = mm__now_ns();
	while (!ret && off < len) {
		uint32_t n = len - off < SNAP_IO_BUF_SIZE ? (uint32_t)(len - off) : SNAP_IO_BUF_SIZE;

		if (io.inflight >= io.depth)
			ret = snap_io__reap(&io, 1, NULL, NULL);
		if (!ret)
			ret = snap_io__queue(&io, write, next++ % io.depth, 0, n, off);
		off += n;
	}
	if (!ret)
		ret = snap_io__reap(&io, io.inflight, NULL, NULL);
	if (!ret && write && fdatasync(io.fd))
		ret = -errno;
	*secs = (mm__now_ns() - t) / 1e9;
	if (!ret && io.bytes != len)
		ret = -EIO;
	if (ret)
		snprintf(err, errlen, "plain %s of %s: %s", write ? "write" : "read", path, strerror(-ret));
	snap_io__close(&io);
	return ret;
}

/* The source guest: its touched pages get data, the rest stays zero. */
static int bench__source(const struct bench_opts *o, struct mm *mm, uint64_t *touched, char *err, size_t errlen)
{
	struct mm_config cfg = { .guest_bytes = o->mem, .slack_bytes = o->mem * 6 / 100, .prefault = true,
				 .aging = AGING_DEFAULTS };
	uint64_t x = 12345;
	int ret;

	cfg.aging.age = o->age;
	ret = mm__create(mm, &cfg, err, errlen);
	if (ret)
		return ret;
	*touched = 0;
	for (uint64_t gpa = 0; gpa < o->mem; gpa += 4096) {
		uint64_t *w = window__gpa_ptr(&mm->win, gpa);

		if ((double)(mm__splitmix64(&x) >> 11) * 0x1.0p-53 >= o->touched)
			continue;
		for (unsigned i = 0; i < 512; i++)
			w[i] = gpa ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull);
		(*touched)++;
	}
	*touched *= 4096;
	return 0;
}

static double bench__prefault_alone(const struct snap_file *f, char *err, size_t errlen)
{
	struct mm_config cfg;
	struct mm mm;
	uint64_t t = mm__now_ns();

	if (snap_file__mm_config(f, false, &cfg, err, errlen))
		return -1;
	cfg.prefault = true;
	if (mm__create(&mm, &cfg, err, errlen))
		return -1;
	t = mm__now_ns() - t;
	mm__destroy(&mm);
	return t / 1e9;
}

static int bench__restore(struct bench_fs *r, const char *path, unsigned depth, char *err, size_t errlen)
{
	struct snap_restore_stats rs;
	struct snap_file f;
	struct mm_config cfg;
	struct mm_stat st;
	struct mm mm;
	uint64_t t;
	int ret = snap_file__open(&f, path, depth, err, errlen);

	if (ret)
		return ret;
	r->prefault_s[0] = bench__prefault_alone(&f, err, errlen);
	snap_file__mm_config(&f, false, &cfg, err, errlen);
	cfg.prefault = false; /* the restore faults the pool in, overlapped with the reads */
	t = mm__now_ns();
	ret = mm__create(&mm, &cfg, err, errlen);
	if (!ret) {
		ret = snap_file__restore(&f, &mm, &rs, err, errlen);
		r->restore_total_s = (mm__now_ns() - t) / 1e9;
		r->restore_read_s = rs.read_ns / 1e9;
		mm__stat(&mm, &st);
		r->backing_2m = st.backing_2m;
		mm__destroy(&mm);
	}
	if (!ret)
		r->prefault_s[1] = bench__prefault_alone(&f, err, errlen);
	snap_file__close(&f);
	return ret;
}

static int bench__fs(const struct bench_opts *o, struct mm *src, const char *dir, struct bench_fs *r, char *err,
		     size_t errlen)
{
	char path[4096], plain[4200];
	struct snap_write_stats ws;
	int ret;

	r->dir = dir;
	snprintf(path, sizeof(path), "%s/vmcompact-bench-snapshot.%d", dir, (int)getpid());
	snprintf(plain, sizeof(plain), "%s.plain", path);
	ret = snapshot__write(src, path, true, NULL, 0, &ws, err, errlen);
	if (!ret) {
		r->write_s = ws.total_ns / 1e9;
		r->write_mem_s = ws.mem_ns / 1e9;
		r->data_bytes = ws.data_bytes;
		r->file_bytes = ws.file_bytes;
		snprintf(r->io_note, sizeof(r->io_note), "%s", ws.io_note);
		ret = bench__plain(plain, true, ws.data_bytes, o->depth, &r->plain_write_s, err, errlen);
	}
	if (!ret)
		ret = bench__plain(plain, false, ws.data_bytes, o->depth, &r->plain_read_s, err, errlen);
	if (!ret)
		ret = bench__restore(r, path, o->depth, err, errlen);
	unlink(plain);
	unlink(path);
	return ret;
}

/* max(pool prefault alone, file read alone), with the smaller of the two prefault figures (before and
 * after the restore): the first mm of a run may fault cold huge pages, later ones warm ones. */
static double bench__reference(const struct bench_fs *r)
{
	double p = r->prefault_s[0] < r->prefault_s[1] ? r->prefault_s[0] : r->prefault_s[1];

	return p > r->plain_read_s ? p : r->plain_read_s;
}

static double write_ratio(const struct bench_fs *r)
{
	return r->write_s > 0 ? r->plain_write_s / r->write_s : 0;
}

static double read_ratio(const struct bench_fs *r)
{
	return r->restore_read_s > 0 ? r->plain_read_s / r->restore_read_s : 0;
}

static double restore_vs_max(const struct bench_fs *r)
{
	double pmax = bench__reference(r);

	return pmax > 0 ? r->restore_total_s / pmax : 0;
}

static struct json_object *rounds__json(const struct bench_fs *rounds, unsigned n, double (*ratio)(const struct bench_fs *))
{
	struct json_object *a = json_object_new_array();

	for (unsigned i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_double(ratio(&rounds[i])));
	return a;
}

static struct json_object *bench__json(const struct bench_opts *o, const struct bench_fs *r, unsigned n,
				       struct bench_fs (*rounds)[BENCH_MAX_ROUNDS])
{
	struct json_object *root = json_object_new_object(), *arr = json_object_new_array();

	json_object_object_add(root, "mem_bytes", json_object_new_uint64(o->mem));
	json_object_object_add(root, "age", json_object_new_double(o->age));
	json_object_object_add(root, "touched", json_object_new_double(o->touched));
	json_object_object_add(root, "depth", json_object_new_int((int)o->depth));
	json_object_object_add(root, "rounds", json_object_new_int((int)o->rounds));
	for (unsigned i = 0; i < n; i++) {
		struct json_object *f = json_object_new_object();
		double pmax = bench__reference(&r[i]);

		json_object_object_add(f, "dir", json_object_new_string(r[i].dir));
		json_object_object_add(f, "io", json_object_new_string(r[i].io_note));
		json_object_object_add(f, "data_bytes", json_object_new_uint64(r[i].data_bytes));
		json_object_object_add(f, "file_bytes", json_object_new_uint64(r[i].file_bytes));
		json_object_object_add(f, "write_s", json_object_new_double(r[i].write_s));
		json_object_object_add(f, "write_memory_s", json_object_new_double(r[i].write_mem_s));
		json_object_object_add(f, "write_mbps", json_object_new_double(mbps(r[i].data_bytes, r[i].write_s)));
		json_object_object_add(f, "write_records_mbps", json_object_new_double(mbps(r[i].data_bytes, r[i].write_mem_s)));
		json_object_object_add(f, "write_records_ratio", json_object_new_double(r[i].write_mem_s > 0 ? r[i].plain_write_s / r[i].write_mem_s : 0));
		json_object_object_add(f, "plain_write_mbps", json_object_new_double(mbps(r[i].data_bytes, r[i].plain_write_s)));
		json_object_object_add(f, "write_ratio", json_object_new_double(r[i].write_s > 0 ? r[i].plain_write_s / r[i].write_s : 0));
		json_object_object_add(f, "restore_read_mbps", json_object_new_double(mbps(r[i].data_bytes, r[i].restore_read_s)));
		json_object_object_add(f, "plain_read_mbps", json_object_new_double(mbps(r[i].data_bytes, r[i].plain_read_s)));
		json_object_object_add(f, "read_ratio", json_object_new_double(r[i].restore_read_s > 0 ? r[i].plain_read_s / r[i].restore_read_s : 0));
		json_object_object_add(f, "restore_total_s", json_object_new_double(r[i].restore_total_s));
		json_object_object_add(f, "prefault_alone_s", json_object_new_double(r[i].prefault_s[0]));
		json_object_object_add(f, "prefault_alone_after_s", json_object_new_double(r[i].prefault_s[1]));
		json_object_object_add(f, "file_read_alone_s", json_object_new_double(r[i].plain_read_s));
		json_object_object_add(f, "restore_vs_max", json_object_new_double(pmax > 0 ? r[i].restore_total_s / pmax : 0));
		json_object_object_add(f, "backing_2m", json_object_new_double(r[i].backing_2m));
		json_object_object_add(f, "write_ratio_rounds", rounds__json(rounds[i], o->rounds, write_ratio));
		json_object_object_add(f, "read_ratio_rounds", rounds__json(rounds[i], o->rounds, read_ratio));
		json_object_object_add(f, "restore_vs_max_rounds", rounds__json(rounds[i], o->rounds, restore_vs_max));
		json_object_array_add(arr, f);
	}
	json_object_object_add(root, "filesystems", arr);
	return root;
}

/* "min-max" of a ratio over the rounds. */
static const char *rounds__span(const struct bench_fs *rounds, unsigned n, double (*ratio)(const struct bench_fs *),
				char *buf, size_t len)
{
	double lo = ratio(&rounds[0]), hi = lo;

	for (unsigned i = 1; i < n; i++) {
		double v = ratio(&rounds[i]);

		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	snprintf(buf, len, "%.2f-%.2f", lo, hi);
	return buf;
}

static void bench__print(const struct bench_opts *o, const struct bench_fs *r, unsigned n,
			 struct bench_fs (*rounds)[BENCH_MAX_ROUNDS])
{
	char a[32], b[32], c[32];

	printf("snapshot bench: %" PRIu64 " MiB guest, age %.2f, %.0f%% of pages touched, queue depth %u, "
	       "medians of %u rounds\n", o->mem >> 20, o->age, o->touched * 100, o->depth, o->rounds);
	for (unsigned i = 0; i < n; i++) {
		double pmax = bench__reference(&r[i]);

		printf("\n%s (%s): %.1f MiB of records, file %.1f MiB on disk\n", r[i].dir, r[i].io_note,
		       r[i].data_bytes / 1048576.0, r[i].file_bytes / 1048576.0);
		printf("  write    %7.0f MB/s end to end (%.3f s: ring set-up, records, metadata, sync), records alone "
		       "%.0f MB/s (%.3f s)\n           plain O_DIRECT write %7.0f MB/s (after its set-up, with its sync): "
		       "ratio %.2f end to end, %.2f records\n",
		       mbps(r[i].data_bytes, r[i].write_s), r[i].write_s, mbps(r[i].data_bytes, r[i].write_mem_s),
		       r[i].write_mem_s, mbps(r[i].data_bytes, r[i].plain_write_s),
		       r[i].write_s > 0 ? r[i].plain_write_s / r[i].write_s : 0,
		       r[i].write_mem_s > 0 ? r[i].plain_write_s / r[i].write_mem_s : 0);
		printf("  read     %7.0f MB/s (%.3f s: records read, checked, placed in a pool faulting in)\n"
		       "           plain O_DIRECT read  %7.0f MB/s (into the staging ring only): ratio %.2f\n",
		       mbps(r[i].data_bytes, r[i].restore_read_s), r[i].restore_read_s,
		       mbps(r[i].data_bytes, r[i].plain_read_s), r[i].restore_read_s > 0 ? r[i].plain_read_s / r[i].restore_read_s : 0);
		printf("  eager restore %.3f s (pool created, records read, pool ready); pool prefault alone %.3f s "
		       "(%.3f s after), file read alone %.3f s: %.2f x the larger (smaller prefault); backing_2m %.3f\n",
		       r[i].restore_total_s, r[i].prefault_s[0], r[i].prefault_s[1], r[i].plain_read_s,
		       pmax > 0 ? r[i].restore_total_s / pmax : 0, r[i].backing_2m);
		if (o->rounds > 1)
			printf("  per round: write ratio %s, read ratio %s, restore / max %s\n",
			       rounds__span(rounds[i], o->rounds, write_ratio, a, sizeof(a)),
			       rounds__span(rounds[i], o->rounds, read_ratio, b, sizeof(b)),
			       rounds__span(rounds[i], o->rounds, restore_vs_max, c, sizeof(c)));
	}
}

static void bench__usage(FILE *f)
{
	fprintf(f, "Usage: vmcompact bench snapshot [--mem SIZE] [--age F] [--touched F] [--dir DIR]... [--depth N]\n"
		   "                               [--rounds N] [--json]\n"
		   "Snapshot write and eager restore at mm level (no KVM) on each DIR (default /var/tmp and /dev/shm),\n"
		   "against plain O_DIRECT sequential writes and reads of the same size on the same file system,\n"
		   "pool prefault alone and file read alone, each the median of --rounds rounds (1..9).\n"
		   "Defaults: --mem 1G --age 0 --touched 1 --depth 32 --rounds 3.\n"
		   "Needs root (the pool's private huge tmpfs). Exit: 0 ok, 1 failure, 2 usage.\n");
}

static int bench__parse(int argc, char **argv, struct bench_opts *o)
{
	static const struct option lo[] = {
		{ "mem", required_argument, NULL, 'm' }, { "age", required_argument, NULL, 'a' },
		{ "touched", required_argument, NULL, 't' }, { "dir", required_argument, NULL, 'd' },
		{ "depth", required_argument, NULL, 'q' }, { "json", no_argument, NULL, 'j' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' }, { 0 }
	};
	char *end;
	int c;

	*o = (struct bench_opts){ .mem = 1ull << 30, .touched = 1.0, .depth = SNAP_IO_DEFAULT_DEPTH, .rounds = 3 };
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (util__parse_size(optarg, &o->mem) || !o->mem || o->mem % SNAP_REGION_SIZE || o->mem > (64ull << 30))
				return fprintf(stderr, "bench snapshot: --mem '%s': need a multiple of 2 MiB\n", optarg), 2;
			break;
		case 'a': case 't':
			*(c == 'a' ? &o->age : &o->touched) = strtod(optarg, &end);
			if (*end || !(o->age >= 0 && o->age <= 1 && o->touched >= 0 && o->touched <= 1))
				return fprintf(stderr, "bench snapshot: --%s '%s': need 0..1\n", c == 'a' ? "age" : "touched", optarg), 2;
			break;
		case 'd':
			if (o->nr_dirs == BENCH_MAX_DIRS)
				return fprintf(stderr, "bench snapshot: at most %d --dir\n", BENCH_MAX_DIRS), 2;
			o->dirs[o->nr_dirs++] = optarg;
			break;
		case 'q':
			o->depth = (unsigned)strtoul(optarg, &end, 10);
			if (*end || o->depth < 1 || o->depth > SNAP_IO_MAX_DEPTH)
				return fprintf(stderr, "bench snapshot: --depth '%s': need 1..%u\n", optarg, SNAP_IO_MAX_DEPTH), 2;
			break;
		case 'r':
			o->rounds = (unsigned)strtoul(optarg, &end, 10);
			if (*end || o->rounds < 1 || o->rounds > BENCH_MAX_ROUNDS)
				return fprintf(stderr, "bench snapshot: --rounds '%s': need 1..%d\n", optarg, BENCH_MAX_ROUNDS), 2;
			break;
		case 'j': o->json = true; break;
		case 'h': bench__usage(stdout); return 1;
		default: bench__usage(stderr); return 2;
		}
	}
	if (optind < argc)
		return fprintf(stderr, "bench snapshot: unexpected argument '%s'\n", argv[optind]), 2;
	if (!o->nr_dirs) {
		o->dirs[o->nr_dirs++] = "/var/tmp";
		o->dirs[o->nr_dirs++] = "/dev/shm";
	}
	return 0;
}

int bench_snapshot__cmd(int argc, char **argv)
{
	static struct bench_fs rounds[BENCH_MAX_DIRS][BENCH_MAX_ROUNDS];
	struct bench_fs r[BENCH_MAX_DIRS];
	struct bench_opts o;
	uint64_t touched;
	char err[1024];
	struct mm src;
	int ret = bench__parse(argc, argv, &o);

	if (ret)
		return ret == 1 ? 0 : 2;
	memset(r, 0, sizeof(r));
	memset(rounds, 0, sizeof(rounds));
	if (bench__source(&o, &src, &touched, err, sizeof(err))) {
		fprintf(stderr, "bench snapshot: %s\n", err);
		return 1;
	}
	/* rounds outermost: each file system sees the host in every state the run goes through */
	for (unsigned k = 0; k < o.rounds && !ret; k++)
		for (unsigned d = 0; d < o.nr_dirs && !ret; d++) {
			rounds[d][k].touched_bytes = touched;
			ret = bench__fs(&o, &src, o.dirs[d], &rounds[d][k], err, sizeof(err));
		}
	mm__destroy(&src);
	if (ret) {
		fprintf(stderr, "bench snapshot: %s\n", err);
		return 1;
	}
	for (unsigned d = 0; d < o.nr_dirs; d++)
		bench__combine(rounds[d], o.rounds, &r[d]);
	if (o.json) {
		struct json_object *j = bench__json(&o, r, o.nr_dirs, rounds);

		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else {
		bench__print(&o, r, o.nr_dirs, rounds);
	}
	return 0;
}
