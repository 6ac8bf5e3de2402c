/* io.h: the snapshot I/O engine: io_uring with a ring of registered 2 MiB staging buffers, O_DIRECT where the file system has it. */
#ifndef VMC_SNAPSHOT_IO_H
#define VMC_SNAPSHOT_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <liburing.h>

#define SNAP_IO_DEFAULT_DEPTH 32u   /* staging buffers = 2 MiB requests in flight */
#define SNAP_IO_MAX_DEPTH 256u
#define SNAP_IO_BUF_SIZE (2u << 20)

struct snap_io {
	struct io_uring ring;
	bool ring_ready;
	int fd;
	bool direct;        /* opened with O_DIRECT */
	bool fixed;         /* staging buffers registered with the ring (else plain read/write ops) */
	unsigned depth;     /* staging buffers */
	uint8_t *bufs;      /* depth × 2 MiB, 2 MiB aligned */
	unsigned inflight;  /* SQEs queued or submitted, not yet completed */
	uint64_t bytes;     /* bytes transferred by completed requests */
	char note[160];     /* how the file was opened, for reports */
};

/*
 * Open path for reading (write = false) or create/truncate it for writing, O_DIRECT first and
 * plainly if the file system refuses (EINVAL: e.g. tmpfs before Linux 6.6), then set up a ring
 * and depth staging buffers (registered if the kernel lets us pin them). 0 or -errno, err set.
 */
int snap_io__open(struct snap_io *io, const char *path, bool write, unsigned depth, char *err, size_t errlen);
void snap_io__close(struct snap_io *io);

static inline uint8_t *snap_io__buf(const struct snap_io *io, unsigned slot)
{
	return io->bufs + (size_t)slot * SNAP_IO_BUF_SIZE;
}

/* Queue one request: len bytes between staging buffer slot at buf_off and the file at file_off.
 * buf_off, len and file_off are multiples of 4 KiB. The completion carries (slot, len). */
int snap_io__queue(struct snap_io *io, bool write, unsigned slot, uint32_t buf_off, uint32_t len, uint64_t file_off);

/* The same straight to or from addr (not a staging buffer, not registered: e.g. a pool block the
 * guest cannot see yet); slot only tags the completion. addr 4 KiB aligned. */
int snap_io__queue_at(struct snap_io *io, bool write, unsigned slot, void *addr, uint32_t len, uint64_t file_off);

/* Hand what is queued to the kernel now (so that it overlaps with staging the next buffer). */
int snap_io__submit(struct snap_io *io);

/* A finished request: its slot, the length asked and the result (bytes or -errno). */
typedef int (*snap_io_done_fn)(void *ctx, unsigned slot, uint32_t len, int res);
/* Submit what is queued and handle completions until at least min_done have been handled.
 * Stops at the first callback that returns non-zero and returns that. */
int snap_io__reap(struct snap_io *io, unsigned min_done, snap_io_done_fn done, void *ctx);

/* Synchronous, for the small metadata sections: buf 4 KiB aligned, len and off multiples of 4 KiB.
 * 0, -EIO for a short transfer, or -errno. */
int snap_io__pwrite_all(struct snap_io *io, const void *buf, size_t len, uint64_t off);
int snap_io__pread_all(struct snap_io *io, void *buf, size_t len, uint64_t off);

/* 4 KiB-aligned zeroed memory for metadata (free with free()). */
void *snap_io__alloc(size_t len);

#endif
