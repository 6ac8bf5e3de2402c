/* io.c: io_uring engine for snapshot files: registered staging buffers, O_DIRECT with a plain fallback. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vmm/snapshot/io.h"

static int snap_io__open_fd(struct snap_io *io, const char *path, bool write, char *err, size_t errlen)
{
	int flags = (write ? O_RDWR | O_CREAT | O_TRUNC : O_RDONLY) | O_CLOEXEC;

	io->fd = open(path, flags | O_DIRECT, 0600);
	io->direct = io->fd >= 0;
	if (io->fd < 0 && errno == EINVAL)
		io->fd = open(path, flags, 0600);
	if (io->fd < 0) {
		int e = errno;

		snprintf(err, errlen, "%s %s: %s", write ? "create" : "open", path, strerror(e));
		return -e;
	}
	snprintf(io->note, sizeof(io->note), "%s", io->direct ? "O_DIRECT" :
		 "buffered (the file system refused O_DIRECT)");
	return 0;
}

static int snap_io__setup_bufs(struct snap_io *io, char *err, size_t errlen)
{
	size_t len = (size_t)io->depth * SNAP_IO_BUF_SIZE;
	struct iovec *iov;
	uint8_t *raw;
	int ret;

	raw = mmap(NULL, len + SNAP_IO_BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) {
		ret = -errno;
		snprintf(err, errlen, "snapshot: %zu MiB of staging buffers: %s", len >> 20, strerror(errno));
		return ret;
	}
	io->bufs = (uint8_t *)(((uintptr_t)raw + SNAP_IO_BUF_SIZE - 1) & ~(uintptr_t)(SNAP_IO_BUF_SIZE - 1));
	if (io->bufs > raw)
		munmap(raw, (size_t)(io->bufs - raw));
	munmap(io->bufs + len, (size_t)(raw + SNAP_IO_BUF_SIZE - io->bufs));
	madvise(io->bufs, len, MADV_HUGEPAGE);
	iov = calloc(io->depth, sizeof(*iov));
	if (!iov) {
		snprintf(err, errlen, "snapshot: out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < io->depth; i++)
		iov[i] = (struct iovec){ snap_io__buf(io, i), SNAP_IO_BUF_SIZE };
	/* Only the staging ring is pinned, never guest RAM: pinned pages could not be compacted. */
	ret = io_uring_register_buffers(&io->ring, iov, io->depth);
	io->fixed = ret == 0;
	if (!io->fixed) {
		size_t n = strlen(io->note);

		snprintf(io->note + n, sizeof(io->note) - n, ", unregistered buffers (%s)", strerror(-ret));
	}
	free(iov);
	return 0;
}

int snap_io__open(struct snap_io *io, const char *path, bool write, unsigned depth, char *err, size_t errlen)
{
	int ret;

	memset(io, 0, sizeof(*io));
	io->fd = -1;
	io->depth = depth ? (depth > SNAP_IO_MAX_DEPTH ? SNAP_IO_MAX_DEPTH : depth) : SNAP_IO_DEFAULT_DEPTH;
	ret = snap_io__open_fd(io, path, write, err, errlen);
	if (ret)
		return ret;
	/* Up to a few requests per staging buffer (a region's runs of present pages). */
	ret = io_uring_queue_init(io->depth * 4 < 128 ? 128 : io->depth * 4, &io->ring, 0);
	if (ret) {
		snprintf(err, errlen, "snapshot: io_uring_queue_init: %s", strerror(-ret));
		goto fail;
	}
	io->ring_ready = true;
	ret = snap_io__setup_bufs(io, err, errlen);
	if (ret)
		goto fail;
	return 0;
fail:
	snap_io__close(io);
	return ret;
}

void snap_io__close(struct snap_io *io)
{
	if (io->ring_ready) {
		if (io->inflight) /* an error path: let the kernel finish with our buffers first */
			snap_io__reap(io, io->inflight, NULL, NULL);
		io_uring_queue_exit(&io->ring);
	}
	io->ring_ready = false;
	if (io->bufs)
		munmap(io->bufs, (size_t)io->depth * SNAP_IO_BUF_SIZE);
	io->bufs = NULL;
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
}

static struct io_uring_sqe *snap_io__sqe(struct snap_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

	if (!sqe && io_uring_submit(&io->ring) >= 0)
		sqe = io_uring_get_sqe(&io->ring);
	return sqe;
}

int snap_io__queue_at(struct snap_io *io, bool write, unsigned slot, void *addr, uint32_t len, uint64_t file_off)
{
	struct io_uring_sqe *sqe = snap_io__sqe(io);

	if (!sqe)
		return -EBUSY;
	if (write)
		io_uring_prep_write(sqe, io->fd, addr, len, file_off);
	else
		io_uring_prep_read(sqe, io->fd, addr, len, file_off);
	io_uring_sqe_set_data64(sqe, (uint64_t)slot | (uint64_t)len << 32);
	io->inflight++;
	return 0;
}

int snap_io__queue(struct snap_io *io, bool write, unsigned slot, uint32_t buf_off, uint32_t len, uint64_t file_off)
{
	struct io_uring_sqe *sqe = snap_io__sqe(io);
	uint8_t *buf = snap_io__buf(io, slot) + buf_off;

	if (!sqe)
		return -EBUSY;
	if (io->fixed && write)
		io_uring_prep_write_fixed(sqe, io->fd, buf, len, file_off, (int)slot);
	else if (io->fixed)
		io_uring_prep_read_fixed(sqe, io->fd, buf, len, file_off, (int)slot);
	else if (write)
		io_uring_prep_write(sqe, io->fd, buf, len, file_off);
	else
		io_uring_prep_read(sqe, io->fd, buf, len, file_off);
	io_uring_sqe_set_data64(sqe, (uint64_t)slot | (uint64_t)len << 32);
	io->inflight++;
	return 0;
}

int snap_io__submit(struct snap_io *io)
{
	int ret = io_uring_submit(&io->ring);

	return ret < 0 && ret != -EAGAIN && ret != -EBUSY && ret != -EINTR ? ret : 0;
}

int snap_io__reap(struct snap_io *io, unsigned min_done, snap_io_done_fn done, void *ctx)
{
	unsigned handled = 0;
	int ret = 0;

	if (min_done > io->inflight)
		min_done = io->inflight;
	do {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		ret = io_uring_submit_and_wait(&io->ring, handled < min_done ? 1 : 0);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			return ret;
		ret = 0;
		io_uring_for_each_cqe(&io->ring, head, cqe) {
			uint64_t d = io_uring_cqe_get_data64(cqe);

			n++;
			io->inflight--;
			if (cqe->res > 0)
				io->bytes += (uint64_t)cqe->res;
			if (!ret && done)
				ret = done(ctx, (unsigned)(d & 0xffffffffu), (uint32_t)(d >> 32), cqe->res);
		}
		io_uring_cq_advance(&io->ring, n);
		handled += n;
		if (ret)
			return ret;
	} while (handled < min_done);
	return 0;
}

static int snap_io__sync(struct snap_io *io, void *buf, size_t len, uint64_t off, bool write)
{
	while (len) {
		ssize_t n = write ? pwrite(io->fd, buf, len, (off_t)off) : pread(io->fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf = (uint8_t *)buf + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int snap_io__pwrite_all(struct snap_io *io, const void *buf, size_t len, uint64_t off)
{
	return snap_io__sync(io, (void *)buf, len, off, true);
}

int snap_io__pread_all(struct snap_io *io, void *buf, size_t len, uint64_t off)
{
	return snap_io__sync(io, buf, len, off, false);
}

void *snap_io__alloc(size_t len)
{
	void *p = NULL;

	len = (len + 4095) & ~(size_t)4095;
	if (posix_memalign(&p, 4096, len ? len : 4096))
		return NULL;
	memset(p, 0, len ? len : 4096);
	return p;
}
