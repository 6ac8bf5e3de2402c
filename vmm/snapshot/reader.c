/* reader.c: open and check a snapshot file, then restore its memory records into a fresh mm (eager). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "mm/util.h"
#include "vmm/snapshot/internal.h"

/* Read a section into a new aligned buffer and check its CRC. */
static int file__section(struct snap_file *f, uint64_t off, uint64_t len, uint32_t crc, const char *what,
			 void **out, char *err, size_t errlen)
{
	uint8_t *buf = snap_io__alloc(len);
	uint32_t got;
	int ret;

	*out = NULL;
	if (!buf) {
		snprintf(err, errlen, "snapshot: out of memory for the %s section (%" PRIu64 " bytes)", what, len);
		return -ENOMEM;
	}
	ret = len ? snap_io__pread_all(&f->io, buf, len, off) : 0;
	if (ret) {
		snprintf(err, errlen, "snapshot: read the %s section: %s", what, ret == -EIO ? "file too short" :
			 strerror(-ret));
		free(buf);
		return ret == -EIO ? -EINVAL : ret;
	}
	got = snap__crc32c(0, buf, len);
	if (got != crc) {
		snprintf(err, errlen, "snapshot: %s section checksum mismatch (stored %08x, computed %08x)", what, crc, got);
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	return 0;
}

static int file__layout(struct snap_file *f, char *err, size_t errlen)
{
	const struct snap_header *h = &f->h;
	void *sec;
	int ret = file__section(f, h->layout_off, h->layout_len, h->layout_crc, "layout", &sec, err, errlen);
	const struct snap_layout_hdr *lh = sec;

	if (ret)
		return ret;
	ret = snap__layout_check(h, sec, h->layout_len, err, errlen);
	if (!ret) {
		ret = mm_layout__alloc(&f->layout, lh->nr_gpfns, lh->nr_frames);
		if (ret)
			snprintf(err, errlen, "snapshot: out of memory for the layout");
	}
	if (!ret) {
		memcpy(f->layout.frame_tag, lh + 1, (size_t)lh->nr_frames * 4);
		memcpy(f->layout.pageblock_mt, (const uint8_t *)(lh + 1) + (size_t)lh->nr_frames * 4, lh->nr_pageblocks);
		f->has_layout = true;
		ret = mm_layout__check(&f->layout, err, errlen);
	}
	free(sec);
	return ret;
}

static int file__table(struct snap_file *f, char *err, size_t errlen)
{
	const struct snap_header *h = &f->h;
	uint64_t present = 0;
	void *sec;
	int ret = file__section(f, h->table_off, h->table_len, h->table_crc, "region table", &sec, err, errlen);

	if (ret)
		return ret;
	f->table = sec;
	for (uint32_t r = 0; r < h->nr_regions; r++) {
		ret = snap__region_check(&f->table[r], r, err, errlen);
		if (ret)
			return ret;
		present += f->table[r].nr_present;
	}
	if (present != h->present_pages) {
		snprintf(err, errlen, "snapshot: the region table holds %" PRIu64 " pages, the header says %" PRIu64,
			 present, h->present_pages);
		return -EINVAL;
	}
	return 0;
}

int snap_file__open(struct snap_file *f, const char *path, unsigned depth, char *err, size_t errlen)
{
	uint8_t *block = NULL;
	struct stat sb;
	void *vcpus;
	int ret;

	memset(f, 0, sizeof(*f));
	ret = snap_io__open(&f->io, path, false, depth, err, errlen);
	if (ret)
		return ret;
	if (fstat(f->io.fd, &sb) || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "snapshot: %s is not a regular file", path);
		ret = -EINVAL;
		goto fail;
	}
	f->file_size = (uint64_t)sb.st_size;
	block = snap_io__alloc(SNAP_HEADER_SIZE);
	ret = block ? 0 : -ENOMEM;
	if (!ret && f->file_size >= SNAP_HEADER_SIZE)
		ret = snap_io__pread_all(&f->io, block, SNAP_HEADER_SIZE, 0);
	if (!ret)
		ret = snap__header_check(block, f->file_size, &f->h, err, errlen);
	else
		snprintf(err, errlen, "snapshot: read the header of %s: %s", path, strerror(-ret));
	free(block);
	if (ret)
		goto fail;
	ret = file__section(f, f->h.vcpu_off, f->h.vcpu_len, f->h.vcpu_crc, "vCPU", &vcpus, err, errlen);
	if (ret)
		goto fail;
	f->vcpus = vcpus;
	for (uint32_t i = 0; i < f->h.nr_vcpus; i++)
		if (f->vcpus[i].id != i || f->vcpus[i].nr_msrs > SNAP_MAX_MSRS) {
			snprintf(err, errlen, "snapshot: vCPU %u's state is malformed (id %u, %u MSRs)", i,
				 f->vcpus[i].id, f->vcpus[i].nr_msrs);
			ret = -EINVAL;
			goto fail;
		}
	if (f->h.flags & SNAP_F_LAYOUT) {
		ret = file__layout(f, err, errlen);
		if (ret)
			goto fail;
	}
	ret = file__table(f, err, errlen);
	if (ret)
		goto fail;
	return 0;
fail:
	snap_file__close(f);
	return ret;
}

void snap_file__close(struct snap_file *f)
{
	snap_io__close(&f->io);
	free(f->table);
	free(f->vcpus);
	if (f->has_layout)
		mm_layout__free(&f->layout);
	memset(f, 0, sizeof(*f));
	f->io.fd = -1;
}

int snap_file__mm_config(const struct snap_file *f, bool use_layout, struct mm_config *cfg, char *err, size_t errlen)
{
	const struct snap_header *h = &f->h;

	if (use_layout && !f->has_layout) {
		snprintf(err, errlen, "snapshot: --restore-layout, but the snapshot was saved without its layout");
		return -EINVAL;
	}
	memset(cfg, 0, sizeof(*cfg));
	cfg->guest_bytes = h->guest_bytes;
	cfg->slack_bytes = h->pool_bytes - h->guest_bytes;
	if (f->has_layout && !use_layout) {
		/* pool_bytes is the saved frame space, borrowable blocks included: a linear restore
		 * gets the blocks that were present */
		uint64_t absent = 0;

		for (uint32_t i = 0; i < f->layout.nr_frames; i++)
			absent += f->layout.frame_tag[i] == MM_LAYOUT_ABSENT;
		cfg->slack_bytes -= absent << MM_PAGE_SHIFT;
	}
	cfg->aging = (struct aging_config)AGING_DEFAULTS;
	cfg->aging.ballast = h->ballast;
	cfg->aging.unmovable = h->unmovable;
	cfg->aging.unmovable_scatter = h->unmovable_scatter;
	cfg->aging.seed = h->seed;
	if (use_layout) {
		cfg->aging.age = h->age;
		cfg->layout = &f->layout;
	}
	return 0;
}

void snap__region_place(struct mm *mm, uint32_t r, const struct snap_region *e, const uint8_t *buf)
{
	gpfn_t g0 = r * SNAP_PAGES_PER_REGION;
	unsigned p = 0, start, n;

	if (e->nr_present == SNAP_PAGES_PER_REGION && gpamap__region_in_order(&mm->map, r)) {
		memcpy(pool__frame_ptr(&mm->pool, gpamap__frame(&mm->map, g0)), buf, SNAP_REGION_SIZE);
		return;
	}
	while (snap__next_run(e, &p, &start, &n))
		for (unsigned i = start; i < start + n; i++)
			memcpy(pool__frame_ptr(&mm->pool, gpamap__frame(&mm->map, g0 + i)),
			       buf + (size_t)i * SNAP_PAGE_SIZE, SNAP_PAGE_SIZE);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * The restore helper runs beside the reader. It faults the pool in from the last block down while
 * the reader's records land in GPA order from the first block up (a read into a block faults it
 * in); whoever claims a block first faults it, and they meet in the middle: cold host huge pages
 * cost milliseconds each, so this overlaps the two costs instead of adding them. Between blocks,
 * and after they met, it checks the CRCs of the regions read straight into their blocks, so that
 * the reader only waits for the file system.
 */
struct restore_helper {
	struct mm *mm;
	const struct snap_file *f;
	uint8_t *claimed;          /* per pool block, atomic */
	uint32_t *to_check;        /* regions read straight into their blocks, in completion order */
	uint32_t nr_queued;        /* under lock */
	uint32_t nr_checked;       /* helper only */
	bool reads_done, stop;     /* under lock */
	uint32_t faulted;
	bool bad;                  /* the first mismatch, under lock */
	uint32_t bad_region, bad_crc;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started;
};

static bool restore_helper__claim(struct restore_helper *h, uint32_t b)
{
	return !__atomic_exchange_n(&h->claimed[b], 1, __ATOMIC_ACQ_REL);
}

/* Check the queued regions' CRCs; with wait, until the reader is done and all are checked. */
static void restore_helper__check(struct restore_helper *h, bool wait)
{
	pthread_mutex_lock(&h->lock);
	for (;;) {
		while (h->nr_checked < h->nr_queued && !h->bad && !h->stop) {
			uint32_t r = h->to_check[h->nr_checked++];
			const struct snap_region *e = &h->f->table[r];
			uint32_t crc;

			pthread_mutex_unlock(&h->lock);
			crc = snap__region_crc(e, pool__frame_ptr(&h->mm->pool, gpamap__frame(&h->mm->map,
						      r * SNAP_PAGES_PER_REGION)));
			pthread_mutex_lock(&h->lock);
			if (crc != e->crc && !h->bad) {
				__atomic_store_n(&h->bad, true, __ATOMIC_RELAXED);
				h->bad_region = r;
				h->bad_crc = crc;
			}
		}
		if (!wait || h->bad || h->stop || (h->reads_done && h->nr_checked == h->nr_queued))
			break;
		pthread_cond_wait(&h->cond, &h->lock);
	}
	pthread_mutex_unlock(&h->lock);
}

static void *restore_helper__thread(void *opaque)
{
	struct restore_helper *h = opaque;

	for (uint32_t b = h->mm->pool.nr_blocks; b-- > 0 && !__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE);) {
		restore_helper__check(h, false);
		if (!restore_helper__claim(h, b))
			continue;
		/* an absent block (PROT_NONE: borrowable space) just fails; nothing to fault */
		if (!madvise(pool__frame_ptr(&h->mm->pool, b * MM_PAGEBLOCK_FRAMES), SNAP_REGION_SIZE,
			     MADV_POPULATE_WRITE))
			h->faulted++;
	}
	restore_helper__check(h, true);
	return NULL;
}

static void restore_helper__queue(struct restore_helper *h, uint32_t r)
{
	pthread_mutex_lock(&h->lock);
	h->to_check[h->nr_queued++] = r;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

static int restore_helper__start(struct restore_helper *h, struct snap_file *f, struct mm *mm)
{
	h->mm = mm;
	h->f = f;
	h->claimed = calloc(mm->pool.nr_blocks, 1);
	h->to_check = calloc(f->h.nr_regions, sizeof(*h->to_check));
	if (!h->claimed || !h->to_check)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->started = !pthread_create(&h->thread, NULL, restore_helper__thread, h);
	return 0;
}

/* The reads are over (failed: stop at once); wait for the checks. */
static int restore_helper__finish(struct restore_helper *h, bool failed, char *err, size_t errlen)
{
	int ret = 0;

	if (h->claimed && h->to_check) {
		pthread_mutex_lock(&h->lock);
		h->reads_done = true;
		if (failed)
			__atomic_store_n(&h->stop, true, __ATOMIC_RELEASE);
		pthread_cond_signal(&h->cond);
		pthread_mutex_unlock(&h->lock);
		if (h->started)
			pthread_join(h->thread, NULL);
		else if (!failed)
			restore_helper__check(h, true); /* no thread: check here */
		if (h->bad && (!failed || !err[0])) {
			const struct snap_region *e = &h->f->table[h->bad_region];

			snprintf(err, errlen, "snapshot: region %u (GPA 0x%" PRIx64 ") checksum mismatch (stored %08x, "
				 "computed %08x)", h->bad_region, (uint64_t)h->bad_region * SNAP_REGION_SIZE, e->crc,
				 h->bad_crc);
			ret = -EINVAL;
		}
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->lock);
	}
	free(h->claimed);
	free(h->to_check);
	return ret;
}

struct read_ctx {
	struct snap_file *f;
	struct mm *mm;
	struct restore_helper helper;
	struct snap_slots slots;
	char *err;
	size_t errlen;
};

static int read_done(void *opaque, unsigned slot, uint32_t len, int res)
{
	struct read_ctx *c = opaque;
	uint32_t r = c->slots.region[slot];
	const struct snap_region *e;
	uint32_t crc;

	if (res != (int)len) {
		snprintf(c->err, c->errlen, "snapshot: read of region %u: %s", r,
			 res < 0 ? strerror(-res) : "short read (file truncated?)");
		return res < 0 ? res : -EINVAL;
	}
	if (--c->slots.pending[slot])
		return 0;
	e = &c->f->table[r];
	if (c->slots.direct[slot] && c->helper.to_check) {
		if (__atomic_load_n(&c->helper.bad, __ATOMIC_RELAXED))
			return -EINVAL; /* the helper found a bad region: stop reading, it says which */
		restore_helper__queue(&c->helper, r);
		c->slots.free[c->slots.nr_free++] = slot;
		return 0;
	}
	crc = snap__region_crc(e, c->slots.direct[slot] ? pool__frame_ptr(&c->mm->pool, gpamap__frame(&c->mm->map,
			       r * SNAP_PAGES_PER_REGION)) : snap_io__buf(&c->f->io, slot));
	if (crc != e->crc) {
		snprintf(c->err, c->errlen, "snapshot: region %u (GPA 0x%" PRIx64 ") checksum mismatch (stored %08x, "
			 "computed %08x)", r, (uint64_t)r * SNAP_REGION_SIZE, e->crc, crc);
		return -EINVAL;
	}
	if (!c->slots.direct[slot]) {
		if (c->helper.claimed && gpamap__region_in_order(&c->mm->map, r))
			restore_helper__claim(&c->helper, gpamap__frame(&c->mm->map, r * SNAP_PAGES_PER_REGION) /
					      MM_PAGEBLOCK_FRAMES);
		snap__region_place(c->mm, r, e, snap_io__buf(&c->f->io, slot));
	}
	c->slots.free[c->slots.nr_free++] = slot;
	return 0;
}

/*
 * A whole region onto its own block: read it straight there (the read faults the block in as one
 * huge page), no staging copy. The guest does not run yet, so nothing else sees the block.
 */
static int read__queue_direct(struct read_ctx *c, uint32_t r)
{
	struct snap_file *f = c->f;
	uint8_t *block = pool__frame_ptr(&c->mm->pool, gpamap__frame(&c->mm->map, r * SNAP_PAGES_PER_REGION));
	unsigned slot = c->slots.free[--c->slots.nr_free];
	int ret;

	if (c->helper.claimed)
		restore_helper__claim(&c->helper, (uint32_t)((block - c->mm->pool.base) / SNAP_REGION_SIZE));
	c->slots.region[slot] = r;
	c->slots.direct[slot] = 1;
	ret = snap_io__queue_at(&f->io, false, slot, block, SNAP_REGION_SIZE, f->h.data_off + (uint64_t)r * SNAP_REGION_SIZE);
	c->slots.pending[slot] = !ret;
	return ret;
}

/* Queue the reads of region r's present runs into a free staging buffer. */
int snap__queue_region_read(struct snap_file *f, struct snap_slots *s, uint32_t r)
{
	const struct snap_region *e = &f->table[r];
	uint64_t off = f->h.data_off + (uint64_t)r * SNAP_REGION_SIZE;
	unsigned slot = s->free[--s->nr_free], p = 0, start, n;
	int ret = 0;

	s->region[slot] = r;
	s->direct[slot] = 0;
	while (!ret && snap__next_run(e, &p, &start, &n)) {
		ret = snap_io__queue(&f->io, false, slot, start * SNAP_PAGE_SIZE, n * SNAP_PAGE_SIZE,
				     off + (uint64_t)start * SNAP_PAGE_SIZE);
		s->pending[slot] += !ret;
	}
	return ret;
}

int snap_file__restore(struct snap_file *f, struct mm *mm, struct snap_restore_stats *st, char *err, size_t errlen)
{
	struct read_ctx c = { .f = f, .mm = mm, .err = err, .errlen = errlen };
	uint64_t t0 = mm__now_ns();
	int ret = 0;

	memset(st, 0, sizeof(*st));
	err[0] = '\0';
	snprintf(st->io_note, sizeof(st->io_note), "%s", f->io.note);
	if (mm->cfg.guest_bytes != f->h.guest_bytes ||
	    (mm->cfg.layout && mm->cfg.layout->nr_frames != f->h.pool_bytes >> MM_PAGE_SHIFT)) {
		snprintf(err, errlen, "snapshot: the mm (%" PRIu64 " MiB guest) was not made for this snapshot (%" PRIu64
			 " MiB)", mm->cfg.guest_bytes >> 20, f->h.guest_bytes >> 20);
		return -EINVAL;
	}
	snap__slots_init(&c.slots, f->io.depth);
	if (restore_helper__start(&c.helper, f, mm)) {
		snprintf(err, errlen, "snapshot: out of memory for %u regions", f->h.nr_regions);
		restore_helper__finish(&c.helper, true, err, errlen);
		return -ENOMEM;
	}
	for (uint32_t r = 0; r < f->h.nr_regions && !ret; r++) {
		if (!f->table[r].nr_present)
			continue;
		while (!ret && !c.slots.nr_free)
			ret = snap_io__reap(&f->io, 1, read_done, &c);
		if (!ret && f->table[r].nr_present == SNAP_PAGES_PER_REGION && gpamap__region_in_order(&mm->map, r))
			ret = read__queue_direct(&c, r);
		else if (!ret)
			ret = snap__queue_region_read(f, &c.slots, r);
		if (!ret)
			ret = snap_io__submit(&f->io);
		st->present_pages += f->table[r].nr_present;
	}
	if (!ret)
		ret = snap_io__reap(&f->io, f->io.inflight, read_done, &c);
	else if (ret != -EINVAL && !err[0])
		snprintf(err, errlen, "snapshot: read: %s", strerror(-ret));
	if (restore_helper__finish(&c.helper, ret != 0, err, errlen) && !ret)
		ret = -EINVAL;
	st->data_bytes = st->present_pages * SNAP_PAGE_SIZE;
	st->read_ns = mm__now_ns() - t0;
	if (ret)
		return ret;
	pthread_mutex_lock(&mm->lock);
	pool__refresh_huge(&mm->pool);
	pthread_mutex_unlock(&mm->lock);
	ret = mm__wait_ready(mm);
	st->ready_ns = mm__now_ns() - t0;
	if (ret)
		snprintf(err, errlen, "snapshot: prefault after restore: %s", mm->prefault_err);
	return ret;
}
