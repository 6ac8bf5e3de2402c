/* writer.c: write guest memory as sparse 2 MiB records through the io_uring staging ring, then layout, vCPUs, table, header. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mm/util.h"
#include "vmm/snapshot/internal.h"

bool snap__page_is_zero(const void *page)
{
	const uint64_t *w = page;

	for (unsigned i = 0; i < SNAP_PAGE_SIZE / 8; i += 32) {
		uint64_t acc = 0;

		for (unsigned k = 0; k < 32; k++)
			acc |= w[i + k];
		if (acc)
			return false;
	}
	return true;
}

bool snap__next_run(const struct snap_region *r, unsigned *p, unsigned *start, unsigned *n)
{
	unsigned i = *p;

	while (i < SNAP_PAGES_PER_REGION && !snap__page_present(r, i))
		i++;
	if (i >= SNAP_PAGES_PER_REGION)
		return false;
	*start = i;
	while (i < SNAP_PAGES_PER_REGION && snap__page_present(r, i))
		i++;
	*n = i - *start;
	*p = i;
	return true;
}

uint32_t snap__region_crc(const struct snap_region *r, const uint8_t *buf)
{
	unsigned p = 0, start, n;
	uint32_t crc = 0;

	if (r->nr_present == SNAP_PAGES_PER_REGION)
		return snap__crc32c(0, buf, SNAP_REGION_SIZE);
	while (snap__next_run(r, &p, &start, &n))
		crc = snap__crc32c(crc, buf + (size_t)start * SNAP_PAGE_SIZE, (size_t)n * SNAP_PAGE_SIZE);
	return crc;
}

void snap__slots_init(struct snap_slots *s, unsigned depth)
{
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < depth; i++)
		s->free[s->nr_free++] = depth - 1 - i;
}

int snap_writer__open(struct snap_writer *w, struct mm *mm, const char *path, unsigned depth, bool layout,
		      char *err, size_t errlen)
{
	uint64_t pool_bytes = (uint64_t)mm->map.nr_frames << MM_PAGE_SHIFT;
	int ret;

	memset(w, 0, sizeof(*w));
	w->io.fd = -1;
	w->t0 = mm__now_ns();
	w->mm = mm;
	snprintf(w->path, sizeof(w->path), "%s", path);
	snap__header_geometry(&w->h, mm->cfg.guest_bytes, pool_bytes, 0, layout);
	w->h.age = mm->cfg.aging.age;
	w->h.seed = mm->cfg.aging.seed;
	w->h.ballast = mm->cfg.aging.ballast;
	w->h.unmovable = mm->cfg.aging.unmovable;
	w->h.unmovable_scatter = mm->cfg.aging.unmovable_scatter;
	w->table = calloc(w->h.nr_regions, sizeof(*w->table));
	if (!w->table) {
		snprintf(err, errlen, "snapshot: out of memory for %u region entries", w->h.nr_regions);
		return -ENOMEM;
	}
	ret = snap_io__open(&w->io, path, true, depth, err, errlen);
	if (ret)
		return ret;
	w->created = true;
	snprintf(w->st.io_note, sizeof(w->st.io_note), "%s", w->io.note);
	/* Final size now: the data area is a hole until records land in it. The header is not
	 * valid until finish writes it, so a writer that dies leaves a refused file. */
	if (ftruncate(w->io.fd, (off_t)w->h.file_size)) {
		ret = -errno;
		snprintf(err, errlen, "snapshot: size %s to %" PRIu64 " bytes: %s", path, w->h.file_size, strerror(errno));
		return ret;
	}
	return 0;
}

struct write_ctx {
	struct snap_slots slots;
	char *err;
	size_t errlen;
};

static int write_done(void *opaque, unsigned slot, uint32_t len, int res)
{
	struct write_ctx *c = opaque;

	if (res != (int)len) {
		snprintf(c->err, c->errlen, "snapshot: write of %u bytes: %s", len,
			 res < 0 ? strerror(-res) : "short write (file system full?)");
		return res < 0 ? res : -EIO;
	}
	if (--c->slots.pending[slot] == 0)
		c->slots.free[c->slots.nr_free++] = slot;
	return 0;
}

/*
 * Fill region r's entry: which pages are not all zero, and their CRC (over the frames in GPA
 * order: the same bytes the record holds). Nothing may move the frames meanwhile: the caller
 * holds mm->lock, and the guest is paused, or dirty-logged and rewritten.
 */
static void writer__analyze(struct mm *mm, uint32_t r, struct snap_region *e)
{
	const struct gpamap *m = &mm->map;
	gpfn_t g0 = r * SNAP_PAGES_PER_REGION;
	uint32_t crc = 0;

	memset(e, 0, sizeof(*e));
	for (unsigned p = 0; p < SNAP_PAGES_PER_REGION; p++) {
		frame_t f = gpamap__frame(m, g0 + p);

		if (f == FRAME_NONE || snap__page_is_zero(pool__frame_ptr(&mm->pool, f)))
			continue;
		e->present[p / 64] |= 1ull << (p % 64);
		e->nr_present++;
	}
	if (e->nr_present == SNAP_PAGES_PER_REGION && gpamap__region_in_order(m, r)) {
		e->crc = snap__crc32c(0, pool__frame_ptr(&mm->pool, gpamap__frame(m, g0)), SNAP_REGION_SIZE);
		return;
	}
	for (unsigned p = 0; p < SNAP_PAGES_PER_REGION; p++)
		if (snap__page_present(e, p))
			crc = snap__crc32c(crc, pool__frame_ptr(&mm->pool, gpamap__frame(m, g0 + p)), SNAP_PAGE_SIZE);
	e->crc = crc;
}

/*
 * The analyzer runs ahead of the writer and fills the region entries (a scan for zero pages and
 * a CRC: passes over guest memory the records do not need), so that the writer only copies,
 * queues and waits for the file system.
 */
struct analyzer {
	struct snap_writer *w;
	const uint8_t *sel;
	uint32_t done;             /* entries [0, done) are filled; under lock */
	bool stop;                 /* under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started;
};

static void *analyzer__thread(void *opaque)
{
	struct analyzer *a = opaque;
	uint32_t n = a->w->h.nr_regions;

	for (uint32_t r = 0; r < n; r++) {
		if (!a->sel || a->sel[r])
			writer__analyze(a->w->mm, r, &a->w->table[r]);
		pthread_mutex_lock(&a->lock);
		a->done = r + 1;
		pthread_cond_signal(&a->cond);
		if (a->stop)
			r = n;
		pthread_mutex_unlock(&a->lock);
	}
	return NULL;
}

static void analyzer__start(struct analyzer *a, struct snap_writer *w, const uint8_t *sel)
{
	*a = (struct analyzer){ .w = w, .sel = sel };
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->started = !pthread_create(&a->thread, NULL, analyzer__thread, a);
}

/* Region r's entry, once it is filled (here, if the thread could not start). */
static void analyzer__wait(struct analyzer *a, uint32_t r)
{
	if (!a->started) {
		writer__analyze(a->w->mm, r, &a->w->table[r]);
		return;
	}
	pthread_mutex_lock(&a->lock);
	while (a->done <= r)
		pthread_cond_wait(&a->cond, &a->lock);
	pthread_mutex_unlock(&a->lock);
}

static void analyzer__stop(struct analyzer *a)
{
	if (a->started) {
		pthread_mutex_lock(&a->lock);
		a->stop = true;
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
	}
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
}

/*
 * Region r's record, its entry filled: a whole region in order on its block is written straight
 * from the block (returned); otherwise the present pages are copied into buf at their offsets and
 * NULL is returned.
 */
static const uint8_t *writer__stage(struct snap_writer *w, uint32_t r, uint8_t *buf)
{
	const struct gpamap *m = &w->mm->map;
	const struct snap_region *e = &w->table[r];
	gpfn_t g0 = r * SNAP_PAGES_PER_REGION;

	if (e->nr_present == SNAP_PAGES_PER_REGION && gpamap__region_in_order(m, r))
		return pool__frame_ptr(&w->mm->pool, gpamap__frame(m, g0));
	for (unsigned p = 0; p < SNAP_PAGES_PER_REGION; p++)
		if (snap__page_present(e, p))
			memcpy(buf + (size_t)p * SNAP_PAGE_SIZE, pool__frame_ptr(&w->mm->pool, gpamap__frame(m, g0 + p)),
			       SNAP_PAGE_SIZE);
	return NULL;
}

int snap_writer__write_regions(struct snap_writer *w, const uint8_t *sel, char *err, size_t errlen)
{
	struct write_ctx c = { .err = err, .errlen = errlen };
	uint64_t t = mm__now_ns();
	struct analyzer a;
	int ret = 0;

	snap__slots_init(&c.slots, w->io.depth);
	analyzer__start(&a, w, sel);
	for (uint32_t r = 0; r < w->h.nr_regions && !ret; r++) {
		unsigned slot, p = 0, start, n;
		uint64_t off = w->h.data_off + (uint64_t)r * SNAP_REGION_SIZE;
		const uint8_t *block;

		if (sel && !sel[r])
			continue;
		while (!ret && !c.slots.nr_free)
			ret = snap_io__reap(&w->io, 1, write_done, &c);
		if (ret)
			break;
		slot = c.slots.free[--c.slots.nr_free];
		analyzer__wait(&a, r);
		block = writer__stage(w, r, snap_io__buf(&w->io, slot));
		if (sel)
			w->st.regions_rewritten++;
		if (block) {
			ret = snap_io__queue_at(&w->io, true, slot, (void *)block, SNAP_REGION_SIZE, off);
			c.slots.pending[slot] += !ret;
			w->st.data_bytes += SNAP_REGION_SIZE;
		}
		while (!ret && !block && snap__next_run(&w->table[r], &p, &start, &n)) {
			ret = snap_io__queue(&w->io, true, slot, start * SNAP_PAGE_SIZE, n * SNAP_PAGE_SIZE,
					     off + (uint64_t)start * SNAP_PAGE_SIZE);
			c.slots.pending[slot]++;
			w->st.data_bytes += (uint64_t)n * SNAP_PAGE_SIZE;
		}
		if (!ret)
			ret = snap_io__submit(&w->io);
		if (ret)
			snprintf(err, errlen, "snapshot: queue a write: %s", strerror(-ret));
		if (!c.slots.pending[slot])
			c.slots.free[c.slots.nr_free++] = slot;
	}
	analyzer__stop(&a);
	if (!ret)
		ret = snap_io__reap(&w->io, w->io.inflight, write_done, &c);
	w->st.mem_ns += mm__now_ns() - t;
	return ret;
}

/* The layout section: header, frame tags, pageblock migratetypes. */
static int writer__layout(struct snap_writer *w, uint8_t *sec, char *err, size_t errlen)
{
	struct snap_layout_hdr *lh = (struct snap_layout_hdr *)sec;
	struct mm_layout l;
	int ret = mm_layout__export(w->mm, &l, err, errlen);

	if (ret)
		return ret;
	lh->nr_frames = l.nr_frames;
	lh->nr_pageblocks = l.nr_pageblocks;
	lh->nr_gpfns = l.nr_gpfns;
	memcpy(lh + 1, l.frame_tag, (size_t)l.nr_frames * 4);
	memcpy(sec + sizeof(*lh) + (size_t)l.nr_frames * 4, l.pageblock_mt, l.nr_pageblocks);
	mm_layout__free(&l);
	return 0;
}

int snap_writer__finish(struct snap_writer *w, const struct snap_vcpu *vcpus, uint32_t nr_vcpus, uint32_t flags,
			char *err, size_t errlen)
{
	struct snap_header *h = &w->h;
	uint8_t *meta, *hdr;
	struct timespec now;
	struct stat sb;
	int ret;

	snap__header_geometry(h, h->guest_bytes, h->pool_bytes, nr_vcpus, h->flags & SNAP_F_LAYOUT);
	h->flags |= flags | (nr_vcpus ? SNAP_F_VCPUS : 0);
	meta = snap_io__alloc(h->table_off + h->table_len); /* indexed by file offset */
	if (!meta) {
		snprintf(err, errlen, "snapshot: out of memory for metadata");
		return -ENOMEM;
	}
	hdr = meta;
	memset(hdr, 0, SNAP_HEADER_SIZE);
	if (nr_vcpus)   /* vcpus may be NULL then: memcpy from NULL is undefined (UBSan) */
		memcpy(meta + h->vcpu_off, vcpus, (size_t)nr_vcpus * sizeof(*vcpus));
	ret = h->layout_len ? writer__layout(w, meta + h->layout_off, err, errlen) : 0;
	if (ret)
		goto out;
	memcpy(meta + h->table_off, w->table, (size_t)h->nr_regions * sizeof(*w->table));
	h->present_pages = 0;
	for (uint32_t r = 0; r < h->nr_regions; r++)
		h->present_pages += w->table[r].nr_present;
	h->vcpu_crc = snap__crc32c(0, meta + h->vcpu_off, h->vcpu_len);
	h->layout_crc = h->layout_len ? snap__crc32c(0, meta + h->layout_off, h->layout_len) : 0;
	h->table_crc = snap__crc32c(0, meta + h->table_off, h->table_len);
	clock_gettime(CLOCK_REALTIME, &now);
	h->created_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	h->header_crc = 0;
	memcpy(hdr, h, sizeof(*h));
	h->header_crc = snap__header_crc(hdr);
	memcpy(hdr, h, sizeof(*h));
	/* Sections first, the header last, then one sync. A crash may still leave a valid header over
	 * records that never reached the disk (it may reorder writes): their CRCs refuse them. */
	ret = snap_io__pwrite_all(&w->io, meta + SNAP_HEADER_SIZE, h->table_off + h->table_len - SNAP_HEADER_SIZE,
				  SNAP_HEADER_SIZE);
	if (!ret)
		ret = snap_io__pwrite_all(&w->io, hdr, SNAP_HEADER_SIZE, 0);
	if (!ret && fdatasync(w->io.fd))
		ret = -errno;
	if (ret) {
		snprintf(err, errlen, "snapshot: write the metadata of %s: %s", w->path, strerror(-ret));
		goto out;
	}
	w->st.present_pages = h->present_pages;
	if (!fstat(w->io.fd, &sb))
		w->st.file_bytes = (uint64_t)sb.st_blocks * 512;
	w->st.total_ns = mm__now_ns() - w->t0;
out:
	free(meta);
	return ret;
}

void snap_writer__close(struct snap_writer *w, bool ok)
{
	snap_io__close(&w->io);
	if (!ok && w->created)
		unlink(w->path);
	free(w->table);
	w->table = NULL;
}

int snapshot__write(struct mm *mm, const char *path, bool layout, const struct snap_vcpu *vcpus,
		    uint32_t nr_vcpus, struct snap_write_stats *st, char *err, size_t errlen)
{
	struct snap_writer w;
	int ret = snap_writer__open(&w, mm, path, 0, layout, err, errlen);

	if (!ret)
		ret = snap_writer__write_regions(&w, NULL, err, errlen);
	if (!ret)
		ret = snap_writer__finish(&w, vcpus, nr_vcpus, 0, err, errlen);
	if (st)
		*st = w.st;
	snap_writer__close(&w, !ret);
	return ret;
}
