/* pvh.h: the agent under QEMU (PVH boot): start info, port I/O, command line, JSON result line. */
#ifndef VMC_AGENT_PVH_H
#define VMC_AGENT_PVH_H

#include "agent.h"

/* Xen's public start_info.h (version 1 adds the memory map), as QEMU's pvh.bin fills it. */
#define HVM_START_MAGIC  0x336ec578u
#define HVM_MEMMAP_RAM   1u

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;    /* version >= 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

/* QEMU devices the agent uses (port I/O; CPL3 may do it because IOPL=3). */
#define PVH_COM1          0x3f8
#define PVH_DEBUG_EXIT    0xf4      /* -device isa-debug-exit,iobase=0xf4,iosize=4 */
#define PVH_FW_CFG_SEL    0x510
#define PVH_FW_CFG_DATA   0x511
#define PVH_TRAMPOLINE    0x8000    /* APs start here in real mode (SIPI vector 0x08) */

static inline void pvh__outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void pvh__outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void pvh__outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t pvh__inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* pvh_hw.c */
uint64_t pvh_hw__tsc_khz(const char **source);    /* 0 if unknown; *source names the method */
uint64_t pvh_hw__qemu_cpus(void);                  /* fw_cfg's vCPU count, 1 without fw_cfg */
uint32_t pvh_hw__start_aps(uint32_t nr, uint64_t tsc_khz);   /* vCPUs running, BSP included */

/* Options of the -append line beyond the workload spec (pvh_spec.c). */
struct pvh_opts {
	uint64_t progress_ms;     /* a progress line at most this often; 0 = none (default 1000) */
	uint64_t tsc_khz;         /* forced TSC frequency; 0 = detect */
	char spec[128];           /* the workload spec as given (first token) */
};

int pvh_spec__parse(const char *cmdline, struct vmc_boot_info *bi, struct pvh_opts *o,
		    char *err, size_t errlen);

/* What the JSON result line says besides the vCPUs' last reports (pvh_json.c). */
struct pvh_result {
	uint32_t nr_vcpus;
	const struct vmc_boot_info *bi;           /* [nr_vcpus] */
	const struct vmc_hc_report *report;       /* [nr_vcpus] */
	const uint64_t *nr_reports;               /* [nr_vcpus] */
	const uint32_t *status;                   /* [nr_vcpus] each vCPU's exit status */
	const uint8_t *exited;                    /* [nr_vcpus] */
	const struct pvh_opts *opts;
	const char *cmdline;      /* the whole -append line */
	uint64_t mem_bytes;       /* RAM in the PVH memory map */
	uint64_t qemu_cpus;
	const char *tsc_source;
	uint64_t entry_tsc;       /* TSC at pvh_main: time since the vCPU's reset, roughly */
	uint32_t exit_status;     /* the VM's: the first non-zero vCPU status */
	const char *error;        /* NULL or a one-line reason (exception, bad command line) */
};

/* Formats the one JSON result line (with '\n'); returns its length (truncated to len - 1). */
size_t pvh_json__result(char *buf, size_t len, const struct pvh_result *res);

#endif
