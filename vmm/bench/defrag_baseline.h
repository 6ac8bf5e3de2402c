/* bench_defrag_baseline.h: what a user would pick instead of vmcompact: memcpy and MADV_COLLAPSE. */
#ifndef VMC_VMM_BENCH_DEFRAG_BASELINE_H
#define VMC_VMM_BENCH_DEFRAG_BASELINE_H

#include <stddef.h>
#include <stdint.h>

/* Copy `bytes` in 4 KiB frames from shuffled source frames to shuffled destinations
 * (the access pattern of a defrag), seconds in *secs. 0 or -errno. */
int baseline__memcpy_4k(size_t bytes, uint64_t seed, double *secs, char *err, size_t errlen);

/* Linux's MADV_COLLAPSE (6.1+) of `bytes` of 4K-backed anonymous memory, faulted in first with
 * THP disabled on the range. Seconds of the madvise call in *secs, huge pages gained in *collapsed
 * (from AnonHugePages in smaps_rollup). 0, or -errno with the reason in err (e.g. EINVAL on
 * kernels without MADV_COLLAPSE). */
int baseline__madv_collapse(size_t bytes, double *secs, uint64_t *collapsed_bytes, char *err,
			    size_t errlen);

#endif
