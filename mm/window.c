/* window.c: the guest window: MAP_FIXED mappings of pool frames at their GPAs, and the VMA budget. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "mm/window.h"
#include "mm/util.h"

#define WIN_ALIGN (1ULL << (MM_PAGE_SHIFT + MM_PAGEBLOCK_ORDER))
#define WIN_GUARD (2 * WIN_ALIGN) /* extra reservation: a PROT_NONE gap on both sides */

/*
 * Mapping model. The kernel merges two adjacent VMAs of the same file when the
 * file offsets are contiguous and the flags agree; an anonymous PROT_NONE hole
 * merges with its neighbour holes. Every pool block is its own file, and every
 * window mapping gets the same flags (PROT_READ|PROT_WRITE, MAP_SHARED, and
 * MADV_HUGEPAGE or not), so the window consists of exactly one VMA per maximal
 * run contiguous in GPA and frame within one block, plus one per run of unbacked
 * GPAs. vma_start has a bit per gpfn that starts a VMA; nr_vmas is
 * its popcount, kept exact by recomputing the two boundaries a remap can change.
 * tests/mm/test_window.c checks this against /proc/self/maps.
 */

static inline bool bit_test(const uint64_t *bm, uint64_t i)
{
	return bm[i >> 6] >> (i & 63) & 1;
}

static inline void bit_assign(uint64_t *bm, uint64_t i, bool v)
{
	if (v)
		bm[i >> 6] |= 1ULL << (i & 63);
	else
		bm[i >> 6] &= ~(1ULL << (i & 63));
}

/* Does a VMA start at gpfn g, given the map? */
static inline bool starts_vma(const struct gpamap *m, gpfn_t g)
{
	frame_t prev, cur;

	if (g == 0)
		return true;
	prev = m->gpfn_frame[g - 1];
	cur = m->gpfn_frame[g];
	if (prev == FRAME_NONE || cur == FRAME_NONE)
		return prev != cur; /* holes join holes; a hole never joins a mapping */
	return cur != prev + 1 || !(cur & (MM_PAGEBLOCK_FRAMES - 1)); /* a new block is a new file */
}

/* Recompute the boundary bit at g (g may be nr_gpfns: no bit there). Returns the change in VMAs. */
static int64_t update_boundary(struct window *w, const struct gpamap *m, gpfn_t g)
{
	bool was, now;

	if (g >= w->nr_gpfns)
		return 0;
	was = bit_test(w->vma_start, g);
	now = starts_vma(m, g);
	bit_assign(w->vma_start, g, now);
	return (int64_t)now - (int64_t)was;
}

uint64_t window__vmas_needed(const struct gpamap *m)
{
	uint64_t n = 0;

	for (gpfn_t g = 0; g < m->nr_gpfns; g++)
		n += starts_vma(m, g);
	return n;
}

int window__create(struct window *w, uint64_t size, const int *block_fd, char *err, size_t errlen)
{
	uint8_t *raw;
	uint64_t words;

	memset(w, 0, sizeof(*w));
	if (!size || size % WIN_ALIGN || (size >> MM_PAGE_SHIFT) >= GPFN_NONE) {
		mm__set_msg(err, errlen, "guest window size %" PRIu64 " is not a positive multiple of 2 MiB "
			"below 16 TiB", size);
		return -EINVAL;
	}
	w->nr_gpfns = (uint32_t)(size >> MM_PAGE_SHIFT);
	words = ((uint64_t)w->nr_gpfns + 63) / 64;
	w->vma_start = calloc(words, sizeof(uint64_t));
	if (!w->vma_start) {
		mm__set_msg(err, errlen, "guest window: out of memory for %" PRIu64 " bitmap words", words);
		return -ENOMEM;
	}
	w->reserve_size = size + 2 * WIN_GUARD;
	raw = mmap(NULL, w->reserve_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED) {
		int ret = -errno;

		mm__set_msg(err, errlen, "reserve %" PRIu64 " bytes of address space for the guest window: %s",
			w->reserve_size, strerror(errno));
		free(w->vma_start);
		w->vma_start = NULL;
		return ret;
	}
	w->reserve_base = raw;
	/* At least 2 MiB of PROT_NONE stays on each side: window mappings then never sit
	 * next to an unrelated mapping they could merge with. */
	w->base = (uint8_t *)(((uintptr_t)raw + WIN_GUARD - 1) & ~(uintptr_t)(WIN_ALIGN - 1));
	w->size = size;
	w->block_fd = block_fd;
	w->hugepage_advice = true;
	/* Nothing mapped yet: the whole window is one hole. */
	bit_assign(w->vma_start, 0, true);
	w->nr_vmas = 1;
	return 0;
}

void window__destroy(struct window *w)
{
	if (w->reserve_base)
		munmap(w->reserve_base, w->reserve_size);
	free(w->vma_start);
	memset(w, 0, sizeof(*w));
}

/* Map gpfns [g, g + n) onto frames [f, f + n) of one pool block, or as a PROT_NONE hole if
 * f == FRAME_NONE. */
static int map_range(struct window *w, gpfn_t g, uint32_t n, frame_t f, int extra_flags)
{
	uint8_t *addr = w->base + ((uint64_t)g << MM_PAGE_SHIFT);
	size_t len = (size_t)n << MM_PAGE_SHIFT;
	void *r;

	if (f == FRAME_NONE)
		r = mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	else
		r = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | extra_flags, w->block_fd[f >> MM_PAGEBLOCK_ORDER],
			 (off_t)((uint64_t)(f & (MM_PAGEBLOCK_FRAMES - 1)) << MM_PAGE_SHIFT));
	if (r == MAP_FAILED)
		return -errno;
	return 0;
}

static int advise(struct window *w, gpfn_t g, uint64_t n)
{
	if (w->hugepage_advice &&
	    madvise(w->base + ((uint64_t)g << MM_PAGE_SHIFT), n << MM_PAGE_SHIFT, MADV_HUGEPAGE))
		return -errno;
	return 0;
}

int window__map_all(struct window *w, const struct gpamap *m, char *err, size_t errlen)
{
	struct vma_budget vb;
	uint64_t needed;
	gpfn_t g, start;
	int ret;

	if (m->nr_gpfns != w->nr_gpfns) {
		mm__set_msg(err, errlen, "guest window has %u pages, the GPA map %u", w->nr_gpfns, m->nr_gpfns);
		return -EINVAL;
	}
	needed = window__vmas_needed(m);
	ret = vma_budget__read(&vb);
	if (ret) {
		mm__set_msg(err, errlen, "read the VMA budget (/proc/sys/vm/max_map_count, /proc/self/maps): %s",
			strerror(-ret));
		return ret;
	}
	if (w->fake_max_map_count)
		vb.max_map_count = w->fake_max_map_count;
	ret = vma_budget__check_with(&vb, needed, VMA_BUDGET_HEADROOM, err, errlen);
	if (ret)
		return ret;

	for (start = 0; start < w->nr_gpfns; start = g) {
		frame_t f = m->gpfn_frame[start];

		for (g = start + 1; g < w->nr_gpfns && !starts_vma(m, g); g++)
			;
		ret = map_range(w, start, g - start, f, 0);
		if (ret) {
			mm__set_msg(err, errlen, "map GPA %#" PRIx64 "+%#" PRIx64 " of the guest window: %s",
				(uint64_t)start << MM_PAGE_SHIFT, (uint64_t)(g - start) << MM_PAGE_SHIFT,
				strerror(-ret));
			return ret;
		}
	}
	ret = advise(w, 0, w->nr_gpfns);
	if (ret) {
		mm__set_msg(err, errlen, "madvise(MADV_HUGEPAGE) the guest window: %s", strerror(-ret));
		return ret;
	}
	w->nr_vmas = 0;
	for (g = 0; g < w->nr_gpfns; g++) {
		bool s = starts_vma(m, g);

		bit_assign(w->vma_start, g, s);
		w->nr_vmas += s;
	}
	return 0;
}

int window__remap_4k(struct window *w, const struct gpamap *m, gpfn_t g)
{
	int ret;

	if (g >= w->nr_gpfns)
		return -EINVAL;
	ret = map_range(w, g, 1, m->gpfn_frame[g], w->populate_remaps ? MAP_POPULATE : 0);
	if (ret)
		return ret;
	w->nr_vmas += update_boundary(w, m, g);
	w->nr_vmas += update_boundary(w, m, g + 1);
	return advise(w, g, 1);
}

int window__remap_2m(struct window *w, const struct gpamap *m, uint32_t region)
{
	gpfn_t g0 = region << MM_PAGEBLOCK_ORDER;
	int64_t delta = 0;
	int ret;

	if ((uint64_t)g0 + MM_PAGEBLOCK_FRAMES > w->nr_gpfns || !gpamap__region_in_order(m, region))
		return -EINVAL;
	ret = map_range(w, g0, MM_PAGEBLOCK_FRAMES, m->gpfn_frame[g0], w->populate_remaps ? MAP_POPULATE : 0);
	if (ret)
		return ret;
	/* In order: no boundary inside the region; the two ends depend on the neighbours. */
	for (gpfn_t g = g0 + 1; g < g0 + MM_PAGEBLOCK_FRAMES; g++) {
		delta -= bit_test(w->vma_start, g);
		bit_assign(w->vma_start, g, false);
	}
	delta += update_boundary(w, m, g0);
	delta += update_boundary(w, m, g0 + MM_PAGEBLOCK_FRAMES);
	w->nr_vmas = (uint64_t)((int64_t)w->nr_vmas + delta);
	return advise(w, g0, MM_PAGEBLOCK_FRAMES);
}

int64_t window__count_host_vmas(const struct window *w)
{
	uintptr_t lo = (uintptr_t)w->base, hi = lo + w->size;
	char line[512];
	int64_t n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;

		if (sscanf(line, "%lx-%lx", &start, &end) == 2 && start < hi && end > lo)
			n++;
		while (!strchr(line, '\n') && fgets(line, sizeof(line), f)) /* long path: skip rest */
			;
	}
	fclose(f);
	return n;
}

/* --- VMA budget --- */

int vma_budget__read(struct vma_budget *vb)
{
	char buf[65536];
	unsigned long long max;
	ssize_t n;
	FILE *f;
	int fd;

	f = fopen("/proc/sys/vm/max_map_count", "re");
	if (!f)
		return -errno;
	if (fscanf(f, "%llu", &max) != 1) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	vb->max_map_count = max;
	vb->in_use = 0;
	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			vb->in_use += buf[i] == '\n';
	close(fd);
	return n < 0 ? -EIO : 0;
}

uint64_t vma_budget__available(const struct vma_budget *vb, uint64_t headroom)
{
	uint64_t used = vb->in_use + headroom;

	return vb->max_map_count > used ? vb->max_map_count - used : 0;
}

int vma_budget__check_with(const struct vma_budget *vb, uint64_t needed, uint64_t headroom,
			   char *err, size_t errlen)
{
	uint64_t avail = vma_budget__available(vb, headroom), want;

	if (needed <= avail)
		return 0;
	/* Suggest room for what is in use, the window, the headroom and a quarter more for
	 * the mappings that 4 KiB moves add while compaction runs; a multiple of 64 Ki. */
	want = (vb->in_use + needed + headroom) * 5 / 4;
	want = (want + 65535) & ~65535ULL;
	mm__set_msg(err, errlen,
		"guest window needs %" PRIu64 " mappings but only %" PRIu64 " are available "
		"(vm.max_map_count = %" PRIu64 ", %" PRIu64 " in use). Raise it with: "
		"sysctl -w vm.max_map_count=%" PRIu64 " (or run scripts/setup.sh --raise-map-count=%" PRIu64 ")",
		needed, avail, vb->max_map_count, vb->in_use, want, want);
	return -ENOMEM;
}

int vma_budget__check(uint64_t needed, char *err, size_t errlen)
{
	struct vma_budget vb;
	int ret = vma_budget__read(&vb);

	if (ret) {
		mm__set_msg(err, errlen, "read the VMA budget (/proc/sys/vm/max_map_count, /proc/self/maps): %s",
			strerror(-ret));
		return ret;
	}
	return vma_budget__check_with(&vb, needed, VMA_BUDGET_HEADROOM, err, errlen);
}
