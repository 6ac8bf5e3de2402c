/* test_snapshot.c: mm-level snapshot round trip (aged 256 MiB guest) on a file system: linear and layout restores, every byte, size bound. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/mm.h"
#include "vmm/snapshot/snapshot.h"

static char cleanup_path[4200]; /* removed at exit, also when a check fails */

static void cleanup(void)
{
	if (cleanup_path[0])
		unlink(cleanup_path);
}

#include "tests/check.h"

#define GUEST (256ull << 20)

/* The first 16 regions are whole (restored straight into their blocks); elsewhere about every 8th
 * page stays untouched (zero, absent from the file). The others get GPA-dependent words. */
static bool page_touched(uint64_t g)
{
	return g < 16 * 512 || (g * 0x9e3779b97f4a7c15ull >> 61) != 0;
}

static uint64_t word_of(uint64_t g, unsigned i)
{
	return (g << 20 | i) * 0xd6e8feb86659fd93ull ^ 0x5eed;
}

static uint64_t fill(struct mm *mm)
{
	uint64_t touched = 0;

	for (uint64_t g = 0; g < GUEST / 4096; g++) {
		uint64_t *w = (uint64_t *)window__gpa_ptr(&mm->win, g * 4096);

		if (!page_touched(g))
			continue;
		for (unsigned i = 0; i < 512; i++)
			w[i] = word_of(g, i);
		touched++;
	}
	return touched;
}

static void verify(struct mm *mm, const char *what)
{
	for (uint64_t g = 0; g < GUEST / 4096; g++) {
		const uint64_t *w = (const uint64_t *)window__gpa_ptr(&mm->win, g * 4096);

		for (unsigned i = 0; i < 512; i++) {
			uint64_t want = page_touched(g) ? word_of(g, i) : 0;

			if (w[i] != want)
				FAIL("%s: GPA 0x%" PRIx64 " word %u: %016" PRIx64 " != %016" PRIx64, what, g * 4096, i,
				     w[i], want);
		}
	}
}

static void create(struct mm *mm, struct mm_config *cfg, const char *what)
{
	char err[512];

	if (mm__create(mm, cfg, err, sizeof(err)))
		FAIL("%s: mm__create: %s", what, err);
}

static void same_buddyinfo(const struct mm_stat *a, const struct mm_stat *b)
{
	for (unsigned o = 0; o < MM_MAX_ORDER; o++)
		if (a->nr_free[o] != b->nr_free[o])
			FAIL("buddyinfo order %u: %" PRIu64 " != %" PRIu64, o, a->nr_free[o], b->nr_free[o]);
	for (int mt = 0; mt < MIGRATE_TYPES; mt++)
		CHECK(a->pageblocks_mt[mt] == b->pageblocks_mt[mt]);
	for (int o = 0; o < FRAME_OWNERS; o++)
		CHECK(a->frames_owned[o] == b->frames_owned[o]);
	CHECK(a->regions_in_order == b->regions_in_order);
	CHECK(a->vmas == b->vmas);
}

static void restore(const char *path, bool use_layout, struct mm *out, struct mm_stat *st)
{
	struct snap_restore_stats rs;
	struct snap_file f;
	struct mm_config cfg;
	char err[512];

	if (snap_file__open(&f, path, 0, err, sizeof(err)))
		FAIL("open %s: %s", path, err);
	CHECK(snap_file__mm_config(&f, use_layout, &cfg, err, sizeof(err)) == 0);
	cfg.prefault = false; /* the restore faults the pool in while the records land */
	create(out, &cfg, use_layout ? "layout restore" : "linear restore");
	if (snap_file__restore(&f, out, &rs, err, sizeof(err)))
		FAIL("restore %s: %s", path, err);
	printf("  %s restore: %" PRIu64 " pages in %.3f s (ready %.3f s), %s\n", use_layout ? "layout" : "linear",
	       rs.present_pages, rs.read_ns / 1e9, rs.ready_ns / 1e9, rs.io_note);
	snap_file__close(&f);
	verify(out, use_layout ? "layout restore" : "linear restore");
	mm__stat(out, st);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/var/tmp";
	/* with frame space to borrow: the blocks beyond the pool are absent, and the layout says so */
	struct mm_config cfg = { .guest_bytes = GUEST, .slack_bytes = GUEST * 6 / 100, .prefault = true,
				 .borrow_capacity_bytes = GUEST / 4, .aging = AGING_DEFAULTS };
	struct snap_write_stats ws;
	struct mm_stat st0, st1, st2;
	struct mm mm, lin, lay;
	uint64_t touched, present;
	uint32_t nr_frames;
	uint8_t *owner;
	gpfn_t *gpfn;
	bool huge_exact;
	char path[4096], err[512];

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid()) {
		printf("SKIP: needs root for the pool's private huge tmpfs\n");
		return 77;
	}
	snprintf(path, sizeof(path), "%s/vmcompact-test-snapshot.%d", dir, (int)getpid());
	snprintf(cleanup_path, sizeof(cleanup_path), "%s", path);
	atexit(cleanup);
	cfg.aging.age = 0.9;
	cfg.aging.seed = 7;
	create(&mm, &cfg, "aged");
	touched = fill(&mm);
	mm__stat(&mm, &st0);
	present = pool__present_bytes(&mm.pool);
	CHECK(st0.frames_owned[FRAME_ABSENT] == (GUEST / 4) / 4096);
	printf("%s: aged 256 MiB guest: backing_2m %.3f, %" PRIu64 " VMAs, %" PRIu64 " pages touched\n", dir,
	       st0.backing_2m, st0.vmas, touched);
	if (snapshot__write(&mm, path, true, NULL, 0, &ws, err, sizeof(err)))
		FAIL("snapshot: %s", err);
	printf("  wrote %" PRIu64 " pages in %.3f s, file %" PRIu64 " bytes on disk (%s)\n", ws.present_pages,
	       ws.total_ns / 1e9, ws.file_bytes, ws.io_note);
	CHECK(ws.present_pages == touched);
	/* Size bound: what the guest touched, plus 1 %. */
	if (ws.file_bytes > touched * 4096 + touched * 4096 / 100)
		FAIL("snapshot takes %" PRIu64 " bytes, touched memory is %" PRIu64, ws.file_bytes, touched * 4096);

	restore(path, false, &lin, &st1);
	printf("  linear: backing_2m %.3f (pool %s), %" PRIu64 " VMAs\n", st1.backing_2m,
	       pool_backing__name(lin.pool.backing), st1.vmas);
	CHECK(st1.regions_in_order == st1.nr_regions);
	CHECKF(pool__present_bytes(&lin.pool) == present, "linear restore: pool %" PRIu64 " MiB, saved %" PRIu64 " MiB",
	       pool__present_bytes(&lin.pool) >> 20, present >> 20);
	if (lin.pool.backing == POOL_BACKING_THP && lin.pool.huge_exact)
		CHECK(st1.backing_2m == 1.0);
	else
		printf("  note: no exact THP accounting here; backing_2m not asserted\n");
	mm__destroy(&lin);

	/* The saved layout, kept before the source goes: two aged guests at once need more
	 * mappings than the default vm.max_map_count allows. */
	nr_frames = mm.map.nr_frames;
	owner = malloc(nr_frames);
	gpfn = malloc(nr_frames * sizeof(*gpfn));
	CHECK(owner && gpfn);
	for (frame_t f = 0; f < nr_frames; f++) {
		owner[f] = (uint8_t)gpamap__owner(&mm.map, f);
		gpfn[f] = gpamap__gpfn(&mm.map, f);
	}
	huge_exact = mm.pool.huge_exact;
	mm__destroy(&mm);

	restore(path, true, &lay, &st2);
	printf("  layout: backing_2m %.3f (saved %.3f), %" PRIu64 " VMAs\n", st2.backing_2m, st0.backing_2m, st2.vmas);
	same_buddyinfo(&st0, &st2);
	CHECK(lay.map.nr_frames == nr_frames);
	CHECKF(pool__present_bytes(&lay.pool) == present, "layout restore: pool %" PRIu64 " MiB, saved %" PRIu64 " MiB",
	       pool__present_bytes(&lay.pool) >> 20, present >> 20);
	for (frame_t f = 0; f < nr_frames; f++) {
		CHECK(owner[f] == (uint8_t)gpamap__owner(&lay.map, f));
		CHECK(gpfn[f] == gpamap__gpfn(&lay.map, f));
	}
	if (lay.pool.huge_exact && huge_exact)
		CHECK(st2.backing_2m == st0.backing_2m);
	mm__destroy(&lay);
	free(owner);
	free(gpfn);
	unlink(path);
	printf("ok\n");
	return 0;
}
