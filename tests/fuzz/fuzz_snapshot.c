/* fuzz_snapshot.c: the snapshot file parser (vmm/snapshot/reader.c + format.c) on arbitrary bytes: the input is
 * the file's metadata prefix; the file is then extended (a hole) to the size the header claims, up to 64 MiB. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/snapshot/snapshot.h"

#define FUZZ_MAX_FILE (64ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snap_header h;
	struct snap_file f;
	char path[64], err[512];
	uint64_t want = size, present = 0;
	int fd = (int)memfd_create("fuzz-snapshot", MFD_CLOEXEC), ret;

	FUZZ_ASSERT(fd >= 0, "memfd_create: %s", strerror(errno));
	FUZZ_ASSERT(size == 0 || write(fd, data, size) == (ssize_t)size, "write the input");
	if (size >= sizeof(h)) {
		memcpy(&h, data, sizeof(h));
		if (h.file_size > want && h.file_size <= FUZZ_MAX_FILE)
			want = h.file_size;
	}
	FUZZ_ASSERT(!ftruncate(fd, (off_t)want), "ftruncate");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	err[0] = '\0';
	ret = snap_file__open(&f, path, 1, err, sizeof(err));
	if (ret) {
		/* refused: one message, and for bad input always -EINVAL */
		FUZZ_ASSERT(err[0] && strchr(err, '\n') == NULL, "refusal without one line of message (%d)", ret);
		FUZZ_ASSERT(ret == -EINVAL || ret == -ENOMEM, "refused with %d: %s", ret, err);
	} else {
		/* accepted: what the restore relies on holds */
		FUZZ_ASSERT(f.h.nr_regions == f.h.guest_bytes / SNAP_REGION_SIZE, "regions");
		FUZZ_ASSERT(f.h.file_size <= f.file_size, "file shorter than its header says");
		for (uint32_t r = 0; r < f.h.nr_regions; r++) {
			FUZZ_ASSERT(f.table[r].nr_present <= SNAP_PAGES_PER_REGION, "region %u", r);
			present += f.table[r].nr_present;
		}
		FUZZ_ASSERT(present == f.h.present_pages, "present pages");
		FUZZ_ASSERT(!f.has_layout || (f.layout.nr_gpfns == f.h.guest_bytes / SNAP_PAGE_SIZE &&
					      f.layout.nr_frames == f.h.pool_bytes / SNAP_PAGE_SIZE), "layout sizes");
		snap_file__close(&f);
	}
	close(fd);
	return 0;
}
