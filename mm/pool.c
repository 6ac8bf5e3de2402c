/* pool.c: the frame pool: one file per 2 MiB block on a private huge=always tmpfs, the direct map, prefaulting, adding and dropping blocks. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "mm/pool.h"
#include "mm/util.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif

#define POOL_RUN_DIR "/run/vmcompact"
#define POOL_MOUNT_MARGIN (4ULL << 20) /* tmpfs size= beyond the file, for rounding */

static const char *const pool_backing_names[POOL_BACKING_COUNT] = {
	[POOL_BACKING_THP] = "thp",
	[POOL_BACKING_HUGETLB] = "hugetlb",
	[POOL_BACKING_4K] = "4k",
};

const char *pool_backing__name(enum pool_backing b)
{
	return (unsigned)b < POOL_BACKING_COUNT ? pool_backing_names[b] : "?";
}

void pool__note_add(struct pool *p, const char *fmt, ...)
{
	size_t used = strlen(p->note);
	va_list ap;

	if (used >= sizeof(p->note) - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(p->note + used, sizeof(p->note) - used, fmt, ap);
	va_end(ap);
}

/* The bracketed choice of /sys/kernel/mm/transparent_hugepage/shmem_enabled, or "". */
static void read_shmem_enabled(char *out, size_t outlen)
{
	char buf[256], *l, *r;
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");

	out[0] = '\0';
	if (!f)
		return;
	if (fgets(buf, sizeof(buf), f) && (l = strchr(buf, '[')) && (r = strchr(l, ']'))) {
		*r = '\0';
		snprintf(out, outlen, "%s", l + 1);
	}
	fclose(f);
}

static bool shmem_policy_gives_thp(const char *policy)
{
	/* "advise" counts: we madvise(MADV_HUGEPAGE) the direct map and the window. */
	return !strcmp(policy, "always") || !strcmp(policy, "within_size") || !strcmp(policy, "advise") ||
	       !strcmp(policy, "force");
}

/*
 * The super options ("huge=...") of the tmpfs holding path, from /proc/self/mountinfo:
 * the mount whose mount point is the longest path-prefix of realpath(path).
 */
static bool tmpfs_huge_option(const char *path, char *huge, size_t hugelen)
{
	char real[PATH_MAX], line[4096], best_opts[1024] = "";
	size_t best_len = 0;
	bool found = false;
	FILE *f;

	huge[0] = '\0';
	if (!realpath(path, real))
		return false;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX], fstype[64], opts[1024];
		char *dash = strstr(line, " - ");
		size_t len;

		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
			continue;
		if (sscanf(dash + 3, "%63s %*s %1023s", fstype, opts) != 2)
			continue;
		len = strlen(mnt);
		if (strncmp(real, mnt, len) || (real[len] != '/' && real[len] != '\0' && strcmp(mnt, "/")))
			continue;
		if (len >= best_len) {
			best_len = len;
			found = !strcmp(fstype, "tmpfs");
			snprintf(best_opts, sizeof(best_opts), "%s", opts);
		}
	}
	fclose(f);
	if (found) {
		char *h = strstr(best_opts, "huge=");

		if (h) {
			size_t n = strcspn(h + 5, ",");

			snprintf(huge, hugelen, "%.*s", (int)n, h + 5);
		} else {
			snprintf(huge, hugelen, "never");
		}
	}
	return found;
}

/* Our own tmpfs, huge=always: mount, keep a directory fd for the block files, detach, rmdir. */
static int open_private_tmpfs(struct pool *p, char *err, size_t errlen)
{
	char opts[128];
	int ret, fd;

	if (mkdir(POOL_RUN_DIR, 0700) && errno != EEXIST)
		snprintf(p->mount_dir, sizeof(p->mount_dir), "/tmp/vmcompact-pool.XXXXXX");
	else
		snprintf(p->mount_dir, sizeof(p->mount_dir), POOL_RUN_DIR "/pool.XXXXXX");
	if (!mkdtemp(p->mount_dir)) {
		snprintf(p->mount_dir, sizeof(p->mount_dir), "/tmp/vmcompact-pool.XXXXXX");
		if (!mkdtemp(p->mount_dir)) {
			ret = -errno;
			mm__set_msg(err, errlen, "cannot create a mount point for the pool tmpfs: %s", strerror(errno));
			p->mount_dir[0] = '\0';
			return ret;
		}
	}
	/* Room for the whole frame space: blocks added later (borrowed) need it too. */
	snprintf(opts, sizeof(opts), "huge=always,size=%" PRIu64 "k,mode=0700",
		 (uint64_t)((p->size + POOL_MOUNT_MARGIN) >> 10));
	if (mount("tmpfs", p->mount_dir, "tmpfs", MS_NOSUID | MS_NODEV, opts)) {
		ret = -errno;
		mm__set_msg(err, errlen, "mount -t tmpfs -o %s tmpfs %s: %s", opts, p->mount_dir, strerror(errno));
		rmdir(p->mount_dir);
		return ret;
	}
	/* The detached mount lives on through this fd: block files are made in it with O_TMPFILE. */
	fd = open(p->mount_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		mm__set_msg(err, errlen, "open %s: %s", p->mount_dir, strerror(errno));
	} else {
		p->dir_fd = fd;
		p->backing = POOL_BACKING_THP;
		pool__note_add(p, "private tmpfs huge=always (mounted at %s, detached at once), one file per 2 MiB block",
			 p->mount_dir);
		p->huge_always = true;
		ret = 0;
	}
	umount2(p->mount_dir, MNT_DETACH);
	rmdir(p->mount_dir);
	return ret;
}

/* The free space of a user-given filesystem must hold the blocks present at start. */
static int check_fs_space(struct pool *p, const char *dir, const struct statfs *sfs, char *err, size_t errlen)
{
	uint64_t free_bytes = (uint64_t)sfs->f_bavail * (uint64_t)sfs->f_bsize, need = p->nr_present_start *
			      POOL_BLOCK_SIZE;

	if ((uint64_t)sfs->f_type == HUGETLBFS_MAGIC && (sfs->f_blocks == 0 || sfs->f_blocks == (fsblkcnt_t)-1))
		return 0; /* a hugetlbfs without size=: the huge page pool decides, at prefault */
	if (free_bytes >= need)
		return 0;
	mm__set_msg(err, errlen, "pool path %s has %" PRIu64 " MiB free but the pool needs %" PRIu64 " MiB "
		"(guest + slack): %" PRIu64 " MiB missing. Enlarge it (mount -o remount,size=%" PRIu64 "M %s) "
		"or use a smaller --mem/--slack", dir, free_bytes >> 20, need >> 20, (need - free_bytes + (1 << 20) - 1) >> 20,
		((uint64_t)sfs->f_blocks * (uint64_t)sfs->f_bsize + need - free_bytes + (4 << 20)) >> 20, dir);
	return -ENOSPC;
}

/* An unlinked file in a user-given directory on tmpfs or hugetlbfs. */
static int open_in_dir(struct pool *p, const char *dir, char *err, size_t errlen)
{
	char huge[32], policy[32];
	struct statfs sfs;
	int fd, ret;

	if (statfs(dir, &sfs)) {
		ret = -errno;
		mm__set_msg(err, errlen, "pool path %s: %s", dir, strerror(errno));
		return ret;
	}
	if ((uint64_t)sfs.f_type == HUGETLBFS_MAGIC) {
		uint64_t hps = (uint64_t)sfs.f_bsize;

		if (hps != POOL_BLOCK_SIZE) {
			mm__set_msg(err, errlen, "hugetlbfs %s has %" PRIu64 " KiB pages: the pool is one file per 2 MiB "
				"block and needs 2048 KiB pages (mount -t hugetlbfs -o pagesize=2M none DIR)",
				dir, hps >> 10);
			return -EINVAL;
		}
		p->backing = POOL_BACKING_HUGETLB;
		p->huge_always = true;
		pool__note_add(p, "hugetlbfs %s (%" PRIu64 " KiB pages)", dir, hps >> 10);
	} else if ((uint64_t)sfs.f_type == TMPFS_MAGIC) {
		read_shmem_enabled(policy, sizeof(policy));
		if (!tmpfs_huge_option(dir, huge, sizeof(huge)))
			snprintf(huge, sizeof(huge), "unknown");
		if (!strcmp(policy, "force") || !strcmp(huge, "always") || !strcmp(huge, "within_size") ||
		    !strcmp(huge, "advise")) {
			p->backing = POOL_BACKING_THP;
			p->huge_always = !strcmp(policy, "force") || !strcmp(huge, "always");
			pool__note_add(p, "tmpfs %s huge=%s", dir, huge);
		} else {
			p->backing = POOL_BACKING_4K;
			pool__note_add(p, "tmpfs %s has huge=%s: the pool gets 4 KiB pages. Fix: remount it with "
				    "huge=always (mount -o remount,huge=always %s)", dir, huge, dir);
		}
	} else {
		mm__set_msg(err, errlen, "pool path %s is neither tmpfs nor hugetlbfs (f_type %#lx): a shared "
			"mapping there would be written back to disk. Use e.g. "
			"mkdir DIR && mount -t tmpfs -o huge=always tmpfs DIR", dir, (unsigned long)sfs.f_type);
		return -EINVAL;
	}

	ret = check_fs_space(p, dir, &sfs, err, errlen);
	if (ret)
		return ret;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		mm__set_msg(err, errlen, "open pool path %s: %s", dir, strerror(errno));
		return ret;
	}
	p->dir_fd = fd;
	return 0;
}

/* No mount allowed (not root): an anonymous shmem file, huge only if shmem_enabled allows. */
static int open_fallback(struct pool *p, int mount_err, char *err, size_t errlen)
{
	char policy[32];
	int fd, ret;


	/* One memfd per block; without memfd_create, unlinked files in /dev/shm. */
	fd = (int)memfd_create("vmcompact-probe", MFD_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		p->dir_fd = -1;
	} else {
		fd = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			ret = -errno;
			mm__set_msg(err, errlen, "pool: no private tmpfs (%s), no memfd, no /dev/shm: %s",
				strerror(-mount_err), strerror(errno));
			return ret;
		}
		p->dir_fd = fd;
	}
	read_shmem_enabled(policy, sizeof(policy));
	p->backing = shmem_policy_gives_thp(policy) ? POOL_BACKING_THP : POOL_BACKING_4K;
	p->note[0] = '\0';
	pool__note_add(p, "could not mount a private huge=always tmpfs (%s); using a memfd with shmem_enabled=%s%s. "
		    "Fix: run as root, or pass --pool-path DIR on a tmpfs mounted with huge=always|advise "
		    "(mount -t tmpfs -o huge=always tmpfs DIR), or set "
		    "/sys/kernel/mm/transparent_hugepage/shmem_enabled to advise (vmcompact never changes it)",
		 strerror(-mount_err), policy[0] ? policy : "?",
		 p->backing == POOL_BACKING_4K ? ", so the pool has 4 KiB pages" : "");
	return 0;
}

/* Reserve the whole frame space (PROT_NONE), 2 MiB aligned: blocks are mapped into it as they come. */
static int reserve_direct(struct pool *p, char *err, size_t errlen)
{
	const uint64_t align = POOL_BLOCK_SIZE;
	uint8_t *raw, *aligned, *end, *raw_end;
	int ret;

	raw = mmap(NULL, p->size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED) {
		ret = -errno;
		mm__set_msg(err, errlen, "reserve %" PRIu64 " bytes of address space for the pool: %s",
			p->size + align, strerror(errno));
		return ret;
	}
	aligned = (uint8_t *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	end = aligned + p->size;
	raw_end = raw + p->size + align;
	if (aligned > raw)
		munmap(raw, (size_t)(aligned - raw));
	if (raw_end > end)
		munmap(end, (size_t)(raw_end - end));
	p->base = aligned;
	return 0;
}

/* A new, unlinked 2 MiB file for one block: fd or -errno. */
static int block_file_open(struct pool *p)
{
	int fd, ret;

	if (p->dir_fd < 0) {
		fd = (int)memfd_create("vmcompact-block", MFD_CLOEXEC);
	} else {
		fd = openat(p->dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
			char name[64];

			snprintf(name, sizeof(name), "vmcompact-block.%d.%u", (int)getpid(), p->files_made);
			fd = openat(p->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (fd >= 0)
				unlinkat(p->dir_fd, name, 0);
		}
	}
	if (fd < 0)
		return -errno;
	p->files_made++;
	if (ftruncate(fd, (off_t)POOL_BLOCK_SIZE)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

/* Map block b's file at its place in the direct map. */
static int block_map(struct pool *p, uint32_t b, int fd)
{
	uint8_t *addr = p->base + (uint64_t)b * POOL_BLOCK_SIZE;

	if (mmap(addr, POOL_BLOCK_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
		return -errno;
	if (p->backing != POOL_BACKING_HUGETLB)
		madvise(addr, POOL_BLOCK_SIZE, MADV_HUGEPAGE); /* needed for shmem_enabled=advise, harmless else */
	return 0;
}

/* Populate [addr, addr + len) writable: MADV_POPULATE_WRITE, or touch every 4 KiB before 5.14. */
static int populate(uint8_t *addr, uint64_t len)
{
	if (madvise(addr, len, MADV_POPULATE_WRITE)) {
		if (errno != EINVAL)
			return -errno;
		/* An atomic add of 0 writes without changing anything, even while the guest runs. */
		for (uint64_t off = 0; off < len; off += MM_PAGE_SIZE)
			__atomic_fetch_add((uint64_t *)(addr + off), 0, __ATOMIC_RELAXED);
	}
	return 0;
}

struct prefault_job {
	pthread_t thread;
	uint8_t *addr;
	uint64_t len;
	int ret;
	bool started;
};

static void *prefault_worker(void *arg)
{
	struct prefault_job *job = arg;
	const uint64_t chunk = 4 * POOL_BLOCK_SIZE;

	/* In chunks: MADV_POPULATE_WRITE holds mmap_lock for its whole range, and a long hold
	 * would stall everything else that maps memory meanwhile (thread stacks, the window). */
	for (uint64_t off = 0; off < job->len && !job->ret; off += chunk)
		job->ret = populate(job->addr + off, job->len - off < chunk ? job->len - off : chunk);
	return NULL;
}

/*
 * Prefault in parallel, one thread per CPU (at most POOL_PREFAULT_THREADS_MAX): on memory
 * the hypervisor has reclaimed, first touch costs milliseconds per 2 MiB and 2 threads
 * halve it (1.25-1.5 s instead of 2.4-3.4 s per GiB here); warm, it makes little difference.
 */
int pool__prefault_blocks(struct pool *p, const uint8_t *sel, uint8_t value, char *err, size_t errlen)
{
	uint64_t t0 = mm__now_ns();

	for (uint32_t b = 0; b < p->nr_blocks;) {
		uint32_t e = b;
		int ret;

		if (sel[b] != value || !p->block_present[b]) {
			b++;
			continue;
		}
		while (e < p->nr_blocks && sel[e] == value && p->block_present[e] && e - b < 4)
			e++;
		ret = populate(p->base + (uint64_t)b * POOL_BLOCK_SIZE, (uint64_t)(e - b) * POOL_BLOCK_SIZE);
		if (ret) {
			mm__set_msg(err, errlen, "prefault pool blocks %u..%u: %s", b, e - 1, strerror(-ret));
			return ret;
		}
		b = e;
	}
	p->prefault_ns += mm__now_ns() - t0;
	return 0;
}

/* At start-up, when the present blocks are [0, nr_present). */
int pool__prefault(struct pool *p, unsigned threads, char *err, size_t errlen)
{
	struct prefault_job jobs[POOL_PREFAULT_THREADS_MAX];
	uint64_t t0 = mm__now_ns(), per, present = pool__present_bytes(p);
	uint32_t blocks_per;
	int ret = 0;

	if (!threads) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		threads = cpus > 0 ? (unsigned)cpus : 1;
	}
	if (threads > POOL_PREFAULT_THREADS_MAX)
		threads = POOL_PREFAULT_THREADS_MAX;
	if (threads > p->nr_present)
		threads = p->nr_present;
	if (!threads)
		return 0;
	blocks_per = (p->nr_present + threads - 1) / threads;
	per = (uint64_t)blocks_per * POOL_BLOCK_SIZE;
	for (unsigned i = 0; i < threads; i++) {
		struct prefault_job *job = &jobs[i];
		uint64_t off = per * i;

		job->addr = p->base + off;
		job->len = off >= present ? 0 : (present - off < per ? present - off : per);
		job->ret = 0;
		job->started = i > 0 && job->len && !pthread_create(&job->thread, NULL, prefault_worker, job);
	}
	for (unsigned i = 0; i < threads; i++) /* job 0, and any whose thread did not start, here */
		if (!jobs[i].started && jobs[i].len)
			prefault_worker(&jobs[i]);
	for (unsigned i = 0; i < threads; i++) {
		if (jobs[i].started)
			pthread_join(jobs[i].thread, NULL);
		if (jobs[i].ret && !ret)
			ret = jobs[i].ret;
	}
	if (ret) {
		mm__set_msg(err, errlen, "prefault the pool (%" PRIu64 " MiB): %s%s", present >> 20, strerror(-ret),
			ret == -ENOMEM || ret == -EFAULT ?
				" (tmpfs full, or not enough huge pages in the hugetlbfs pool?)" : "");
		return ret;
	}
	p->prefault_ns = mm__now_ns() - t0;
	p->prefault_threads = threads;
	return 0;
}

struct populate_job {
	pthread_t thread;
	struct pool *p;
	const uint32_t *blocks;
	uint32_t n, first, stride;
	int *rc;
	bool started;
};

static void *populate_worker(void *arg)
{
	struct populate_job *job = arg;

	for (uint32_t i = job->first; i < job->n; i += job->stride)
		job->rc[i] = populate(job->p->base + (uint64_t)job->blocks[i] * POOL_BLOCK_SIZE, POOL_BLOCK_SIZE);
	return NULL;
}

/* Fault in present blocks blocks[0..n) on up to `threads` threads (0: one per CPU); rc[i] gets
 * each block's 0 or -errno. Fresh host huge pages cost milliseconds each, mostly waiting: the
 * threads overlap that. */
void pool__populate_blocks(struct pool *p, const uint32_t *blocks, uint32_t n, unsigned threads, int *rc)
{
	struct populate_job jobs[POOL_PREFAULT_THREADS_MAX];

	if (!threads) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		threads = cpus > 0 ? (unsigned)cpus : 1;
	}
	if (threads > POOL_PREFAULT_THREADS_MAX)
		threads = POOL_PREFAULT_THREADS_MAX;
	if (threads > n)
		threads = n;
	for (unsigned i = 0; i < threads; i++) {
		jobs[i] = (struct populate_job){ .p = p, .blocks = blocks, .n = n, .first = i, .stride = threads, .rc = rc };
		jobs[i].started = i > 0 && !pthread_create(&jobs[i].thread, NULL, populate_worker, &jobs[i]);
	}
	for (unsigned i = 0; i < threads; i++)
		if (!jobs[i].started)
			populate_worker(&jobs[i]);
	for (unsigned i = 0; i < threads; i++)
		if (jobs[i].started)
			pthread_join(jobs[i].thread, NULL);
}

int pool__block_add(struct pool *p, uint32_t b, bool fault, char *err, size_t errlen)
{
	int fd, ret;

	if (b >= p->nr_blocks || p->block_present[b]) {
		mm__set_msg(err, errlen, "pool block %u is out of range or present already", b);
		return -EINVAL;
	}
	fd = block_file_open(p);
	if (fd < 0) {
		mm__set_msg(err, errlen, "create the file of pool block %u: %s%s", b, strerror(-fd),
			fd == -EMFILE ? " (one open file per 2 MiB block: raise ulimit -n)" :
			fd == -ENOSPC ? " (the pool filesystem is full)" : "");
		return fd;
	}
	ret = block_map(p, b, fd);
	if (ret) {
		close(fd);
		mm__set_msg(err, errlen, "map pool block %u: %s", b, strerror(-ret));
		return ret;
	}
	p->block_fd[b] = fd;
	p->block_present[b] = 1;
	p->nr_present++;
	if (!fault)
		return 0;
	ret = populate(p->base + (uint64_t)b * POOL_BLOCK_SIZE, POOL_BLOCK_SIZE);
	if (ret) {
		pool__block_drop(p, b);
		mm__set_msg(err, errlen, "fault in pool block %u: %s%s", b, strerror(-ret),
			ret == -ENOMEM || ret == -EFAULT || ret == -EIO ?
				" (pool filesystem full, or no free huge page on the host)" : "");
		return ret;
	}
	pool__refresh_block(p, b);
	return 0;
}

void pool__block_drop(struct pool *p, uint32_t b)
{
	uint8_t *addr = p->base + (uint64_t)b * POOL_BLOCK_SIZE;

	if (!pool__block_present(p, b))
		return;
	/* Replacing the mapping unmaps the file's pages; closing the unlinked file frees them. */
	mmap(addr, POOL_BLOCK_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	close(p->block_fd[b]);
	p->block_fd[b] = -1;
	p->block_present[b] = 0;
	p->nr_present--;
	p->nr_huge_blocks -= p->block_huge[b];
	p->block_huge[b] = 0;
}

int64_t pool__fs_free_bytes(const struct pool *p)
{
	struct statfs sfs;
	int fd = p->dir_fd;

	for (uint32_t b = 0; fd < 0 && b < p->nr_blocks; b++)
		fd = p->block_fd[b];
	if (fd < 0)
		return -ENOENT;
	if (fstatfs(fd, &sfs))
		return -errno;
	return (int64_t)((uint64_t)sfs.f_bavail * (uint64_t)sfs.f_bsize);
}

/* --- create / destroy --- */

/* One open file per block: raise the soft RLIMIT_NOFILE to the hard one if the present blocks
 * need it (per-process, allowed); say clearly if even the hard limit is short. */
static int check_nofile(struct pool *p, char *err, size_t errlen)
{
	const uint64_t spare_fds = 256; /* the rest of the process: vCPUs, sockets, logs */
	uint64_t want = (uint64_t)p->nr_blocks + spare_fds, need = (uint64_t)p->nr_present_start + spare_fds;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 0;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want && rl.rlim_cur < rl.rlim_max) {
		rlim_t old = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? (rlim_t)want : rl.rlim_max;
		if (!setrlimit(RLIMIT_NOFILE, &rl))
			pool__note_add(p, "; RLIMIT_NOFILE raised from %llu to %llu (one file per 2 MiB block)",
				 (unsigned long long)old, (unsigned long long)rl.rlim_cur);
		else
			rl.rlim_cur = old;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		mm__set_msg(err, errlen, "the pool needs %" PRIu64 " open files (one per 2 MiB block, plus %" PRIu64
			" for the rest) but RLIMIT_NOFILE is %llu (hard %llu): raise it (ulimit -n %" PRIu64 ")", need,
			spare_fds, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, want);
		return -EMFILE;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
		pool__note_add(p, "; RLIMIT_NOFILE %llu limits the pool to %llu blocks of %u (borrowing is short)",
			 (unsigned long long)rl.rlim_cur, (unsigned long long)(rl.rlim_cur - spare_fds), p->nr_blocks);
	return 0;
}

int pool__create(struct pool *p, const struct pool_config *cfg, char *err, size_t errlen)
{
	uint64_t capacity = cfg->capacity > cfg->size ? cfg->capacity : cfg->size;
	int ret;

	memset(p, 0, sizeof(*p));
	p->dir_fd = -1;
	if (!cfg->size || cfg->size % POOL_BLOCK_SIZE || capacity % POOL_BLOCK_SIZE) {
		mm__set_msg(err, errlen, "pool size %" PRIu64 " (capacity %" PRIu64 ") is not a positive multiple of 2 MiB",
			cfg->size, capacity);
		return -EINVAL;
	}
	if ((capacity >> MM_PAGE_SHIFT) >= FRAME_NONE) {
		mm__set_msg(err, errlen, "pool size %" PRIu64 " has too many 4 KiB frames for 32-bit frame numbers",
			capacity);
		return -EINVAL;
	}
	p->size = capacity;
	p->nr_frames = (uint32_t)(capacity >> MM_PAGE_SHIFT);
	p->nr_blocks = (uint32_t)(capacity / POOL_BLOCK_SIZE);
	p->nr_present_start = (uint32_t)(cfg->size / POOL_BLOCK_SIZE);
	pool__select_copy(p);
	p->block_huge = calloc(p->nr_blocks, 1);
	p->block_present = calloc(p->nr_blocks, 1);
	p->block_fd = malloc(p->nr_blocks * sizeof(int));
	if (!p->block_huge || !p->block_present || !p->block_fd) {
		mm__set_msg(err, errlen, "pool: out of memory for %u block flags", p->nr_blocks);
		ret = -ENOMEM;
		goto err_free;
	}
	for (uint32_t b = 0; b < p->nr_blocks; b++)
		p->block_fd[b] = -1;

	if (cfg->path) {
		ret = open_in_dir(p, cfg->path, err, errlen);
	} else {
		ret = open_private_tmpfs(p, err, errlen);
		if (ret == -EPERM || ret == -EACCES || ret == -ENODEV || ret == -EROFS)
			ret = open_fallback(p, ret, err, errlen);
	}
	if (ret)
		goto err_free;
	ret = check_nofile(p, err, errlen);
	if (ret)
		goto err_free;
	ret = reserve_direct(p, err, errlen);
	if (ret)
		goto err_free;
	for (uint32_t b = 0; b < p->nr_present_start; b++) {
		ret = pool__block_add(p, b, false, err, errlen);
		if (ret)
			goto err_free;
	}
	if (cfg->prefault) {
		ret = pool__prefault(p, cfg->prefault_threads, err, errlen);
		if (ret)
			goto err_free;
	}
	pool__refresh_huge(p);
	return 0;

err_free:
	pool__destroy(p);
	return ret;
}

void pool__destroy(struct pool *p)
{
	if (p->base)
		munmap(p->base, p->size);
	for (uint32_t b = 0; p->block_fd && b < p->nr_blocks; b++)
		if (p->block_fd[b] >= 0)
			close(p->block_fd[b]);
	if (p->dir_fd >= 0)
		close(p->dir_fd);
	free(p->block_huge);
	free(p->block_present);
	free(p->block_fd);
	memset(p, 0, sizeof(*p));
	p->dir_fd = -1;
}
