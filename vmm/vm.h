/* vm.h: a VM: KVM VM fd, its memslots over caller-provided guest RAM, vCPUs, pause/stop lifecycle. */
#ifndef VMC_VMM_VM_H
#define VMC_VMM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "vmm/kvm.h"
#include "vmm/kvm_stats.h"
#include "vmm/memslots.h"
#include "vmm/vcpu.h"

/* VMM exit codes (the guest's own statuses pass through unchanged). */
#define VMC_EXIT_HOST_ERROR   1   /* setup failed, KVM error */
#define VMC_EXIT_USAGE        2   /* bad command line */
#define VMC_EXIT_GUEST_FAULT  3   /* bad hypercall, MMIO, triple fault, EFAULT, ... */
#define VMC_EXIT_FORCED       4   /* the guest did not stop in time and was killed */

struct vm_config {
	uint8_t *ram;              /* host VA of GPA 0; any mapping (anonymous, shmem window...) */
	uint64_t ram_bytes;        /* multiple of 2 MiB */
	uint32_t nr_vcpus;
	uint32_t memslot_flags;    /* e.g. KVM_MEM_LOG_DIRTY_PAGES */
	enum promote_path promote_path; /* memslots: one per region (memslot, auto: then the caller
					 * attaches its mm view before vm__start) or one (remap, 0) */
	bool keep_zap_quirk;       /* leave KVM_X86_QUIRK_SLOT_ZAP_ALL on (tests the fallback) */
	FILE *console;             /* where guest console lines go (prefixed "guest[N]: ") */
};

/*
 * Two different durations, named apart: how long stopping the vCPUs takes (the latency
 * of vm__pause) and how long they stay stopped (request -> vm__resume, which is what the
 * defrag engine's pause_max_us measures per step).
 */
struct vm_pause_stats {
	uint64_t count;
	uint64_t total_ns, max_ns, last_ns;    /* stop latency: request -> every vCPU parked */
	uint64_t held_total_ns, held_max_ns;   /* held: request -> resume (outermost pause) */
	uint64_t held_since_ns;                /* request time of the pause now held */
};

struct vm {
	struct kvm kvm;
	int fd;
	uint8_t *ram;
	uint64_t ram_bytes;
	uint32_t memslot_flags;
	struct memslots slots;          /* guest RAM as KVM sees it (memslots.h) */
	uint32_t nr_vcpus;
	struct vcpu *vcpus;
	uint64_t tsc_khz;
	FILE *console;
	pthread_mutex_t console_lock;
	struct kvm_stats stats;

	pthread_mutex_t lock;
	pthread_cond_t parked_cond;     /* a vCPU parked or exited (pausers wait here) */
	pthread_cond_t wake_cond;       /* resume, stop, force stop (parked vCPUs wait here) */
	uint32_t pause_depth;           /* under lock; vCPUs read pause_req */
	int pause_req;                  /* atomic: vCPUs must park */
	int stop_requested;             /* atomic */
	int force_stop;                 /* atomic: vCPU threads end now */
	uint32_t nr_parked, nr_exited;  /* under lock */
	struct vm_pause_stats pause;    /* under lock */
	int done_fd;                    /* eventfd, +1 per vCPU thread that ended */

	pthread_mutex_t report_lock;
	uint32_t guest_status;          /* first non-zero guest exit status */
	bool failed;
	char fail_msg[512];

	uint64_t first_hc_ns;           /* atomic: CLOCK_MONOTONIC of the first hypercall */
};

int vm__create(struct vm *vm, const struct vm_config *cfg, char *err, size_t errlen);
void vm__destroy(struct vm *vm);

/* What one vCPU runs. */
struct vm_workload {
	uint32_t id;                   /* enum vmc_workload */
	struct vmc_workload_args args;
};

/* Load the agent ELF, write page tables, GDT and per-vCPU boot info, set vCPU registers.
 * vCPU i runs wl[i % nr_wl]. */
int vm__setup_guest(struct vm *vm, const void *elf, size_t elf_len, const struct vm_workload *wl,
		    unsigned nr_wl, char *err, size_t errlen);
/* Start one thread per vCPU. */
int vm__start(struct vm *vm, char *err, size_t errlen);

/* The checked accessors for guest memory, as the guest sees it now (per-region memslots may
 * serve neighbouring regions from different places): copy [gpa, gpa+len) out or in, 0 or
 * -EFAULT when it is not all guest RAM. Call from a vCPU thread or with the vCPUs paused. */
int vm__read_guest(struct vm *vm, uint64_t gpa, void *buf, uint64_t len);
int vm__write_guest(struct vm *vm, uint64_t gpa, const void *buf, uint64_t len);

/* From any non-vCPU thread: returns once every vCPU thread is blocked outside KVM_RUN (or
 * exited). Nests. */
void vm__pause(struct vm *vm);
void vm__resume(struct vm *vm);

/* Graceful: stop_requested=1 in every boot info, wake sleepers. */
void vm__request_stop(struct vm *vm);
/* Now: every vCPU thread leaves KVM_RUN and ends. */
void vm__force_stop(struct vm *vm);
/* Record a fatal guest/KVM error (first one wins), print it, force-stop the VM. */
void vm__fail(struct vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool vm__all_exited(struct vm *vm);
void vm__join(struct vm *vm);
/* 0, a guest status, or VMC_EXIT_*. */
int vm__exit_code(struct vm *vm);

#endif
