/* format.h: the vmcompact snapshot file format (version 1): on-disk structures, checks, CRC32C. */
#ifndef VMC_SNAPSHOT_FORMAT_H
#define VMC_SNAPSHOT_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Snapshot file, version 1. All integers little-endian, all offsets in bytes from the file start.
 *
 *   [0, 4096)            header (struct snap_header, zero-padded to 4096 bytes)
 *   [vcpu_off, +len)     vCPU section: nr_vcpus × struct snap_vcpu (KVM regs, sregs, fpu, MSRs)
 *   [layout_off, +len)   optional layout section (flag SNAP_F_LAYOUT): struct snap_layout_hdr, then
 *                        nr_frames × u32 frame tags (GPFN, or SNAP_TAG_* for free/ballast/absent), then
 *                        nr_pageblocks × u8 migratetypes, zero-padded to 4 KiB
 *   [table_off, +len)    region table: nr_regions × struct snap_region
 *   [data_off, ...)      memory records: region r (2 MiB of guest-physical memory at GPA r × 2 MiB)
 *                        lives at data_off + r × 2 MiB, page p of it at + p × 4 KiB. data_off is
 *                        2 MiB aligned, so every record is 2 MiB aligned in the file (like QEMU's
 *                        mapped-ram). Only present pages are written; the rest is a hole (sparse file).
 *
 * A page is *present* when it is not all zero: an absent page reads back as zero, which is what a
 * fresh pool frame holds. Each region's entry has a 512-bit bitmap of present pages, their count, and
 * the CRC32C (Castagnoli) of the present pages' bytes concatenated in ascending page order.
 * The header carries the CRC32C of the vCPU section, of the layout section and of the region table,
 * and its own CRC32C (computed with header_crc = 0). The header is written last, then the file is
 * synced once: a snapshot whose writer died has no valid header; after a crash during that sync a
 * record that did not reach the disk fails its CRC when it is read.
 *
 * Compatibility: a reader refuses another magic or version, a header_size or record geometry it
 * does not know, and any section that does not lie inside the file. Version 1 stores the vCPU state
 * as the x86-64 KVM structures (struct kvm_regs / kvm_sregs / kvm_fpu), whose layout is kernel ABI.
 */

#define SNAP_MAGIC "VMCSNAP\0"
#define SNAP_VERSION 1u
#define SNAP_HEADER_SIZE 4096u
#define SNAP_PAGE_SIZE 4096u
#define SNAP_REGION_SIZE (2u << 20)
#define SNAP_PAGES_PER_REGION (SNAP_REGION_SIZE / SNAP_PAGE_SIZE)
#define SNAP_MAX_VCPUS 64u
#define SNAP_MAX_MSRS 16u
#define SNAP_MAX_GUEST_BYTES (64ull << 30)  /* what `run --mem` accepts */
#define SNAP_MAX_POOL_BYTES (128ull << 30)

enum snap_flags {
	SNAP_F_LAYOUT = 1u << 0,   /* a layout section is present */
	SNAP_F_VCPUS = 1u << 1,    /* the vCPU section is meaningful (not an mm-only snapshot) */
	SNAP_F_LIVE = 1u << 2,     /* memory was written while the guest ran, then the dirty pages again */
};
#define SNAP_F_KNOWN (SNAP_F_LAYOUT | SNAP_F_VCPUS | SNAP_F_LIVE)

/* Layout frame tags besides a GPFN. */
#define SNAP_TAG_FREE 0xffffffffu
#define SNAP_TAG_MOVABLE 0xfffffffeu
#define SNAP_TAG_UNMOVABLE 0xfffffffdu
#define SNAP_TAG_ABSENT 0xfffffffcu    /* a block given back to the host (elastic pool) */

struct snap_header {
	char magic[8];             /* SNAP_MAGIC */
	uint32_t version;          /* SNAP_VERSION */
	uint32_t header_size;      /* SNAP_HEADER_SIZE */
	uint32_t page_size;        /* 4096 */
	uint32_t region_size;      /* 2 MiB */
	uint64_t guest_bytes;      /* guest RAM, multiple of 2 MiB */
	uint64_t pool_bytes;       /* pool when saved (guest + slack), multiple of 2 MiB */
	uint32_t nr_regions;       /* guest_bytes / 2 MiB */
	uint32_t nr_vcpus;         /* 0 for an mm-only snapshot */
	uint32_t flags;            /* enum snap_flags */
	uint32_t vcpu_state_size;  /* sizeof(struct snap_vcpu) */
	uint64_t vcpu_off, vcpu_len;
	uint64_t layout_off, layout_len;  /* 0, 0 without SNAP_F_LAYOUT */
	uint64_t table_off, table_len;
	uint64_t data_off;         /* 2 MiB aligned */
	uint64_t file_size;        /* data_off + nr_regions × 2 MiB (apparent size) */
	uint64_t present_pages;    /* sum of the regions' nr_present */
	/* the layout's recipe when saved (informational; a linear restore keeps ballast and unmovable) */
	double age, ballast, unmovable, unmovable_scatter;
	uint64_t seed;
	uint64_t created_ns;       /* CLOCK_REALTIME */
	uint32_t vcpu_crc, layout_crc, table_crc;
	uint32_t header_crc;       /* over the whole 4096-byte header with this field zero */
};

struct snap_region {
	uint32_t nr_present;       /* pages present (bits set in present[]) */
	uint32_t crc;              /* CRC32C of the present pages in ascending order (0 if none) */
	uint64_t present[SNAP_PAGES_PER_REGION / 64];
};

struct snap_layout_hdr {
	uint32_t nr_frames;        /* pool_bytes / 4096 */
	uint32_t nr_pageblocks;    /* nr_frames / 512 */
	uint32_t nr_gpfns;         /* guest_bytes / 4096 */
	uint32_t reserved;
};

struct snap_msr {
	uint32_t index;
	uint32_t reserved;
	uint64_t data;
};

/*
 * One vCPU. The kvm_* blobs are copied verbatim from KVM_GET_REGS / KVM_GET_SREGS / KVM_GET_FPU
 * (x86-64: 144, 312 and 416 bytes); the sizes are fixed so that this file does not need linux/kvm.h.
 */
#define SNAP_KVM_REGS_SIZE 144u
#define SNAP_KVM_SREGS_SIZE 312u
#define SNAP_KVM_FPU_SIZE 416u
struct snap_vcpu {
	uint32_t id;
	uint32_t nr_msrs;
	uint8_t regs[SNAP_KVM_REGS_SIZE];
	uint8_t sregs[SNAP_KVM_SREGS_SIZE];
	uint8_t fpu[SNAP_KVM_FPU_SIZE];
	struct snap_msr msrs[SNAP_MAX_MSRS];
};

_Static_assert(sizeof(struct snap_header) <= SNAP_HEADER_SIZE, "header fits its block");
_Static_assert(sizeof(struct snap_region) == 72, "region entry is 72 bytes");
_Static_assert(sizeof(struct snap_vcpu) % 8 == 0, "vcpu state is 8-byte aligned");

/* CRC32C (Castagnoli), the SSE4.2 crc32 instruction where the CPU has it. crc starts at 0. */
uint32_t snap__crc32c(uint32_t crc, const void *buf, size_t len);

static inline uint64_t snap__align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static inline bool snap__page_present(const struct snap_region *r, unsigned p)
{
	return r->present[p / 64] >> (p % 64) & 1;
}

/* Offsets and lengths of every section for the given geometry; the header's fields are filled. */
void snap__header_geometry(struct snap_header *h, uint64_t guest_bytes, uint64_t pool_bytes,
			   uint32_t nr_vcpus, bool layout);
uint64_t snap__layout_len(uint64_t guest_bytes, uint64_t pool_bytes);
/* Compute header_crc over the 4096-byte header block h (whose first bytes are the struct). */
uint32_t snap__header_crc(const void *block);

/*
 * Validate a header block read from a file of actual size file_size: magic, version, geometry,
 * flags, every section inside the file and in order, header CRC. 0 or -EINVAL with one line in err.
 */
int snap__header_check(const void *block, uint64_t file_size, struct snap_header *out, char *err, size_t errlen);
/* One region entry: counts agree with the bitmap. */
int snap__region_check(const struct snap_region *r, uint32_t idx, char *err, size_t errlen);
/* The layout section: geometry agrees with the header, tags valid, every GPFN exactly once, mts valid. */
int snap__layout_check(const struct snap_header *h, const void *sec, uint64_t len, char *err, size_t errlen);

#endif
