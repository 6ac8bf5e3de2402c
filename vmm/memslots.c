/* memslots.c: guest RAM as KVM memslots: one slot over the window, or one per 2 MiB region so a region in order is served straight from the pool's direct map (promote path "memslot"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include "vmm/memslots.h"
#include "vmm/util.h"

#ifndef KVM_X86_QUIRK_SLOT_ZAP_ALL
#define KVM_X86_QUIRK_SLOT_ZAP_ALL (1 << 7)  /* Linux 6.12 */
#endif

#define REGION_SHIFT 21
#define REGION_BYTES (1ULL << REGION_SHIFT)

static const char *const path_names[PROMOTE_PATH_COUNT] = {
	[PROMOTE_PATH_AUTO] = "auto",
	[PROMOTE_PATH_MEMSLOT] = "memslot",
	[PROMOTE_PATH_REMAP] = "remap",
};

const char *promote_path__name(enum promote_path p)
{
	return (unsigned)p < PROMOTE_PATH_COUNT ? path_names[p] : "?";
}

int promote_path__parse(const char *s)
{
	for (int i = 0; i < PROMOTE_PATH_COUNT; i++)
		if (s && !strcmp(s, path_names[i]))
			return i;
	return -1;
}

static int sys_ioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

void memslot_caps__read(struct memslot_caps *c, int vm_fd)
{
	int n = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	int q = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DISABLE_QUIRKS2);

	c->nr_memslots = n > 0 ? n : 0;
	c->quirks2 = q > 0 ? (uint64_t)q : 0;
}

static int set_slot(struct memslots *ms, uint32_t slot, uint64_t gpa, uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .flags = size ? ms->flags : 0, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = (uint64_t)(uintptr_t)hva,
	};

	return ms->ioctl_fn(ms->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
}

static int disable_zap_all(struct memslots *ms)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_DISABLE_QUIRKS2 };

	cap.args[0] = KVM_X86_QUIRK_SLOT_ZAP_ALL;
	return ms->ioctl_fn(ms->vm_fd, KVM_ENABLE_CAP, &cap);
}

/* MEMSLOT, REMAP, or -1 with err set when `want` cannot be had. */
static int choose(struct memslots *ms, enum promote_path want, const struct memslot_caps *caps,
		  bool keep_zap_quirk, char *err, size_t errlen)
{
	bool quirk = (caps->quirks2 & KVM_X86_QUIRK_SLOT_ZAP_ALL) && !keep_zap_quirk;
	bool enough = (uint64_t)caps->nr_memslots >= (uint64_t)ms->nr_regions + MEMSLOTS_SPARE;

	if (want == PROMOTE_PATH_REMAP) {
		snprintf(ms->why, sizeof(ms->why), "asked for (--promote-path remap)");
		return PROMOTE_PATH_REMAP;
	}
	if (!enough) {
		if (want == PROMOTE_PATH_MEMSLOT) {
			snprintf(err, errlen, "--promote-path memslot: %u regions need %u memslots, KVM offers %d "
				 "(KVM_CAP_NR_MEMSLOTS); use remap or less RAM", ms->nr_regions,
				 ms->nr_regions + MEMSLOTS_SPARE, caps->nr_memslots);
			return -1;
		}
		snprintf(ms->why, sizeof(ms->why), "%u regions need more memslots than KVM offers (%d)",
			 ms->nr_regions, caps->nr_memslots);
		return PROMOTE_PATH_REMAP;
	}
	if (!quirk && want == PROMOTE_PATH_AUTO) {
		snprintf(ms->why, sizeof(ms->why), "%s: a memslot switch would zap every shadow page",
			 keep_zap_quirk ? "KVM_X86_QUIRK_SLOT_ZAP_ALL kept on (as on a kernel before 6.12)"
					: "this kernel cannot disable KVM_X86_QUIRK_SLOT_ZAP_ALL");
		return PROMOTE_PATH_REMAP;
	}
	snprintf(ms->why, sizeof(ms->why), "%u per-region memslots of %d%s", ms->nr_regions,
		 caps->nr_memslots, quirk ? ", KVM_X86_QUIRK_SLOT_ZAP_ALL disabled"
					  : "; the zap-all quirk is on: each switch zaps every shadow page");
	return PROMOTE_PATH_MEMSLOT;
}

static int view_serve(void *ctx, uint32_t region, void *hva)
{
	return memslots__serve(ctx, region, hva);
}

int memslots__init(struct memslots *ms, int vm_fd, uint8_t *ram, uint64_t ram_bytes, uint32_t flags,
		   enum promote_path want, const struct memslot_caps *caps, bool keep_zap_quirk,
		   char *err, size_t errlen)
{
	int (*ioctl_fn)(int, unsigned long, void *) = ms->ioctl_fn ? ms->ioctl_fn : sys_ioctl;
	int path, ret;

	memset(ms, 0, sizeof(*ms));
	ms->ioctl_fn = ioctl_fn;
	ms->vm_fd = vm_fd;
	ms->ram = ram;
	ms->ram_bytes = ram_bytes;
	ms->flags = flags;
	ms->nr_regions = (uint32_t)(ram_bytes >> REGION_SHIFT);
	if (ram_bytes % REGION_BYTES) {
		snprintf(err, errlen, "memslots: RAM (%llu bytes) is not a multiple of 2 MiB",
			 (unsigned long long)ram_bytes);
		return -EINVAL;
	}
	path = choose(ms, want, caps, keep_zap_quirk, err, errlen);
	if (path < 0)
		return -EINVAL;
	ms->path = path;
	if (path == PROMOTE_PATH_REMAP) {
		ret = set_slot(ms, 0, 0, ram_bytes, ram);
		if (ret)
			snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION (%llu MiB): %s",
				 (unsigned long long)(ram_bytes >> 20), strerror(-ret));
		return ret;
	}
	if ((caps->quirks2 & KVM_X86_QUIRK_SLOT_ZAP_ALL) && !keep_zap_quirk) {
		ret = disable_zap_all(ms);
		if (ret) {
			snprintf(err, errlen, "KVM_ENABLE_CAP(KVM_CAP_DISABLE_QUIRKS2, SLOT_ZAP_ALL): %s",
				 strerror(-ret));
			return ret;
		}
		ms->zap_all_quirk_off = true;
	}
	ms->hva = calloc(ms->nr_regions, sizeof(*ms->hva));
	ms->dirty_lost = calloc(ms->nr_regions, 1);
	if (!ms->hva || !ms->dirty_lost) {
		memslots__destroy(ms);
		snprintf(err, errlen, "memslots: out of memory for %u regions", ms->nr_regions);
		return -ENOMEM;
	}
	ms->view.ctx = ms;
	ms->view.serve = view_serve;
	return 0;
}

void memslots__destroy(struct memslots *ms)
{
	free(ms->hva);
	free(ms->dirty_lost);
	ms->hva = NULL;
	ms->dirty_lost = NULL;
}

int memslots__serve(struct memslots *ms, uint32_t r, void *hva)
{
	uint8_t *old;
	int ret;

	if (ms->path != PROMOTE_PATH_MEMSLOT || r >= ms->nr_regions)
		return -EINVAL;
	old = ms->hva[r];
	if (old == hva)
		return 0;
	/* KVM cannot re-point a slot in place: delete it, then create it anew. */
	if (old) {
		ret = set_slot(ms, r, (uint64_t)r << REGION_SHIFT, 0, old);
		if (ret)
			return ret;
		ms->hva[r] = NULL;
	}
	ret = set_slot(ms, r, (uint64_t)r << REGION_SHIFT, REGION_BYTES, hva);
	if (ret) {
		if (old && !set_slot(ms, r, (uint64_t)r << REGION_SHIFT, REGION_BYTES, old))
			ms->hva[r] = old;
		return ret;
	}
	ms->hva[r] = hva;
	ms->dirty_lost[r] = 1;
	ms->switches++;
	return 0;
}

/* Where the guest sees gpa, for an access of at most `*len` bytes that stays within one region. */
static uint8_t *region_ptr(const struct memslots *ms, uint64_t gpa, uint64_t *len)
{
	uint64_t room = REGION_BYTES - (gpa & (REGION_BYTES - 1));
	uint8_t *base;

	if (*len > room)
		*len = room;
	if (ms->path != PROMOTE_PATH_MEMSLOT)
		return ms->ram + gpa;
	base = ms->hva[gpa >> REGION_SHIFT];
	return base ? base + (gpa & (REGION_BYTES - 1)) : ms->ram + gpa;
}

void *memslots__gpa_ptr(const struct memslots *ms, uint64_t gpa, uint64_t len)
{
	uint8_t *start, *expect;
	uint64_t left = len, n;

	if (len > ms->ram_bytes || gpa > ms->ram_bytes - len)
		return NULL;
	n = left;
	start = region_ptr(ms, gpa, &n);
	for (expect = start + n, gpa += n, left -= n; left; expect += n, gpa += n, left -= n) {
		n = left;
		if (region_ptr(ms, gpa, &n) != expect)
			return NULL;
	}
	return start;
}

static int copy(const struct memslots *ms, uint64_t gpa, void *buf, uint64_t len, bool to_guest)
{
	uint8_t *b = buf;

	if (len > ms->ram_bytes || gpa > ms->ram_bytes - len)
		return -EFAULT;
	while (len) {
		uint64_t n = len;
		uint8_t *p = region_ptr(ms, gpa, &n);

		if (to_guest)
			memcpy(p, b, n);
		else
			memcpy(b, p, n);
		b += n;
		gpa += n;
		len -= n;
	}
	return 0;
}

int memslots__read(const struct memslots *ms, uint64_t gpa, void *buf, uint64_t len)
{
	return copy(ms, gpa, buf, len, false);
}

int memslots__write(const struct memslots *ms, uint64_t gpa, const void *buf, uint64_t len)
{
	return copy(ms, gpa, (void *)buf, len, true);
}

int memslots__set_flags(struct memslots *ms, uint32_t flags, char *err, size_t errlen)
{
	uint32_t old = ms->flags;
	int ret = 0;

	ms->flags = flags;
	if (ms->path != PROMOTE_PATH_MEMSLOT) {
		ret = set_slot(ms, 0, 0, ms->ram_bytes, ms->ram);
	} else {
		for (uint32_t r = 0; r < ms->nr_regions && !ret; r++)
			if (ms->hva[r])
				ret = set_slot(ms, r, (uint64_t)r << REGION_SHIFT, REGION_BYTES, ms->hva[r]);
		memset(ms->dirty_lost, 0, ms->nr_regions);
	}
	if (ret) {
		ms->flags = old;
		if (err)
			snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION (flags %#x): %s", flags, strerror(-ret));
	}
	return ret;
}

int memslots__get_dirty(struct memslots *ms, uint64_t *bitmap, char *err, size_t errlen)
{
	struct kvm_dirty_log log = { 0 };
	int ret;

	if (ms->path != PROMOTE_PATH_MEMSLOT) {
		log.slot = 0;
		log.dirty_bitmap = bitmap;
		ret = ms->ioctl_fn(ms->vm_fd, KVM_GET_DIRTY_LOG, &log);
		if (ret)
			snprintf(err, errlen, "KVM_GET_DIRTY_LOG: %s", strerror(-ret));
		return ret;
	}
	for (uint32_t r = 0; r < ms->nr_regions; r++) {
		uint64_t *words = bitmap + (uint64_t)r * (REGION_BYTES / 4096 / 64);

		log.slot = r;
		log.dirty_bitmap = words;
		ret = ms->ioctl_fn(ms->vm_fd, KVM_GET_DIRTY_LOG, &log);
		if (ret) {
			snprintf(err, errlen, "KVM_GET_DIRTY_LOG (slot %u): %s", r, strerror(-ret));
			return ret;
		}
		if (ms->dirty_lost[r]) {
			/* a new slot starts with an empty log: what the guest wrote before is unknown */
			memset(words, 0xff, REGION_BYTES / 4096 / 8);
			ms->dirty_lost[r] = 0;
		}
	}
	return 0;
}
