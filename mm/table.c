/* table.c: the mm's big metadata arrays on transparent huge pages; small ones from malloc. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mm/table.h"

#define TABLE_ALIGN (2u << 20)

/* In front of every table; keeps the data 64-byte aligned. */
struct table_hdr {
	size_t map_len;     /* bytes mapped from the header on; 0: from malloc */
	size_t bytes;       /* what the caller asked for */
	uint8_t pad[48];
};

_Static_assert(sizeof(struct table_hdr) == 64, "the table header keeps data 64-byte aligned");

static struct table_hdr *table__hdr(void *p)
{
	return (struct table_hdr *)p - 1;
}

static void *table__map(size_t bytes)
{
	size_t len = (bytes + sizeof(struct table_hdr) + TABLE_ALIGN - 1) & ~(size_t)(TABLE_ALIGN - 1);
	uint8_t *raw = mmap(NULL, len + TABLE_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *base;
	struct table_hdr *h;

	if (raw == MAP_FAILED)
		return NULL;
	base = (uint8_t *)(((uintptr_t)raw + TABLE_ALIGN - 1) & ~(uintptr_t)(TABLE_ALIGN - 1));
	if (base > raw)
		munmap(raw, (size_t)(base - raw));
	munmap(base + len, (size_t)(raw + TABLE_ALIGN - base));
	madvise(base, len, MADV_HUGEPAGE);  /* no THP (disabled, or another kernel): 4 KiB pages, still correct */
	h = (struct table_hdr *)base;
	h->map_len = len;
	h->bytes = bytes;
	return h + 1;
}

void *mm_table__alloc(size_t bytes)
{
	struct table_hdr *h;

	if (bytes >= MM_TABLE_HUGE_MIN)
		return table__map(bytes);
	h = calloc(1, sizeof(*h) + bytes);
	if (!h)
		return NULL;
	h->bytes = bytes;
	return h + 1;
}

void *mm_table__realloc(void *p, size_t bytes)
{
	struct table_hdr *h;
	void *n;

	if (!p)
		return mm_table__alloc(bytes);
	h = table__hdr(p);
	if (h->map_len && bytes + sizeof(*h) <= h->map_len) {
		if (bytes > h->bytes)
			memset((uint8_t *)p + h->bytes, 0, bytes - h->bytes);
		h->bytes = bytes;
		return p;
	}
	if (!h->map_len && bytes < MM_TABLE_HUGE_MIN) {
		size_t old = h->bytes;

		h = realloc(h, sizeof(*h) + bytes);
		if (!h)
			return NULL;
		if (bytes > old)
			memset((uint8_t *)(h + 1) + old, 0, bytes - old);
		h->bytes = bytes;
		return h + 1;
	}
	n = mm_table__alloc(bytes);
	if (!n)
		return NULL;
	memcpy(n, p, h->bytes < bytes ? h->bytes : bytes);
	mm_table__free(p);
	return n;
}

void mm_table__free(void *p)
{
	struct table_hdr *h;

	if (!p)
		return;
	h = table__hdr(p);
	if (h->map_len)
		munmap(h, h->map_len);
	else
		free(h);
}
