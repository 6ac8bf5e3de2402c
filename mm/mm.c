/* mm.c: the guest memory manager: builds pool, buddy, GPA map and window, and reports on them. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/mm.h"
#include "mm/util.h"

#define MM_REGION_BYTES (1ULL << (MM_PAGE_SHIFT + MM_PAGEBLOCK_ORDER))
#define MM_MADV_COLLAPSE 25 /* Linux 6.1 */

uint64_t mm__metadata_bytes(uint32_t nr_gpfns, uint32_t nr_frames)
{
	uint64_t regions = ((uint64_t)nr_gpfns + MM_PAGEBLOCK_FRAMES - 1) / MM_PAGEBLOCK_FRAMES;
	uint64_t blocks = ((uint64_t)nr_frames + MM_PAGEBLOCK_FRAMES - 1) / MM_PAGEBLOCK_FRAMES;

	return buddy__metadata_bytes(nr_frames) + gpamap__metadata_bytes(nr_gpfns, nr_frames) +
	       blocks * (2 + sizeof(int)) +                /* pool.block_huge, _present, _fd */
	       ((uint64_t)nr_gpfns + 63) / 64 * 8 +        /* window.vma_start */
	       regions +                                   /* region_huge_mapped */
	       sizeof(struct mm);
}

static int mm__prefault_exposed(struct mm *mm, char *err, size_t errlen)
{
	uint64_t t = mm__now_ns();
	int ret;

	mm->block_prefaulted = calloc(mm->pool.nr_blocks, 1);
	if (!mm->block_prefaulted) {
		mm__set_msg(err, errlen, "mm: out of memory for %u block flags", mm->pool.nr_blocks);
		return -ENOMEM;
	}
	/* 1: holds a guest page the guest reaches through a 4 KiB mapping */
	for (frame_t f = 0; f < mm->map.nr_frames; f++) {
		gpfn_t g = gpamap__gpfn(&mm->map, f);

		if (g != GPFN_NONE && !mm->region_huge_mapped[g >> MM_PAGEBLOCK_ORDER])
			mm->block_prefaulted[f >> MM_PAGEBLOCK_ORDER] = 1;
	}
	ret = pool__prefault_blocks(&mm->pool, mm->block_prefaulted, 1, err, errlen);
	mm->startup.prefault_ns = mm__now_ns() - t;
	return ret;
}

/* Fault the pool in while the guest already runs; then learn which blocks are huge. */
static void *mm__prefault_thread(void *arg)
{
	struct mm *mm = arg;
	uint64_t t = mm__now_ns();
	int rc;

	/* One thread, in the background: the vCPUs' start must not wait for a free core. */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10))
		(void)0; /* only a preference */
	rc = pool__prefault_blocks(&mm->pool, mm->block_prefaulted, 0, mm->prefault_err, sizeof(mm->prefault_err));

	pthread_mutex_lock(&mm->lock);
	pool__refresh_huge(&mm->pool);
	pthread_mutex_unlock(&mm->lock);
	pthread_mutex_lock(&mm->ready_lock);
	mm->startup.prefault_ns = mm__now_ns() - t;
	mm->prefault_rc = rc;
	mm->ready = true;
	pthread_cond_broadcast(&mm->ready_cond);
	pthread_mutex_unlock(&mm->ready_lock);
	return NULL;
}

int mm__wait_ready(struct mm *mm)
{
	int rc;

	pthread_mutex_lock(&mm->ready_lock);
	while (!mm->ready)
		pthread_cond_wait(&mm->ready_cond, &mm->ready_lock);
	rc = mm->prefault_rc;
	pthread_mutex_unlock(&mm->ready_lock);
	return rc;
}

uint64_t mm__meminfo_bytes(const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	unsigned long long kb = 0;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			sscanf(line + klen + 1, "%llu", &kb);
			break;
		}
	fclose(f);
	return (uint64_t)kb << 10;
}

/* The pool is host memory the VMM touches all of: refuse one the host cannot hold (borrowing
 * is bounded by MemAvailable when it happens, so it is not counted here). */
static int mm__check_host_memory(const struct mm_config *cfg, uint64_t pool_bytes, char *err, size_t errlen)
{
	uint64_t avail = cfg->fake_mem_available ? cfg->fake_mem_available : mm__meminfo_bytes("MemAvailable");

	if (cfg->force_mem || !avail || pool_bytes <= avail)
		return 0;
	mm__set_msg(err, errlen, "the pool needs %" PRIu64 " MiB (guest %" PRIu64 " MiB + slack %" PRIu64 " MiB) but "
		"the host has %" PRIu64 " MiB available (MemAvailable): use a smaller --mem or --slack, or --force-mem "
		"to start anyway", pool_bytes >> 20, cfg->guest_bytes >> 20, (pool_bytes - cfg->guest_bytes) >> 20,
		avail >> 20);
	return -ENOMEM;
}

uint32_t mm__fault_in_free_blocks(struct mm *mm)
{
	uint32_t n = 0;
	char err[160];

	pool__refresh_huge(&mm->pool);
	for (uint32_t b = 0; b < mm->pool.nr_blocks; b++) {
		frame_t head, f0 = b << MM_PAGEBLOCK_ORDER;
		unsigned order;

		if (!pool__block_present(&mm->pool, b) || mm->pool.block_huge[b])
			continue;
		if (!buddy__free_block_of(&mm->buddy, f0, &head, &order) || order < MM_PAGEBLOCK_ORDER) {
			/* In use, first touched through 4 KiB mappings: let the kernel collapse the block's
			 * file into one huge page (its pages are copied; mappings follow, KVM's through its
			 * MMU notifier). */
			if (!madvise(mm->pool.base + ((uint64_t)b << (MM_PAGE_SHIFT + MM_PAGEBLOCK_ORDER)),
				     1ULL << (MM_PAGE_SHIFT + MM_PAGEBLOCK_ORDER), MM_MADV_COLLAPSE)) {
				pool__refresh_block(&mm->pool, b);
				n += mm->pool.block_huge[b];
			}
			continue;
		}
		/* Nothing maps it but the direct map: a new file there faults in as one huge page. */
		pool__block_drop(&mm->pool, b);
		if (pool__block_add(&mm->pool, b, true, err, sizeof(err)) &&
		    pool__block_add(&mm->pool, b, false, err, sizeof(err))) {
			/* Not even a file (fd limit, filesystem full): the block leaves the allocator. */
			buddy__take_block(&mm->buddy, f0, MM_PAGEBLOCK_ORDER);
			for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++)
				gpamap__set_owner(&mm->map, f0 + i, FRAME_ABSENT);
			continue;
		}
		n += mm->pool.block_huge[b];
	}
	return n;
}

/* The pool's sizes, each rounded up to whole 2 MiB regions. */
struct mm_sizes {
	uint64_t slack, pool_bytes, capacity;
};

/* Size the pool from cfg; refuse what 32-bit frame numbers or the host cannot hold. */
static int mm__size_pool(const struct mm_config *cfg, struct mm_sizes *sz, char *err, size_t errlen)
{
	if (!cfg->guest_bytes || cfg->guest_bytes % MM_REGION_BYTES) {
		mm__set_msg(err, errlen, "guest RAM %" PRIu64 " bytes is not a positive multiple of 2 MiB",
			cfg->guest_bytes);
		return -EINVAL;
	}
	sz->slack = (cfg->slack_bytes + MM_REGION_BYTES - 1) / MM_REGION_BYTES * MM_REGION_BYTES;
	sz->pool_bytes = cfg->guest_bytes + sz->slack;
	if (sz->pool_bytes < cfg->guest_bytes || (sz->pool_bytes >> MM_PAGE_SHIFT) >= FRAME_NONE) {
		mm__set_msg(err, errlen, "pool of %" PRIu64 " MiB guest + %" PRIu64 " MiB slack has too many "
			"4 KiB frames for 32-bit frame numbers (at most 16 TiB)", cfg->guest_bytes >> 20, sz->slack >> 20);
		return -EINVAL;
	}
	sz->capacity = sz->pool_bytes +
		       (cfg->borrow_capacity_bytes + MM_REGION_BYTES - 1) / MM_REGION_BYTES * MM_REGION_BYTES;
	if (sz->capacity < sz->pool_bytes || (sz->capacity >> MM_PAGE_SHIFT) >= FRAME_NONE) {
		mm__set_msg(err, errlen, "pool of %" PRIu64 " MiB with %" PRIu64 " MiB to borrow has too many 4 KiB "
			"frames for 32-bit frame numbers (at most 16 TiB)", sz->pool_bytes >> 20,
			cfg->borrow_capacity_bytes >> 20);
		return -EINVAL;
	}
	return mm__check_host_memory(cfg, sz->pool_bytes, err, errlen);
}

/* Buddy allocator and GPA map over the pool's frames, with the guest's pages placed by the
 * configured layout or by aging. */
static int mm__create_map(struct mm *mm, const struct mm_sizes *sz, char *err, size_t errlen)
{
	uint32_t nr_gpfns = (uint32_t)(mm->cfg.guest_bytes >> MM_PAGE_SHIFT);
	uint32_t nr_frames = (uint32_t)(sz->pool_bytes >> MM_PAGE_SHIFT);
	int ret;

	ret = buddy__init(&mm->buddy, nr_frames);
	if (ret) {
		mm__set_msg(err, errlen, "buddy allocator over %u frames: %s", nr_frames, strerror(-ret));
		return ret;
	}
	ret = gpamap__init(&mm->map, nr_gpfns, nr_frames);
	if (ret) {
		mm__set_msg(err, errlen, "GPA map of %u pages over %u frames: %s", nr_gpfns, nr_frames, strerror(-ret));
		goto err_buddy;
	}
	ret = mm->cfg.layout ? mm_layout__place(&mm->buddy, &mm->map, mm->cfg.layout, err, errlen) :
			       aging__place(&mm->buddy, &mm->map, &mm->cfg.aging, err, errlen);
	if (ret)
		goto err_map;
	return 0;

err_map:
	gpamap__exit(&mm->map);
err_buddy:
	buddy__exit(&mm->buddy);
	return ret;
}

/* A replayed layout may say some blocks were given back to the host: give them back now. */
static void mm__drop_absent_blocks(struct mm *mm)
{
	for (uint32_t b = 0; b < mm->pool.nr_blocks; b++)
		if (pool__block_present(&mm->pool, b) &&
		    gpamap__owner(&mm->map, (frame_t)b << MM_PAGEBLOCK_ORDER) == FRAME_ABSENT)
			pool__block_drop(&mm->pool, b);
}

/* Frame space for borrowed blocks comes after the pool; it starts absent. */
static int mm__reserve_borrow_frames(struct mm *mm, const struct mm_sizes *sz, char *err, size_t errlen)
{
	int ret;

	if (sz->capacity <= sz->pool_bytes)
		return 0;
	ret = buddy__grow(&mm->buddy, (uint32_t)(sz->capacity >> MM_PAGE_SHIFT));
	if (!ret)
		ret = gpamap__grow(&mm->map, (uint32_t)(sz->capacity >> MM_PAGE_SHIFT));
	if (ret)
		mm__set_msg(err, errlen, "frame space for %" PRIu64 " MiB of borrowing: %s",
			(sz->capacity - sz->pool_bytes) >> 20, strerror(-ret));
	return ret;
}

static int mm__create_pool(struct mm *mm, const struct mm_sizes *sz, char *err, size_t errlen)
{
	struct pool_config pc;
	uint64_t needed, t;
	int ret;

	/* Refuse before prefaulting gigabytes if the window cannot be mapped: the window's
	 * mappings plus one per pool block (each block is its own file in the direct map). */
	needed = window__vmas_needed(&mm->map) + sz->pool_bytes / MM_REGION_BYTES;
	ret = vma_budget__check(needed, err, errlen);
	if (ret)
		return ret;

	t = mm__now_ns();
	pc = (struct pool_config){ .size = sz->pool_bytes, .capacity = sz->capacity, .path = mm->cfg.pool_path,
				   .prefault = mm->cfg.prefault && !mm->cfg.prefault_async };
	ret = pool__create(&mm->pool, &pc, err, errlen);
	if (ret)
		return ret;
	mm->startup.pool_ns = mm__now_ns() - t;
	mm->startup.prefault_ns = mm->pool.prefault_ns;
	return 0;
}

/* The guest's window onto the pool, every page mapped; which regions got one 2 MiB mapping. */
static int mm__create_window(struct mm *mm, char *err, size_t errlen)
{
	uint64_t t = mm__now_ns();
	int ret;

	ret = window__create(&mm->win, mm->cfg.guest_bytes, mm->pool.block_fd, err, errlen);
	if (ret)
		return ret;
	/* MADV_HUGEPAGE per window mapping costs ~2.5 us per 4 KiB remap: only where it matters. */
	mm->win.hugepage_advice = !mm->pool.huge_always;
	ret = window__map_all(&mm->win, &mm->map, err, errlen);
	if (ret)
		goto err_win;
	mm->startup.map_ns = mm__now_ns() - t;

	mm->region_huge_mapped = calloc(mm->map.nr_regions, 1);
	if (!mm->region_huge_mapped) {
		mm__set_msg(err, errlen, "mm: out of memory for %u region flags", mm->map.nr_regions);
		ret = -ENOMEM;
		goto err_win;
	}
	/* map_all gave every in-order region a mapping covering its whole aligned 2 MiB. */
	for (uint32_t r = 0; r < mm->map.nr_regions; r++)
		mm->region_huge_mapped[r] = gpamap__region_in_order(&mm->map, r);
	return 0;

err_win:
	window__destroy(&mm->win);
	return ret;
}

/* With an asynchronous prefault: fault in what the guest would see 4 KiB-backed, start the
 * thread for the rest. */
static int mm__start_prefault(struct mm *mm, char *err, size_t errlen)
{
	int ret;

	pthread_mutex_init(&mm->ready_lock, NULL);
	pthread_cond_init(&mm->ready_cond, NULL);
	mm->ready = !(mm->cfg.prefault && mm->cfg.prefault_async);
	if (mm->ready)
		return 0;
	/*
	 * A block the guest reaches through 4 KiB window mappings would get 4 KiB pages on
	 * its first touch, and stay so: fault those in now, before any vCPU runs. Blocks
	 * holding an in-order region are mapped 2 MiB and become huge whoever touches them
	 * first; they, and the rest, are faulted in by the thread.
	 */
	ret = mm__prefault_exposed(mm, err, errlen);
	if (ret)
		goto err_ready;
	ret = pthread_create(&mm->prefault_thread, NULL, mm__prefault_thread, mm);
	if (ret) {
		mm__set_msg(err, errlen, "mm: cannot start the prefault thread: %s", strerror(ret));
		ret = -ret;
		goto err_ready;
	}
	mm->prefault_thread_started = true;
	return 0;

err_ready:
	pthread_cond_destroy(&mm->ready_cond);
	pthread_mutex_destroy(&mm->ready_lock);
	free(mm->block_prefaulted);
	mm->block_prefaulted = NULL;
	return ret;
}

int mm__create(struct mm *mm, const struct mm_config *cfg, char *err, size_t errlen)
{
	struct mm_sizes sz;
	uint64_t t0 = mm__now_ns();
	int ret;

	memset(mm, 0, sizeof(*mm));
	mm->pool.dir_fd = -1;
	ret = mm__size_pool(cfg, &sz, err, errlen);
	if (ret)
		return ret;
	mm->cfg = *cfg;
	mm->cfg.slack_bytes = sz.slack;
	ret = pthread_mutex_init(&mm->lock, NULL);
	if (ret) {
		mm__set_msg(err, errlen, "mm lock: %s", strerror(ret));
		return -ret;
	}

	/* The layout first: it decides the VMA count, and costs no memory of the pool. */
	ret = mm__create_map(mm, &sz, err, errlen);
	if (ret)
		goto err_lock;
	mm->startup.layout_ns = mm__now_ns() - t0;
	ret = mm__reserve_borrow_frames(mm, &sz, err, errlen);
	if (ret)
		goto err_map;
	ret = mm__create_pool(mm, &sz, err, errlen);
	if (ret)
		goto err_map;
	mm__drop_absent_blocks(mm);
	ret = mm__create_window(mm, err, errlen);
	if (ret)
		goto err_pool;
	ret = mm__start_prefault(mm, err, errlen);
	if (ret)
		goto err_flags;
	mm->startup.total_ns = mm__now_ns() - t0;
	return 0;

err_flags:
	free(mm->region_huge_mapped);
	mm->region_huge_mapped = NULL;
	window__destroy(&mm->win);
err_pool:
	pool__destroy(&mm->pool);
err_map:
	gpamap__exit(&mm->map);
	buddy__exit(&mm->buddy);
err_lock:
	pthread_mutex_destroy(&mm->lock);
	return ret;
}

void mm__destroy(struct mm *mm)
{
	if (mm->prefault_thread_started)
		pthread_join(mm->prefault_thread, NULL);
	pthread_cond_destroy(&mm->ready_cond);
	pthread_mutex_destroy(&mm->ready_lock);
	free(mm->block_prefaulted);
	free(mm->region_huge_mapped);
	free(mm->region_view);
	window__destroy(&mm->win);
	pool__destroy(&mm->pool);
	gpamap__exit(&mm->map);
	buddy__exit(&mm->buddy);
	pthread_mutex_destroy(&mm->lock);
	memset(mm, 0, sizeof(*mm));
	mm->pool.dir_fd = -1;
}

/*
 * An upper bound on the regions that can end up in order on a host-huge block.
 * A region in order needs a whole block that is a host huge page ("clean": huge
 * and holding no unmovable frame), and that block then holds nothing else. The
 * movable ballast must live somewhere: first in the room the unclean blocks have
 * besides their unmovable frames; what does not fit there ("overflow") takes
 * clean blocks, at least ceil(overflow / 512) of them. So
 *     achievable = min(nr_regions, clean - ceil(overflow / 512)).
 * Guest pages of regions that are not in order need no extra room: the pool
 * holds everything now, so the movable frames (guest + ballast) always fit in
 * the unclean room plus the clean blocks, whatever the number in order.
 * Frames in transit (FRAME_ISOLATED) are counted as movable room.
 */
uint32_t mm__achievable_regions(const struct mm *mm)
{
	const struct gpamap *m = &mm->map;
	uint32_t nr_blocks = m->nr_frames / MM_PAGEBLOCK_FRAMES, clean = 0, taken;
	uint64_t room = 0, movable = m->nr_owned[FRAME_BALLAST_MOVABLE], overflow;

	for (uint32_t blk = 0; blk < nr_blocks; blk++) {
		const uint8_t *own = m->frame_owner + ((size_t)blk << MM_PAGEBLOCK_ORDER);
		uint32_t unmovable = 0;

		if (!pool__block_present(&mm->pool, blk))
			continue;
		for (uint32_t p = 0; p < MM_PAGEBLOCK_FRAMES; p++)
			unmovable += own[p] == FRAME_BALLAST_UNMOVABLE;
		if (!unmovable && mm->pool.block_huge[blk])
			clean++;
		else
			room += MM_PAGEBLOCK_FRAMES - unmovable;
	}
	overflow = movable > room ? movable - room : 0;
	taken = (uint32_t)((overflow + MM_PAGEBLOCK_FRAMES - 1) / MM_PAGEBLOCK_FRAMES);
	clean = clean > taken ? clean - taken : 0;
	return clean < m->nr_regions ? clean : m->nr_regions;
}

void mm__stat(struct mm *mm, struct mm_stat *st)
{
	const struct gpamap *m = &mm->map;
	const struct buddy *b = &mm->buddy;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&mm->lock);
	st->guest_bytes = mm->cfg.guest_bytes;
	st->slack_bytes = mm->cfg.slack_bytes;
	st->pool_bytes = pool__present_bytes(&mm->pool);
	st->pool_capacity_bytes = mm->pool.size;
	st->nr_regions = m->nr_regions;
	for (uint32_t r = 0; r < m->nr_regions; r++) {
		if (!gpamap__region_in_order(m, r))
			continue;
		st->regions_in_order++;
		st->regions_backed_2m += pool__block_is_huge(&mm->pool, gpamap__frame(m, r << MM_PAGEBLOCK_ORDER));
	}
	st->regions_achievable = mm__achievable_regions(mm);
	if (m->nr_regions) {
		st->backing_2m = (double)st->regions_backed_2m / m->nr_regions;
		st->backing_2m_achievable = (double)st->regions_achievable / m->nr_regions;
	}
	for (unsigned o = 0; o < MM_MAX_ORDER; o++) {
		struct contig_page_info info;

		st->nr_free[o] = b->area[o].nr_free;
		for (int mt = 0; mt < MIGRATE_TYPES; mt++)
			st->nr_free_mt[o][mt] = b->area[o].nr_free_mt[mt];
		buddy__contig_page_info(b, o, &info);
		st->fragindex[o] = fragmentation_index(&info, o);
		st->unusable[o] = unusable_free_index(&info, o);
	}
	buddy__pageblock_counts(b, st->pageblocks_mt);
	st->frag_score = buddy__fragmentation_score(b);
	for (int o = 0; o < FRAME_OWNERS; o++)
		st->frames_owned[o] = m->nr_owned[o];
	st->vmas = mm->win.nr_vmas;
	st->view_attached = mm->view != NULL;
	st->view = mm->view_stats;
	for (uint32_t r = 0; mm->region_view && r < mm->map.nr_regions; r++)
		st->regions_direct += mm->region_view[r] & MM_VIEW_DIRECT;
	st->huge_blocks = mm->pool.nr_huge_blocks;
	st->huge_exact = mm->pool.huge_exact;
	st->metadata_bytes = mm__metadata_bytes(m->nr_gpfns, m->nr_frames);
	st->backing = mm->pool.backing;
	st->vmstat = mm->vmstat;
	pthread_mutex_unlock(&mm->lock);
}
