/* lazy.c: lazy restore: a userfaultfd handler fills a region on first touch (UFFDIO_COPY, 2 MiB), a prefetcher the rest in GPA order, then collapse. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mm/util.h"
#include "vmm/snapshot/internal.h"
#include "vmm/snapshot/lazy.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/* EMPTY -> QUEUED (prefetch read in flight) -> FILLING (being copied) -> DONE; a fault takes an
 * EMPTY or QUEUED region itself (QUEUED: the prefetch's copy is then dropped), so that a fault waits
 * for one 2 MiB read, never for the prefetch queue ahead of it. */
#define LAZY_PREFETCH_DEPTH 4u

enum { LAZY_EMPTY, LAZY_QUEUED, LAZY_FILLING, LAZY_DONE };

static void lazy__set_error(struct snap_lazy *l, int ret, const char *msg)
{
	pthread_mutex_lock(&l->lock);
	if (!l->error) {
		l->error = ret;
		snprintf(l->err, sizeof(l->err), "%s", msg);
	}
	pthread_cond_broadcast(&l->filled);
	pthread_mutex_unlock(&l->lock);
}

/*
 * Region r into the window with UFFDIO_COPY: each page becomes visible only with its content
 * (filling through the direct map would expose a half-copied block to the guest). buf holds
 * the present pages at their offsets, NULL: none. A page something else placed already (EEXIST)
 * is left alone. Then mark the region done and wake whoever waits on it.
 */
static void lazy__fill(struct snap_lazy *l, uint32_t r, uint8_t *buf, uint64_t fault_addr)
{
	const struct snap_region *e = &l->f->table[r];
	uint64_t dst = (uintptr_t)l->mm->win.base + (uint64_t)r * SNAP_REGION_SIZE, done = 0;
	struct uffdio_range range = { .start = dst, .len = SNAP_REGION_SIZE };
	const uint8_t *src = buf ? buf : l->zero_buf;

	for (unsigned p = 0; buf && e->nr_present < SNAP_PAGES_PER_REGION && p < SNAP_PAGES_PER_REGION; p++)
		if (!snap__page_present(e, p))
			memset(buf + (size_t)p * SNAP_PAGE_SIZE, 0, SNAP_PAGE_SIZE);
	if (fault_addr) {
		/* the faulting page first, which wakes its thread: it need not wait for the other 511 */
		uint64_t off = (fault_addr & ~(uint64_t)(SNAP_PAGE_SIZE - 1)) - dst;
		struct uffdio_copy c = { .dst = dst + off, .src = (uintptr_t)src + off, .len = SNAP_PAGE_SIZE };

		ioctl(l->uffd, UFFDIO_COPY, &c); /* EEXIST or a failure: the loop below tells */
	}
	while (done < SNAP_REGION_SIZE) {
		struct uffdio_copy c = { .dst = dst + done, .src = (uintptr_t)src + done, .len = SNAP_REGION_SIZE - done };

		if (!ioctl(l->uffd, UFFDIO_COPY, &c)) {
			done += (uint64_t)c.copy;
		} else if (c.copy > 0) {
			done += (uint64_t)c.copy;
		} else if (errno == EEXIST) {
			done += SNAP_PAGE_SIZE;
		} else if (errno != EAGAIN) {
			lazy__set_error(l, -errno, "snapshot: lazy restore: UFFDIO_COPY failed");
			break;
		}
	}
	pthread_mutex_lock(&l->lock);
	__atomic_store_n(&l->state[r], LAZY_DONE, __ATOMIC_RELEASE);
	l->nr_done++;
	pthread_cond_broadcast(&l->filled);
	pthread_mutex_unlock(&l->lock);
	ioctl(l->uffd, UFFDIO_WAKE, &range);
}

/* Move region r from state `from` to `to`: true if it was in `from`. */
static bool lazy__claim(struct snap_lazy *l, uint32_t r, uint8_t from, uint8_t to)
{
	return __atomic_compare_exchange_n(&l->state[r], &from, to, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* The fault path: read region r's record synchronously into the handler's buffer, check, fill. */
static void lazy__fill_now(struct snap_lazy *l, uint32_t r, uint64_t fault_addr)
{
	const struct snap_region *e = &l->f->table[r];
	uint64_t off = l->f->h.data_off + (uint64_t)r * SNAP_REGION_SIZE;
	unsigned p = 0, start, n;
	char msg[256];
	int ret = 0;

	while (!ret && snap__next_run(e, &p, &start, &n))
		ret = snap_io__pread_all(&l->f->io, l->fault_buf + (size_t)start * SNAP_PAGE_SIZE,
					 (size_t)n * SNAP_PAGE_SIZE, off + (uint64_t)start * SNAP_PAGE_SIZE);
	if (!ret && e->nr_present && snap__region_crc(e, l->fault_buf) != e->crc)
		ret = -EINVAL;
	if (ret) {
		snprintf(msg, sizeof(msg), "snapshot: lazy restore of region %u: %s", r,
			 ret == -EINVAL ? "checksum mismatch" : strerror(-ret));
		lazy__set_error(l, ret, msg);
	}
	/* A bad record still gets a zero block: a vCPU must not hang in the fault; the VM is failed. */
	lazy__fill(l, r, ret || !e->nr_present ? NULL : l->fault_buf, fault_addr);
}

static void lazy__handle_fault(struct snap_lazy *l, uint64_t addr)
{
	uint64_t t = mm__now_ns(), dt;
	uint32_t r = (uint32_t)((addr - (uintptr_t)l->mm->win.base) / SNAP_REGION_SIZE);
	struct uffdio_range range = { .start = (uintptr_t)l->mm->win.base + (uint64_t)r * SNAP_REGION_SIZE,
				      .len = SNAP_REGION_SIZE };

	l->st.faults++;
	if (r >= l->f->h.nr_regions)
		return;
	if (lazy__claim(l, r, LAZY_EMPTY, LAZY_FILLING) || lazy__claim(l, r, LAZY_QUEUED, LAZY_FILLING)) {
		l->st.regions_by_fault++;
		lazy__fill_now(l, r, addr);
	} else {
		pthread_mutex_lock(&l->lock);
		while (__atomic_load_n(&l->state[r], __ATOMIC_ACQUIRE) != LAZY_DONE && !l->error)
			pthread_cond_wait(&l->filled, &l->lock);
		pthread_mutex_unlock(&l->lock);
		ioctl(l->uffd, UFFDIO_WAKE, &range); /* it may have faulted after the prefetcher's wake */
	}
	dt = mm__now_ns() - t;
	if (dt > l->st.fault_max_ns)
		l->st.fault_max_ns = dt;
	if (!l->st.first_fault_ns)
		l->st.first_fault_ns = mm__now_ns() - l->t0;
}

static void *lazy__handler(void *opaque)
{
	struct snap_lazy *l = opaque;
	struct pollfd pfd[2] = { { .fd = l->uffd, .events = POLLIN }, { .fd = l->stop_efd, .events = POLLIN } };

	for (;;) {
		struct uffd_msg msg;
		ssize_t n;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		n = read(l->uffd, &msg, sizeof(msg));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n != sizeof(msg))
			break;
		if (msg.event == UFFD_EVENT_PAGEFAULT)
			lazy__handle_fault(l, msg.arg.pagefault.address);
	}
	return NULL;
}

struct prefetch_ctx {
	struct snap_lazy *l;
	struct snap_slots slots;
};

static int prefetch_done(void *opaque, unsigned slot, uint32_t len, int res)
{
	struct prefetch_ctx *c = opaque;
	struct snap_lazy *l = c->l;
	uint32_t r = c->slots.region[slot];
	const struct snap_region *e = &l->f->table[r];
	uint8_t *buf = snap_io__buf(&l->f->io, slot);
	char msg[256];

	if (res != (int)len) {
		snprintf(msg, sizeof(msg), "snapshot: lazy restore: read of region %u: %s", r,
			 res < 0 ? strerror(-res) : "short read");
		lazy__set_error(l, res < 0 ? res : -EIO, msg);
	}
	if (--c->slots.pending[slot])
		return 0;
	c->slots.free[c->slots.nr_free++] = slot;
	if (!lazy__claim(l, r, LAZY_QUEUED, LAZY_FILLING))
		return 0; /* a fault took it meanwhile (and the guest may have written it since) */
	l->st.regions_by_prefetch++;
	if (res == (int)len && snap__region_crc(e, buf) != e->crc) {
		snprintf(msg, sizeof(msg), "snapshot: lazy restore: region %u checksum mismatch", r);
		lazy__set_error(l, -EINVAL, msg);
	}
	lazy__fill(l, r, l->error ? NULL : buf, 0);
	return 0;
}

/* Every region in GPA order that no fault has claimed: through the staging ring. */
static void *lazy__prefetcher(void *opaque)
{
	struct prefetch_ctx c = { .l = opaque };
	struct snap_lazy *l = c.l;
	struct snap_file *f = l->f;
	int ret = 0;

	/* A shallow queue: a fault's own read must not wait behind many prefetched megabytes. */
	snap__slots_init(&c.slots, f->io.depth < LAZY_PREFETCH_DEPTH ? f->io.depth : LAZY_PREFETCH_DEPTH);
	for (uint32_t r = 0; r < f->h.nr_regions && !ret; r++) {
		if (!f->table[r].nr_present) {
			if (lazy__claim(l, r, LAZY_EMPTY, LAZY_FILLING)) {
				l->st.regions_by_prefetch++;
				lazy__fill(l, r, NULL, 0);
			}
			continue;
		}
		if (!lazy__claim(l, r, LAZY_EMPTY, LAZY_QUEUED))
			continue;
		while (!ret && !c.slots.nr_free)
			ret = snap_io__reap(&f->io, 1, prefetch_done, &c);
		if (!ret)
			ret = snap__queue_region_read(f, &c.slots, r);
		if (!ret)
			ret = snap_io__submit(&f->io);
	}
	if (!ret)
		ret = snap_io__reap(&f->io, f->io.inflight, prefetch_done, &c);
	if (ret)
		lazy__set_error(l, ret, "snapshot: lazy restore: io_uring failed");
	return NULL;
}

static int lazy__register(struct snap_lazy *l, char *err, size_t errlen)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM };
	struct uffdio_register reg = { .range = { .start = (uintptr_t)l->mm->win.base, .len = l->mm->win.size },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };

	/* Not UFFD_USER_MODE_ONLY: KVM touches guest memory from the kernel. */
	l->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (l->uffd < 0) {
		snprintf(err, errlen, "snapshot: --lazy needs userfaultfd: %s%s", strerror(errno),
			 errno == EPERM ? " (run as root or set vm.unprivileged_userfaultfd=1)" : "");
		return -errno;
	}
	if (ioctl(l->uffd, UFFDIO_API, &api) || ioctl(l->uffd, UFFDIO_REGISTER, &reg)) {
		snprintf(err, errlen, "snapshot: --lazy: userfaultfd on the shmem guest window: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int snap_lazy__start(struct snap_lazy *l, struct snap_file *f, struct mm *mm, char *err, size_t errlen)
{
	int ret;

	memset(l, 0, sizeof(*l));
	l->uffd = l->stop_efd = -1;
	l->f = f;
	l->mm = mm;
	l->t0 = mm__now_ns();
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->filled, NULL);
	for (uint32_t r = 0; r < mm->map.nr_regions; r++)
		if (!gpamap__region_in_order(&mm->map, r)) {
			snprintf(err, errlen, "snapshot: --lazy restores onto a linear layout only (region %u is not in "
				 "order); use an eager restore with --restore-layout", r);
			ret = -EINVAL;
			goto fail;
		}
	l->state = calloc(f->h.nr_regions, 1);
	/* populated now: a first fault must not wait for this buffer's own page faults */
	l->fault_buf = mmap(NULL, SNAP_REGION_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
			    -1, 0);
	l->zero_buf = mmap(NULL, SNAP_REGION_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	l->stop_efd = eventfd(0, EFD_CLOEXEC);
	if (!l->state || l->fault_buf == MAP_FAILED || l->zero_buf == MAP_FAILED || l->stop_efd < 0) {
		l->fault_buf = l->fault_buf == MAP_FAILED ? NULL : l->fault_buf;
		l->zero_buf = l->zero_buf == MAP_FAILED ? NULL : l->zero_buf;
		snprintf(err, errlen, "snapshot: --lazy: out of memory or file descriptors");
		ret = -ENOMEM;
		goto fail;
	}
	ret = lazy__register(l, err, errlen);
	if (ret)
		goto fail;
	/* Defrag must wait: it would remap window pages that are not filled yet. */
	pthread_mutex_lock(&mm->ready_lock);
	mm->ready = false;
	pthread_mutex_unlock(&mm->ready_lock);
	ret = -pthread_create(&l->handler, NULL, lazy__handler, l);
	l->handler_started = !ret;
	if (!ret)
		ret = -pthread_create(&l->prefetcher, NULL, lazy__prefetcher, l);
	l->prefetcher_started = l->handler_started && !ret;
	if (ret) {
		snprintf(err, errlen, "snapshot: --lazy: cannot start its threads: %s", strerror(-ret));
		goto fail;
	}
	return 0;
fail:
	snap_lazy__stop(l);
	return ret;
}

/* UFFDIO_COPY gives shmem 4 KiB pages: make every guest block one huge page again, in place. */
static void lazy__collapse(struct snap_lazy *l)
{
	struct mm *mm = l->mm;
	uint64_t t = mm__now_ns();

	for (uint32_t r = 0; r < mm->map.nr_regions; r++) {
		uint8_t *block = pool__frame_ptr(&mm->pool, gpamap__frame(&mm->map, r * SNAP_PAGES_PER_REGION));
		int tries = 0, rc;

		/* EAGAIN: a page was briefly busy (the running guest, KVM's fault path): try again */
		while ((rc = madvise(block, SNAP_REGION_SIZE, MADV_COLLAPSE)) && errno == EAGAIN && ++tries < 4)
			usleep(1000u << tries);
		if (!rc) {
			l->st.regions_collapsed++;
		} else {
			l->st.collapse_failed++;
			l->st.collapse_errno = errno;
		}
	}
	l->st.collapse_ns = mm__now_ns() - t;
}

int snap_lazy__wait(struct snap_lazy *l)
{
	struct uffdio_range range = { .start = (uintptr_t)l->mm->win.base, .len = l->mm->win.size };
	struct mm *mm = l->mm;
	int ret;

	if (l->prefetcher_started)
		pthread_join(l->prefetcher, NULL);
	l->prefetcher_started = false;
	pthread_mutex_lock(&l->lock);
	while (l->nr_done < l->f->h.nr_regions && !l->error)
		pthread_cond_wait(&l->filled, &l->lock);
	ret = l->error;
	pthread_mutex_unlock(&l->lock);
	l->st.resident_ns = mm__now_ns() - l->t0;
	if (!ret)
		ioctl(l->uffd, UFFDIO_UNREGISTER, &range);
	lazy__collapse(l);
	pthread_mutex_lock(&mm->lock);
	pool__refresh_huge(&mm->pool);
	pthread_mutex_unlock(&mm->lock);
	pthread_mutex_lock(&mm->ready_lock);
	mm->ready = true;
	pthread_cond_broadcast(&mm->ready_cond);
	pthread_mutex_unlock(&mm->ready_lock);
	return ret;
}

void snap_lazy__stop(struct snap_lazy *l)
{
	uint64_t one = 1;

	if (l->prefetcher_started)
		pthread_join(l->prefetcher, NULL);
	if (l->handler_started) {
		if (write(l->stop_efd, &one, sizeof(one)) != sizeof(one))
			pthread_cancel(l->handler);
		pthread_join(l->handler, NULL);
	}
	l->prefetcher_started = l->handler_started = false;
	if (l->uffd >= 0)
		close(l->uffd); /* also wakes any thread still waiting in a fault (it retries and refaults) */
	if (l->stop_efd >= 0)
		close(l->stop_efd);
	if (l->fault_buf)
		munmap(l->fault_buf, SNAP_REGION_SIZE);
	if (l->zero_buf)
		munmap(l->zero_buf, SNAP_REGION_SIZE);
	l->zero_buf = NULL;
	free(l->state);
	pthread_cond_destroy(&l->filled);
	pthread_mutex_destroy(&l->lock);
	l->uffd = l->stop_efd = -1;
	l->fault_buf = NULL;
	l->state = NULL;
}
