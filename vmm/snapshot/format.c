/* format.c: the snapshot format's geometry, validation of untrusted headers and sections, CRC32C. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/snapshot/format.h"

/* --- CRC32C: three interleaved hardware streams for big buffers, a table without SSE4.2 --- */

static uint32_t crc32c_table[256];
static int crc32c_hw = -1;

static void crc32c__init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc32c_table[i] = c;
	}
	__builtin_cpu_init();
	__atomic_store_n(&crc32c_hw, __builtin_cpu_supports("sse4.2") ? 1 : 0, __ATOMIC_RELEASE);
}

static uint32_t crc32c__sw(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len--)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

/* x^(8 * n) mod P, applied to crc: shift a CRC over n zero bytes (for combining streams). */
static uint32_t crc32c__shift(uint32_t crc, size_t n)
{
	uint32_t mat = 0x80000000u; /* x^0 in reflected form... built by repeated squaring below */
	uint32_t sq = 0x00800000u;  /* x^8 */
	uint64_t bits = (uint64_t)n;

	/* multiply in GF(2)[x] mod P, reflected */
	#define GF2MUL(a, b) ({ uint32_t a_ = (a), b_ = (b), r_ = 0; \
		for (int i_ = 0; i_ < 32; i_++) { if (a_ & 0x80000000u) r_ ^= b_; a_ <<= 1; \
			b_ = b_ & 1 ? (b_ >> 1) ^ 0x82f63b78u : b_ >> 1; } r_; })
	while (bits) {
		if (bits & 1)
			mat = GF2MUL(mat, sq);
		sq = GF2MUL(sq, sq);
		bits >>= 1;
	}
	return GF2MUL(mat, crc);
	#undef GF2MUL
}

__attribute__((target("sse4.2")))
static uint32_t crc32c__hw_stream(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}

/* Three independent streams hide the crc32 instruction's 3-cycle latency (about 3x faster). */
__attribute__((target("sse4.2")))
static uint32_t crc32c__hw(uint32_t crc, const uint8_t *p, size_t len)
{
	size_t third;
	uint64_t a, b = 0, c = 0;

	if (len < 3 * 4096)
		return crc32c__hw_stream(crc, p, len);
	third = len / 3 / 8 * 8;
	a = crc;
	for (size_t i = 0; i < third; i += 8) {
		uint64_t va, vb, vc;

		memcpy(&va, p + i, 8);
		memcpy(&vb, p + third + i, 8);
		memcpy(&vc, p + 2 * third + i, 8);
		a = __builtin_ia32_crc32di(a, va);
		b = __builtin_ia32_crc32di(b, vb);
		c = __builtin_ia32_crc32di(c, vc);
	}
	/* crc(A|B) = shift(crc(A), |B|) ^ crc0(B) with the raw (uninverted) register form used here */
	a = crc32c__shift((uint32_t)a, third) ^ b;
	a = crc32c__shift((uint32_t)a, third) ^ c;
	return crc32c__hw_stream((uint32_t)a, p + 3 * third, len - 3 * third);
}

uint32_t snap__crc32c(uint32_t crc, const void *buf, size_t len)
{
	uint32_t c = ~crc;

	if (__atomic_load_n(&crc32c_hw, __ATOMIC_ACQUIRE) < 0)
		crc32c__init();
	c = crc32c_hw ? crc32c__hw(c, buf, len) : crc32c__sw(c, buf, len);
	return ~c;
}

/* --- geometry --- */

uint64_t snap__layout_len(uint64_t guest_bytes, uint64_t pool_bytes)
{
	uint64_t frames = pool_bytes / SNAP_PAGE_SIZE;

	(void)guest_bytes;
	return snap__align_up(sizeof(struct snap_layout_hdr) + frames * 4 + frames / SNAP_PAGES_PER_REGION,
			      SNAP_PAGE_SIZE);
}

void snap__header_geometry(struct snap_header *h, uint64_t guest_bytes, uint64_t pool_bytes,
			   uint32_t nr_vcpus, bool layout)
{
	uint64_t off = SNAP_HEADER_SIZE;

	memcpy(h->magic, SNAP_MAGIC, sizeof(h->magic));
	h->version = SNAP_VERSION;
	h->header_size = SNAP_HEADER_SIZE;
	h->page_size = SNAP_PAGE_SIZE;
	h->region_size = SNAP_REGION_SIZE;
	h->guest_bytes = guest_bytes;
	h->pool_bytes = pool_bytes;
	h->nr_regions = (uint32_t)(guest_bytes / SNAP_REGION_SIZE);
	h->nr_vcpus = nr_vcpus;
	h->vcpu_state_size = sizeof(struct snap_vcpu);
	h->vcpu_off = off;
	h->vcpu_len = snap__align_up((uint64_t)nr_vcpus * sizeof(struct snap_vcpu), SNAP_PAGE_SIZE);
	off += h->vcpu_len;
	h->layout_off = layout ? off : 0;
	h->layout_len = layout ? snap__layout_len(guest_bytes, pool_bytes) : 0;
	off += h->layout_len;
	h->table_off = off;
	h->table_len = snap__align_up((uint64_t)h->nr_regions * sizeof(struct snap_region), SNAP_PAGE_SIZE);
	off += h->table_len;
	h->data_off = snap__align_up(off, SNAP_REGION_SIZE);
	h->file_size = h->data_off + (uint64_t)h->nr_regions * SNAP_REGION_SIZE;
	if (layout)
		h->flags |= SNAP_F_LAYOUT;
}

uint32_t snap__header_crc(const void *block)
{
	uint8_t copy[SNAP_HEADER_SIZE];
	struct snap_header *h = (struct snap_header *)copy;

	memcpy(copy, block, SNAP_HEADER_SIZE);
	h->header_crc = 0;
	return snap__crc32c(0, copy, SNAP_HEADER_SIZE);
}

/* --- validation of untrusted input --- */

#define CHECK(cond, ...) do { if (!(cond)) { snprintf(err, errlen, __VA_ARGS__); return -EINVAL; } } while (0)

static bool frac_ok(double v)
{
	return v >= 0.0 && v <= 1.0;
}

/* [off, off + len) inside [lo, file_size), page aligned, no overflow. */
static bool section_ok(uint64_t off, uint64_t len, uint64_t lo, uint64_t file_size)
{
	return off >= lo && off % SNAP_PAGE_SIZE == 0 && len % SNAP_PAGE_SIZE == 0 &&
	       off <= file_size && len <= file_size - off;
}

static int snap__geometry_check(const struct snap_header *h, uint64_t file_size, char *err, size_t errlen)
{
	struct snap_header want;

	CHECK(h->page_size == SNAP_PAGE_SIZE && h->region_size == SNAP_REGION_SIZE,
	      "snapshot: page size %u / region size %u, this vmcompact knows only 4096 / 2 MiB",
	      h->page_size, h->region_size);
	CHECK(h->guest_bytes && h->guest_bytes % SNAP_REGION_SIZE == 0 && h->guest_bytes <= SNAP_MAX_GUEST_BYTES,
	      "snapshot: guest size %" PRIu64 " bytes is not a multiple of 2 MiB in 2 MiB..64 GiB", h->guest_bytes);
	CHECK(h->pool_bytes >= h->guest_bytes && h->pool_bytes % SNAP_REGION_SIZE == 0 &&
	      h->pool_bytes <= SNAP_MAX_POOL_BYTES,
	      "snapshot: pool size %" PRIu64 " bytes is not a multiple of 2 MiB between the guest's %" PRIu64
	      " bytes and 128 GiB",
	      h->pool_bytes, h->guest_bytes);
	CHECK(h->nr_regions == h->guest_bytes / SNAP_REGION_SIZE,
	      "snapshot: %u regions for %" PRIu64 " MiB of guest memory", h->nr_regions, h->guest_bytes >> 20);
	CHECK(h->nr_vcpus <= SNAP_MAX_VCPUS, "snapshot: %u vCPUs (at most %u)", h->nr_vcpus, SNAP_MAX_VCPUS);
	CHECK(!(h->flags & ~SNAP_F_KNOWN), "snapshot: unknown flags 0x%x", h->flags & ~SNAP_F_KNOWN);
	CHECK(!(h->flags & SNAP_F_VCPUS) || h->nr_vcpus, "snapshot: vCPU state flagged but 0 vCPUs");
	CHECK(h->vcpu_state_size == sizeof(struct snap_vcpu),
	      "snapshot: vCPU state of %u bytes, this vmcompact writes %zu", h->vcpu_state_size, sizeof(struct snap_vcpu));
	CHECK(frac_ok(h->age) && frac_ok(h->ballast) && frac_ok(h->unmovable) && frac_ok(h->unmovable_scatter),
	      "snapshot: layout recipe out of range (age %g, ballast %g, unmovable %g)", h->age, h->ballast, h->unmovable);
	memset(&want, 0, sizeof(want));
	snap__header_geometry(&want, h->guest_bytes, h->pool_bytes, h->nr_vcpus, h->flags & SNAP_F_LAYOUT);
	CHECK(h->vcpu_off == want.vcpu_off && h->vcpu_len == want.vcpu_len && h->layout_off == want.layout_off &&
	      h->layout_len == want.layout_len && h->table_off == want.table_off && h->table_len == want.table_len &&
	      h->data_off == want.data_off && h->file_size == want.file_size,
	      "snapshot: section offsets do not match the geometry of a %" PRIu64 " MiB guest", h->guest_bytes >> 20);
	CHECK(section_ok(h->vcpu_off, h->vcpu_len, SNAP_HEADER_SIZE, file_size) &&
	      section_ok(h->table_off, h->table_len, SNAP_HEADER_SIZE, file_size) &&
	      (!h->layout_len || section_ok(h->layout_off, h->layout_len, SNAP_HEADER_SIZE, file_size)),
	      "snapshot: truncated: a section lies outside the %" PRIu64 "-byte file", file_size);
	CHECK(file_size >= h->file_size, "snapshot: truncated: %" PRIu64 " bytes, the header says %" PRIu64,
	      file_size, h->file_size);
	CHECK(h->present_pages <= (uint64_t)h->nr_regions * SNAP_PAGES_PER_REGION,
	      "snapshot: %" PRIu64 " present pages in %u regions", h->present_pages, h->nr_regions);
	return 0;
}

int snap__header_check(const void *block, uint64_t file_size, struct snap_header *out, char *err, size_t errlen)
{
	struct snap_header h;
	uint32_t crc;

	CHECK(file_size >= SNAP_HEADER_SIZE, "snapshot: file of %" PRIu64 " bytes is shorter than its header",
	      file_size);
	memcpy(&h, block, sizeof(h));
	CHECK(!memcmp(h.magic, SNAP_MAGIC, sizeof(h.magic)), "snapshot: not a vmcompact snapshot (bad magic)");
	CHECK(h.version == SNAP_VERSION, "snapshot: format version %u, this vmcompact reads version %u",
	      h.version, SNAP_VERSION);
	CHECK(h.header_size == SNAP_HEADER_SIZE, "snapshot: header size %u, expected %u", h.header_size,
	      SNAP_HEADER_SIZE);
	crc = snap__header_crc(block);
	CHECK(crc == h.header_crc, "snapshot: header checksum mismatch (stored %08x, computed %08x)",
	      h.header_crc, crc);
	if (snap__geometry_check(&h, file_size, err, errlen))
		return -EINVAL;
	*out = h;
	return 0;
}

int snap__region_check(const struct snap_region *r, uint32_t idx, char *err, size_t errlen)
{
	uint32_t n = 0;

	for (unsigned i = 0; i < SNAP_PAGES_PER_REGION / 64; i++)
		n += (uint32_t)__builtin_popcountll(r->present[i]);
	CHECK(n == r->nr_present, "snapshot: region %u says %u pages present, its bitmap %u", idx, r->nr_present, n);
	CHECK(n || !r->crc, "snapshot: region %u has no page but a checksum", idx);
	return 0;
}

int snap__layout_check(const struct snap_header *h, const void *sec, uint64_t len, char *err, size_t errlen)
{
	const struct snap_layout_hdr *lh = sec;
	uint32_t nr_frames = (uint32_t)(h->pool_bytes / SNAP_PAGE_SIZE), nr_gpfns = (uint32_t)(h->guest_bytes / SNAP_PAGE_SIZE);
	const uint32_t *tag;
	const uint8_t *mt;
	uint8_t *seen;
	int ret = 0;

	CHECK(len >= snap__layout_len(h->guest_bytes, h->pool_bytes), "snapshot: layout section too short");
	CHECK(lh->nr_frames == nr_frames && lh->nr_pageblocks == nr_frames / SNAP_PAGES_PER_REGION &&
	      lh->nr_gpfns == nr_gpfns,
	      "snapshot: layout of %u frames / %u guest pages does not match the header's %u / %u",
	      lh->nr_frames, lh->nr_gpfns, nr_frames, nr_gpfns);
	tag = (const uint32_t *)(lh + 1);
	mt = (const uint8_t *)(tag + nr_frames);
	seen = calloc(nr_gpfns / 8 + 1, 1);
	CHECK(seen, "snapshot: out of memory checking the layout");
	for (uint32_t f = 0; f < nr_frames && !ret; f++) {
		uint32_t t = tag[f];

		if (t == SNAP_TAG_FREE || t == SNAP_TAG_MOVABLE || t == SNAP_TAG_UNMOVABLE || t == SNAP_TAG_ABSENT)
			continue;
		if (t >= nr_gpfns || seen[t / 8] >> (t % 8) & 1) {
			snprintf(err, errlen, "snapshot: layout frame %u holds %s guest page %u", f,
				 t >= nr_gpfns ? "nonexistent" : "an already placed", t);
			ret = -EINVAL;
		} else {
			seen[t / 8] |= (uint8_t)(1u << (t % 8));
		}
	}
	for (uint32_t g = 0; g < nr_gpfns && !ret; g++)
		if (!(seen[g / 8] >> (g % 8) & 1)) {
			snprintf(err, errlen, "snapshot: layout places no frame for guest page %u", g);
			ret = -EINVAL;
		}
	for (uint32_t b = 0; b < lh->nr_pageblocks && !ret; b++)
		if (mt[b] > 2) {
			snprintf(err, errlen, "snapshot: layout pageblock %u has migratetype %u", b, mt[b]);
			ret = -EINVAL;
		}
	free(seen);
	return ret;
}
