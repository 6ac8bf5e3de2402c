/* test_corrupt.c: CRC32C checks, and snapshot files that are truncated, flipped, of another version or size: all refused cleanly. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/mm.h"
#include "vmm/snapshot/snapshot.h"

static char cleanup_path[2][256]; /* removed at exit, also when a check fails */

static void cleanup(void)
{
	for (int i = 0; i < 2; i++)
		if (cleanup_path[i][0])
			unlink(cleanup_path[i]);
}

#include "tests/check.h"

#define GUEST (16ull << 20)

static uint64_t rng_state = 42;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void test_crc(void)
{
	size_t len = 3 << 20;
	uint8_t *buf = malloc(len);
	uint32_t whole, pieces = 0;

	CHECK(snap__crc32c(0, "123456789", 9) == 0xe3069283u); /* the standard check value */
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)rnd();
	for (int t = 0; t < 50; t++) {
		size_t n = rnd() % len, cut = n ? rnd() % n : 0;

		/* the three-stream path (long buffers) must agree with chaining short pieces */
		whole = snap__crc32c(0, buf, n);
		pieces = 0;
		for (size_t off = 0; off < n; off += 4000)
			pieces = snap__crc32c(pieces, buf + off, n - off < 4000 ? n - off : 4000);
		if (whole != pieces)
			FAIL("crc of %zu bytes: %08x whole, %08x in pieces", n, whole, pieces);
		CHECK(snap__crc32c(snap__crc32c(0, buf, cut), buf + cut, n - cut) == whole);
	}
	free(buf);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat sb;
	uint8_t *b;
	int fd = open(path, O_RDONLY);

	CHECK(fd >= 0 && !fstat(fd, &sb));
	*len = (size_t)sb.st_size;
	b = malloc(*len);
	CHECK(b && pread(fd, b, *len, 0) == (ssize_t)*len);
	close(fd);
	return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0 && pwrite(fd, b, len, 0) == (ssize_t)len);
	close(fd);
}

/* Open (and, if that passes, restore) path: 0 if everything was accepted, else -EINVAL with a message. */
static int try_restore(const char *path, char *err, size_t errlen, struct mm *orig)
{
	struct snap_restore_stats rs;
	struct snap_file f;
	struct mm_config cfg;
	struct mm mm;
	int ret;

	err[0] = 0;
	ret = snap_file__open(&f, path, 4, err, errlen);
	if (ret)
		return ret;
	CHECK(!snap_file__mm_config(&f, f.has_layout, &cfg, err, errlen));
	cfg.prefault = true;
	if (mm__create(&mm, &cfg, err, errlen))
		FAIL("mm__create: %s", err);
	ret = snap_file__restore(&f, &mm, &rs, err, errlen);
	if (!ret) /* accepted: then it must be exactly the original memory */
		for (uint64_t gpa = 0; gpa < GUEST; gpa += 4096)
			CHECK(!memcmp(window__gpa_ptr(&mm.win, gpa), window__gpa_ptr(&orig->win, gpa), 4096));
	mm__destroy(&mm);
	snap_file__close(&f);
	return ret;
}

static void expect_refused(const char *path, const char *what, const char *needle, struct mm *orig)
{
	char err[512];
	int ret = try_restore(path, err, sizeof(err), orig);

	if (ret != -EINVAL || !err[0] || (needle && !strstr(err, needle)))
		FAIL("%s: got %d '%s', expected -EINVAL mentioning '%s'", what, ret, err, needle ? needle : "");
	printf("  %-28s refused: %s\n", what, err);
}

/* Rewrite the header's CRC after a deliberate change, so that the field check itself is tested. */
static void reseal(uint8_t *b)
{
	struct snap_header h;

	memcpy(&h, b, sizeof(h));
	h.header_crc = 0;
	memcpy(b, &h, sizeof(h));
	h.header_crc = snap__header_crc(b);
	memcpy(b, &h, sizeof(h));
}

/* A damaged copy of orig: the header field or byte changed by `damage`, written to bad. */
struct corrupt_case {
	const char *what, *needle;
	void (*damage)(uint8_t *b, const struct snap_header *h);
};

static void damage_magic(uint8_t *b, const struct snap_header *h) { memcpy(b, "QCOWxxxx", 8); }
static void damage_version(uint8_t *b, const struct snap_header *h) { ((struct snap_header *)b)->version = 2; reseal(b); }
static void damage_size2x(uint8_t *b, const struct snap_header *h) { ((struct snap_header *)b)->guest_bytes = 2 * GUEST; reseal(b); }
static void damage_size4k(uint8_t *b, const struct snap_header *h) { ((struct snap_header *)b)->guest_bytes = GUEST + 4096; reseal(b); }
static void damage_pool(uint8_t *b, const struct snap_header *h) { ((struct snap_header *)b)->pool_bytes = 1ull << 50; reseal(b); }
static void damage_header(uint8_t *b, const struct snap_header *h) { b[40] ^= 1; }
static void damage_layout(uint8_t *b, const struct snap_header *h) { b[h->layout_off + 4096 + 3] ^= 0x80; }
static void damage_table(uint8_t *b, const struct snap_header *h) { b[h->table_off + 7] ^= 4; }
/* page 1 is present (gpa/4096 % 3 != 0) */
static void damage_page(uint8_t *b, const struct snap_header *h) { b[h->data_off + 4096 + 17] ^= 1; }
static void damage_region(uint8_t *b, const struct snap_header *h) { b[h->data_off + (2 << 20) + 12345] ^= 0x10; }

static const struct corrupt_case corrupt_cases[] = {
	{ "bad magic", "magic", damage_magic },
	{ "version 2", "version 2", damage_version },
	{ "guest size doubled", NULL, damage_size2x },
	{ "guest size not 2 MiB", "multiple of 2 MiB", damage_size4k },
	{ "pool of 1 PiB", "pool size", damage_pool },
	{ "header byte flipped", "header checksum", damage_header },
	{ "layout byte flipped", "layout section checksum", damage_layout },
	{ "table byte flipped", "region table section checksum", damage_table },
	{ "memory byte flipped", "region 0", damage_page },
	{ "whole-region byte flipped", "region 1", damage_region },
};

/* Hand-made damage: truncations, then each case of corrupt_cases. */
static void test_hand_made(const char *bad, const uint8_t *orig, size_t len, struct mm *mm)
{
	struct snap_header h;
	uint8_t *b = malloc(len);

	CHECK(b);
	memcpy(&h, orig, sizeof(h));
	spit(bad, orig, 100);
	expect_refused(bad, "100 bytes", "shorter than its header", mm);
	spit(bad, orig, len - 4096);
	expect_refused(bad, "last page cut", "truncated", mm);
	spit(bad, orig, h.table_off + 100);
	expect_refused(bad, "cut in the region table", "truncated", mm);
	for (size_t i = 0; i < sizeof(corrupt_cases) / sizeof(corrupt_cases[0]); i++) {
		memcpy(b, orig, len);
		corrupt_cases[i].damage(b, &h);
		spit(bad, b, len);
		expect_refused(bad, corrupt_cases[i].what, corrupt_cases[i].needle, mm);
	}
	free(b);
}

/* Random damage anywhere: a change in the metadata is always refused; in the data area only a
 * change to a present page is (a hole is never read), and an accepted file restores exactly. */
static void test_random(const char *bad, const uint8_t *orig, size_t len, struct mm *mm)
{
	struct snap_header h;
	uint8_t *b = malloc(len);
	int refused = 0, accepted = 0;
	char err[512];

	CHECK(b);
	memcpy(&h, orig, sizeof(h));
	for (int t = 0; t < 300; t++) {
		size_t blen = len;
		uint64_t off;
		int ret;

		memcpy(b, orig, len);
		if (t % 5 == 0) {
			blen = (size_t)(rnd() % len);
		} else {
			off = t % 2 ? rnd() % (h.table_off + h.table_len) : h.data_off + rnd() % (len - h.data_off);
			b[off] ^= (uint8_t)(1 + rnd() % 255);
		}
		spit(bad, b, blen);
		ret = try_restore(bad, err, sizeof(err), mm);
		if (ret && (ret != -EINVAL || !err[0]))
			FAIL("random case %d: %d '%s'", t, ret, err);
		if (!ret && t % 5 && t % 2)
			FAIL("random case %d: a metadata change was accepted", t);
		ret ? refused++ : accepted++;
	}
	printf("  random damage: %d refused, %d accepted (changes to holes only) and restored exactly\n",
	       refused, accepted);
	free(b);
}

int main(void)
{
	struct mm_config cfg = { .guest_bytes = GUEST, .slack_bytes = 2 << 20, .prefault = true, .aging = AGING_DEFAULTS };
	char path[240], bad[256], err[512];
	size_t len;
	uint8_t *orig;
	struct mm mm;

	setvbuf(stdout, NULL, _IOLBF, 0);
	test_crc();
	if (geteuid()) {
		printf("crc ok; SKIP the file cases: they need root for the pool's private huge tmpfs\n");
		return 77;
	}
	cfg.aging.age = 0.5;
	if (mm__create(&mm, &cfg, err, sizeof(err)))
		FAIL("mm__create: %s", err);
	for (uint64_t gpa = 0; gpa < GUEST; gpa += 4096)
		if (gpa / 4096 % 3 || (gpa >> 21) == 1) /* region 1 whole: read straight into its block */
			memset(window__gpa_ptr(&mm.win, gpa), (int)(gpa >> 12) | 1, 4096);
	snprintf(path, sizeof(path), "/dev/shm/vmcompact-corrupt.%d", (int)getpid());
	snprintf(bad, sizeof(bad), "%s.bad", path);
	snprintf(cleanup_path[0], sizeof(cleanup_path[0]), "%s", path);
	snprintf(cleanup_path[1], sizeof(cleanup_path[1]), "%s", bad);
	atexit(cleanup);
	if (snapshot__write(&mm, path, true, NULL, 0, NULL, err, sizeof(err)))
		FAIL("snapshot: %s", err);
	CHECK(try_restore(path, err, sizeof(err), &mm) == 0);
	orig = slurp(path, &len);
	test_hand_made(bad, orig, len, &mm);
	test_random(bad, orig, len, &mm);
	free(orig);
	unlink(bad);
	unlink(path);
	mm__destroy(&mm);
	printf("ok\n");
	return 0;
}
