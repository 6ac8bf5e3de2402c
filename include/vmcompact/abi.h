/* abi.h: the only contract between the vmcompact VMM and its guest agent (layout, hypercalls, boot info). */
#ifndef VMCOMPACT_ABI_H
#define VMCOMPACT_ABI_H

/*
 * Style after Solo5's hvt_abi.h: fixed guest-physical layout, one struct per hypercall,
 * every field marked IN (guest -> host) or OUT (host -> guest).
 *
 * The guest runs in 64-bit long mode at CPL3 only (kvm_pvm emulates CPL0 at ~1 us per
 * instruction; CPL3 runs natively). Paging is an identity map made of 2 MiB pages with
 * U/S=1 and R/W=1 over all of guest RAM, plus one more 2 MiB page right above RAM that has
 * no memslot behind it (VMC_GPA_HOLE(ram)): touching it is an MMIO exit, which the VMM
 * reports as an error. There is no IDT: any guest exception ends in a triple fault
 * (KVM_EXIT_SHUTDOWN), which the VMM reports with the vCPU's RIP.
 *
 * Hypercall: `outl %eax, %dx` with dx = VMC_HC_PORT_BASE + nr and eax = the 32-bit
 * guest-physical address of the call's struct (RFLAGS.IOPL=3 lets CPL3 do port I/O, and
 * KVM turns it into KVM_EXIT_IO). The VMM checks that the whole struct, and every buffer
 * it names, lies inside guest RAM. Structs must not cross the end of RAM; they may sit
 * anywhere else (stack, data, workload memory).
 */

#include <stdint.h>

#define VMC_ABI_VERSION 2u                             /* 2: chase workload, report.accesses */

/* ---- guest-physical layout (identity mapped; all below VMC_GPA_WORKLOAD) ---- */
#define VMC_PAGE_SIZE       0x1000ull
#define VMC_HUGE_SIZE       0x200000ull                /* 2 MiB: paging and slice granule */
#define VMC_GPA_GDT         0x1000ull                  /* one page: null, kernel CS/DS, user DS/CS */
#define VMC_GPA_PML4        0x10000ull
#define VMC_GPA_PDPT        0x11000ull                 /* one PDPT: up to 512 GiB */
#define VMC_GPA_PD          0x12000ull                 /* one PD page per GiB of RAM (+1 for the hole) */
#define VMC_MAX_RAM         (64ull << 30)              /* PDs end at 0x12000 + 65 pages = 0x53000 */
#define VMC_MIN_RAM         (8ull << 20)
#define VMC_GPA_BOOT_INFO   0x80000ull                 /* one page per vCPU */
#define VMC_BOOT_INFO_GPA(id) (VMC_GPA_BOOT_INFO + (uint64_t)(id) * VMC_PAGE_SIZE)
#define VMC_MAX_VCPUS       64u
#define VMC_GPA_AGENT       0x100000ull                /* agent ELF is linked here (1 MiB) */
#define VMC_GPA_AGENT_END   0x200000ull                /* image incl. .bss must end below */
#define VMC_GPA_STACKS      0x200000ull                /* per-vCPU stacks, growing down */
#define VMC_STACK_SIZE      0x8000ull                  /* 32 KiB each, 64 of them = 2 MiB */
#define VMC_STACK_TOP(id)   (VMC_GPA_STACKS + ((uint64_t)(id) + 1) * VMC_STACK_SIZE)
#define VMC_GPA_WORKLOAD    0x400000ull                /* 4 MiB: workload memory = the rest */
#define VMC_GPA_HOLE(ram)   ((uint64_t)(ram))          /* mapped in page tables, no memslot */

/* GDT selectors (Linux's layout; the VMM loads CS/SS directly, the GDT is for completeness). */
#define VMC_SEL_KERNEL_CS   0x10
#define VMC_SEL_KERNEL_DS   0x18
#define VMC_SEL_USER_DS     0x2b                       /* index 5, RPL 3 */
#define VMC_SEL_USER_CS     0x33                       /* index 6, RPL 3, L=1 */

/* ---- hypercalls ---- */
#define VMC_HC_PORT_BASE    0x500
#define VMC_HC_PORT_COUNT   0x10                       /* ports BASE..BASE+15 are hypercalls */

enum vmc_hypercall {
	VMC_HC_CONSOLE = 1,   /* struct vmc_hc_console */
	VMC_HC_REPORT  = 2,   /* struct vmc_hc_report */
	VMC_HC_EXIT    = 3,   /* struct vmc_hc_exit; does not return */
	VMC_HC_SLEEP   = 4,   /* struct vmc_hc_sleep */
	VMC_HC_MAX
};

#define VMC_CONSOLE_MAX     4096u                      /* longest console write accepted */

struct vmc_hc_console {
	uint64_t gpa;         /* IN: bytes to write (not NUL terminated) */
	uint64_t len;         /* IN: 0..VMC_CONSOLE_MAX */
};

/* Workload ids (boot info `workload` and report `workload`). */
enum vmc_workload {
	VMC_WL_NOOP   = 0,    /* report and exit at once (start-up benchmark) */
	VMC_WL_TOUCH  = 1,
	VMC_WL_VERIFY = 2,
	VMC_WL_GUPS   = 3,
	VMC_WL_STREAM = 4,
	VMC_WL_IDLE   = 5,
	VMC_WL_FAULT  = 6,
	VMC_WL_CHASE  = 7,    /* dependent random loads through one random cycle (pointer chase) */
	VMC_WL_COUNT
};

/* Fault kinds for VMC_WL_FAULT (test-only: each must make the VMM stop the VM with an error). */
enum vmc_fault {
	VMC_FAULT_BADPTR = 1, /* console hypercall whose struct pointer is past RAM */
	VMC_FAULT_BADLEN,     /* console hypercall whose buffer runs past RAM */
	VMC_FAULT_BADPORT,    /* port I/O outside the hypercall ports */
	VMC_FAULT_BADCALL,    /* hypercall port with an unknown number */
	VMC_FAULT_MMIO,       /* load from VMC_GPA_HOLE(ram): MMIO exit */
	VMC_FAULT_TRIPLE,     /* ud2 with no IDT: triple fault, KVM_EXIT_SHUTDOWN */
	VMC_FAULT_COUNT
};

/* Report flags. */
#define VMC_REPORT_FINAL    (1u << 0)                  /* last report before exit */
#define VMC_REPORT_STOPPED  (1u << 1)                  /* ended because stop_requested */

/* Cumulative counters of this vCPU's workload; may be sent many times, the last one wins. */
struct vmc_hc_report {
	uint32_t workload;        /* IN: enum vmc_workload */
	uint32_t flags;           /* IN: VMC_REPORT_* */
	uint64_t pages;           /* IN: pages of the slice the workload covers */
	uint64_t passes;          /* IN: completed passes (verify/stream/touch), sleeps (idle) */
	uint64_t errors;          /* IN: verify: mismatching 8-byte words */
	uint64_t bad_pages;       /* IN: verify: pages with at least one mismatch */
	uint64_t stale_words;     /* IN: verify: words still holding the previous generation */
	uint64_t checked_words;   /* IN: verify: words compared in total */
	uint64_t updates;         /* IN: gups: read-modify-writes done */
	uint64_t bytes;           /* IN: stream: bytes moved (reads + writes) */
	uint64_t tsc_cycles;      /* IN: TSC cycles of the measured phase */
	uint64_t ws_bytes;        /* IN: gups/stream working set */
	uint64_t first_err_gpa;   /* IN: verify: first mismatch (valid if errors > 0) */
	uint64_t first_err_expected;
	uint64_t first_err_got;
	uint64_t accesses;        /* IN: chase: dependent loads done in the measured phase */
};

struct vmc_hc_exit {
	uint32_t status;          /* IN: becomes the VMM's exit code (first non-zero vCPU wins) */
	uint32_t pad;
};

struct vmc_hc_sleep {
	uint64_t ns;              /* IN: how long to block the vCPU in the host */
	uint32_t stopped;         /* OUT: 1 if it returned early because a stop was requested */
	uint32_t pad;
};

/* Guest exit statuses the agent uses (the VMM uses 1..4 for its own errors). */
#define VMC_GUEST_OK          0u
#define VMC_GUEST_INTEGRITY   10u   /* verify found mismatches */
#define VMC_GUEST_BADARGS     11u   /* boot info made no sense */
#define VMC_GUEST_EXCEPTION   12u   /* PVH boot only: a CPU exception (the PVH stub has an IDT) */

/* ---- boot info: one page per vCPU at VMC_BOOT_INFO_GPA(id); RDI holds its GPA at entry ---- */
#define VMC_BOOT_MAGIC        0x564d43424f4f5431ull   /* "VMCBOOT1" */
#define VMC_WL_FOREVER        (1u << 0)               /* repeat until stop_requested */
#define VMC_WL_CHASE_PAGE     (1u << 1)               /* chase: one element per 4 KiB page, not per 64 B line */

struct vmc_workload_args {
	uint64_t passes;          /* verify/stream/touch: passes; 0 = default */
	uint64_t duration_ms;     /* verify/gups/stream: run for this long instead; 0 = unset */
	uint64_t updates;         /* gups: number of updates; chase: accesses; 0 = default */
	uint64_t ws_bytes;        /* gups/stream/chase: working set; 0 = whole slice */
	uint64_t seed;            /* gups/chase RNG seed (the agent mixes in the vCPU id) */
	uint32_t flags;           /* VMC_WL_FOREVER, VMC_WL_CHASE_PAGE */
	uint32_t fault;           /* enum vmc_fault for VMC_WL_FAULT */
};

struct vmc_boot_info {
	uint64_t magic;           /* OUT: VMC_BOOT_MAGIC */
	uint32_t abi_version;     /* OUT: VMC_ABI_VERSION */
	uint32_t vcpu_id;         /* OUT */
	uint32_t nr_vcpus;        /* OUT */
	uint32_t workload;        /* OUT: enum vmc_workload */
	uint64_t ram_bytes;       /* OUT: guest RAM size; GPA [0, ram_bytes) */
	uint64_t tsc_khz;         /* OUT: guest TSC frequency */
	uint64_t mem_start;       /* OUT: this vCPU's workload slice [mem_start, mem_end), 2 MiB aligned */
	uint64_t mem_end;
	struct vmc_workload_args args; /* OUT */
	uint64_t reserved[16];
	/* Own cache line: host writes it, guest polls it between passes (and every 2 MiB). */
	volatile uint32_t stop_requested __attribute__((aligned(64))); /* OUT: host sets 1 */
};

#endif
