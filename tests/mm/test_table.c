/* test_table.c: metadata tables: zeroed, contents kept across growth (malloc to mapping and back), huge ones 2 MiB-aligned. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "mm/table.h"
#include "tests/check.h"

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 131);
}

static bool same(const uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)(seed + i * 131))
			return false;
	return true;
}

static bool zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static bool huge_aligned(const void *p)
{
	return ((uintptr_t)p - 64) % (2u << 20) == 0;
}

int main(void)
{
	size_t small = 1000, big = MM_TABLE_HUGE_MIN + 12345, bigger = 5 * MM_TABLE_HUGE_MIN + 7;
	uint8_t *p;

	tu_case = "small tables come zeroed from malloc and grow in place";
	p = mm_table__alloc(small);
	CHECK(p && zero(p, small) && (uintptr_t)p % 16 == 0);
	fill(p, small, 1);
	p = mm_table__realloc(p, 2 * small);
	CHECK(p && same(p, small, 1) && zero(p + small, small));

	tu_case = "growth past the threshold moves to a 2 MiB-aligned mapping, contents kept";
	p = mm_table__realloc(p, big);
	CHECK(p && huge_aligned(p) && same(p, small, 1) && zero(p + small, big - small));
	fill(p, big, 2);

	tu_case = "growth inside the mapping's slack stays put and zeroes the new tail";
	{
		uint8_t *q = mm_table__realloc(p, big + 4096);

		CHECK(q == p && same(q, big, 2) && zero(q + big, 4096));
		p = q;
	}

	tu_case = "growth past the mapping moves, contents kept";
	p = mm_table__realloc(p, bigger);
	CHECK(p && huge_aligned(p) && same(p, big, 2) && zero(p + big + 4096, bigger - big - 4096));

	tu_case = "shrinking keeps the head";
	p = mm_table__realloc(p, small);
	CHECK(p && same(p, small, 2));
	mm_table__free(p);

	tu_case = "big tables come zeroed; NULL is freed and reallocated like malloc's";
	p = mm_table__alloc(bigger);
	CHECK(p && huge_aligned(p) && zero(p, bigger));
	mm_table__free(p);
	mm_table__free(NULL);
	p = mm_table__realloc(NULL, small);
	CHECK(p && zero(p, small));
	mm_table__free(p);
	printf("mm/table: ok\n");
	return 0;
}
