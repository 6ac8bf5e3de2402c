/* loader.c: guest image setup: ELF64 agent loader with checks, identity page tables, GDT, boot info. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "vmm/loader.h"

#define LOADER_MAX_FILE (16u << 20)

/* Page-table entry bits. */
#define PTE_P   (1ull << 0)
#define PTE_RW  (1ull << 1)
#define PTE_US  (1ull << 2)
#define PTE_A   (1ull << 5)
#define PTE_D   (1ull << 6)
#define PTE_PS  (1ull << 7)

int loader__read_file(const char *path, void **buf, size_t *len, char *err, size_t errlen)
{
	struct stat stbuf;
	uint8_t *p = NULL;
	size_t done = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "open %s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &stbuf) < 0 || !S_ISREG(stbuf.st_mode) || stbuf.st_size <= 0 ||
	    stbuf.st_size > LOADER_MAX_FILE) {
		snprintf(err, errlen, "%s: not a regular file of 1 byte to 16 MiB", path);
		rc = -EINVAL;
		goto fail;
	}
	p = malloc((size_t)stbuf.st_size);
	if (!p) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	while (done < (size_t)stbuf.st_size) {
		ssize_t n = read(fd, p + done, (size_t)stbuf.st_size - done);
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "read %s: %s", path, n < 0 ? strerror(errno) : "short read");
			goto fail;
		}
		done += (size_t)n;
	}
	close(fd);
	*buf = p;
	*len = done;
	return 0;
fail:
	free(p);
	close(fd);
	return rc;
}

int loader__load_elf(const void *elf, size_t len, uint8_t *ram, uint64_t ram_bytes,
		     uint64_t *entry, char *err, size_t errlen)
{
	const Elf64_Ehdr *eh = elf;
	const uint8_t *img = elf;
	int nr_load = 0, entry_ok = 0;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG)) {
		snprintf(err, errlen, "agent: not an ELF file");
		return -ENOEXEC;
	}
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != EM_X86_64) {
		snprintf(err, errlen, "agent: not an ELF64 little-endian x86-64 file");
		return -ENOEXEC;
	}
	if (eh->e_type != ET_EXEC) {
		snprintf(err, errlen, "agent: ELF type %u, want ET_EXEC (static, non-PIE)", eh->e_type);
		return -ENOEXEC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phnum > 64 ||
	    eh->e_phoff > len || (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff) {
		snprintf(err, errlen, "agent: bad program header table");
		return -ENOEXEC;
	}
	if (ram_bytes < VMC_GPA_AGENT_END) {
		snprintf(err, errlen, "agent: guest RAM too small");
		return -EINVAL;
	}
	for (int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, img + eh->e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_filesz > ph.p_memsz) {
			snprintf(err, errlen, "agent: segment %d: filesz 0x%llx > memsz 0x%llx", i,
				 (unsigned long long)ph.p_filesz, (unsigned long long)ph.p_memsz);
			return -ENOEXEC;
		}
		if (ph.p_paddr < VMC_GPA_AGENT || ph.p_memsz > VMC_GPA_AGENT_END - VMC_GPA_AGENT ||
		    ph.p_paddr > VMC_GPA_AGENT_END - ph.p_memsz || ph.p_vaddr != ph.p_paddr) {
			snprintf(err, errlen, "agent: segment %d [0x%llx, +0x%llx) outside [0x%llx, 0x%llx) or vaddr != paddr",
				 i, (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz,
				 VMC_GPA_AGENT, VMC_GPA_AGENT_END);
			return -ENOEXEC;
		}
		if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset) {
			snprintf(err, errlen, "agent: segment %d: file range past end of file", i);
			return -ENOEXEC;
		}
		memcpy(ram + ph.p_paddr, img + ph.p_offset, ph.p_filesz);
		memset(ram + ph.p_paddr + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
		if ((ph.p_flags & PF_X) && eh->e_entry >= ph.p_paddr && eh->e_entry < ph.p_paddr + ph.p_memsz)
			entry_ok = 1;
		nr_load++;
	}
	if (!nr_load) {
		snprintf(err, errlen, "agent: no PT_LOAD segment");
		return -ENOEXEC;
	}
	if (!entry_ok) {
		snprintf(err, errlen, "agent: entry 0x%llx not in an executable segment",
			 (unsigned long long)eh->e_entry);
		return -ENOEXEC;
	}
	*entry = eh->e_entry;
	return 0;
}

int loader__setup_page_tables(uint8_t *ram, uint64_t ram_bytes, char *err, size_t errlen)
{
	uint64_t mapped = ram_bytes + VMC_HUGE_SIZE;     /* RAM + the MMIO hole page */
	uint64_t nr_pd = (mapped + (1ull << 30) - 1) >> 30;
	uint64_t *pml4 = (uint64_t *)(ram + VMC_GPA_PML4);
	uint64_t *pdpt = (uint64_t *)(ram + VMC_GPA_PDPT);
	uint64_t *pd = (uint64_t *)(ram + VMC_GPA_PD);
	const uint64_t table = PTE_P | PTE_RW | PTE_US | PTE_A;

	if (ram_bytes % VMC_HUGE_SIZE || ram_bytes < VMC_MIN_RAM || ram_bytes > VMC_MAX_RAM) {
		snprintf(err, errlen, "guest RAM %llu bytes: need a multiple of 2 MiB in [%llu MiB, %llu GiB]",
			 (unsigned long long)ram_bytes, VMC_MIN_RAM >> 20, VMC_MAX_RAM >> 30);
		return -EINVAL;
	}
	memset(pml4, 0, VMC_PAGE_SIZE);
	memset(pdpt, 0, VMC_PAGE_SIZE);
	memset(pd, 0, nr_pd * VMC_PAGE_SIZE);
	pml4[0] = VMC_GPA_PDPT | table;
	for (uint64_t i = 0; i < nr_pd; i++)
		pdpt[i] = (VMC_GPA_PD + i * VMC_PAGE_SIZE) | table;
	/* Accessed/dirty preset: the walker never has to write the guest's tables. */
	for (uint64_t i = 0; i < mapped / VMC_HUGE_SIZE; i++)
		pd[i] = i * VMC_HUGE_SIZE | table | PTE_D | PTE_PS;
	return 0;
}

void loader__setup_gdt(uint8_t *ram)
{
	uint64_t *gdt = (uint64_t *)(ram + VMC_GPA_GDT);

	memset(gdt, 0, VMC_PAGE_SIZE);
	gdt[VMC_SEL_KERNEL_CS >> 3] = 0x00af9b000000ffffull;  /* 64-bit code, DPL0 */
	gdt[VMC_SEL_KERNEL_DS >> 3] = 0x00cf93000000ffffull;  /* data, DPL0 */
	gdt[VMC_SEL_USER_DS >> 3] = 0x00cff3000000ffffull;    /* data, DPL3 */
	gdt[VMC_SEL_USER_CS >> 3] = 0x00affb000000ffffull;    /* 64-bit code, DPL3 */
}

int loader__slice(uint64_t ram_bytes, uint32_t nr_vcpus, uint32_t id, uint64_t *start, uint64_t *end)
{
	uint64_t total, per;

	if (!nr_vcpus || id >= nr_vcpus || ram_bytes <= VMC_GPA_WORKLOAD)
		return -EINVAL;
	total = ram_bytes - VMC_GPA_WORKLOAD;
	per = total / nr_vcpus / VMC_HUGE_SIZE * VMC_HUGE_SIZE;
	if (!per)
		return -EINVAL;
	*start = VMC_GPA_WORKLOAD + id * per;
	*end = id == nr_vcpus - 1 ? ram_bytes : *start + per;
	return 0;
}
