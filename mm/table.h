/* table.h: the mm's big metadata arrays (per frame, per GPA page) on transparent huge pages. */
#ifndef VMC_MM_TABLE_H
#define VMC_MM_TABLE_H

#include <stddef.h>

/*
 * In a VM a 4 KiB page fault is dear (~16 µs measured on kvm_pvm: 6 MiB touched in 24 ms, on
 * 2 MiB pages in under 1 ms), and a 1 GiB guest's tables are ~5 MiB touched at once by
 * mm__create. A table of at least MM_TABLE_HUGE_MIN bytes gets its own 2 MiB-aligned mapping with
 * MADV_HUGEPAGE (at most one 2 MiB page of slack); smaller ones come from malloc. Contents are
 * zero when allocated. The pointer carries its own size: realloc and free need no length.
 */
#define MM_TABLE_HUGE_MIN (1u << 20)

void *mm_table__alloc(size_t bytes);
/* Grow or shrink to bytes, keeping the contents; NULL (and p untouched) when out of memory. */
void *mm_table__realloc(void *p, size_t bytes);
void mm_table__free(void *p);

#endif
