/* loader.h: guest image setup: ELF64 agent loader with checks, identity page tables, GDT, boot info. */
#ifndef VMC_VMM_LOADER_H
#define VMC_VMM_LOADER_H

#include <stddef.h>
#include <stdint.h>
#include "vmcompact/abi.h"

/* Read a whole file (at most 16 MiB). *buf is malloc'd. */
int loader__read_file(const char *path, void **buf, size_t *len, char *err, size_t errlen);

/* Check and load an ELF64 x86-64 ET_EXEC into ram: every PT_LOAD must lie inside
 * [VMC_GPA_AGENT, VMC_GPA_AGENT_END) and inside the file; the entry must be in an
 * executable segment. Zero-fills .bss. */
int loader__load_elf(const void *elf, size_t len, uint8_t *ram, uint64_t ram_bytes,
		     uint64_t *entry, char *err, size_t errlen);

/* Identity map [0, ram_bytes + 2 MiB) with 2 MiB user RW pages (the extra page is the
 * MMIO hole, VMC_GPA_HOLE). ram_bytes must be a multiple of 2 MiB, <= VMC_MAX_RAM. */
int loader__setup_page_tables(uint8_t *ram, uint64_t ram_bytes, char *err, size_t errlen);
void loader__setup_gdt(uint8_t *ram);

/* This vCPU's slice of workload memory: the rest of RAM above VMC_GPA_WORKLOAD split
 * evenly in 2 MiB units; the last vCPU also gets the remainder. -EINVAL if a slice would
 * be empty. */
int loader__slice(uint64_t ram_bytes, uint32_t nr_vcpus, uint32_t id, uint64_t *start, uint64_t *end);

#endif
