/* vcpu.h: one vCPU = one thread running KVM_RUN; exit handling, parking, kicks. */
#ifndef VMC_VMM_VCPU_H
#define VMC_VMM_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>
#include "vmcompact/abi.h"

struct vm;

enum vcpu_state {
	VCPU_RUNNING,    /* in or around KVM_RUN */
	VCPU_PARKED,     /* blocked in the host: paused or in the sleep hypercall */
	VCPU_EXITED,     /* thread finished */
};

struct vcpu {
	struct vm *vm;
	uint32_t id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	enum vcpu_state state;          /* under vm->lock */

	/* Guest results (under vm->report_lock). */
	struct vmc_hc_report report;
	uint64_t nr_reports;
	bool guest_exited;              /* guest called VMC_HC_EXIT */
	uint32_t exit_status;

	/* Counters, written by the vCPU thread only. */
	uint64_t nr_exits, nr_hypercalls, nr_sleeps;

	/* Console line buffer (vCPU thread only). */
	char line[256];
	size_t line_len;
};

int vcpu__init(struct vcpu *v, struct vm *vm, uint32_t id, char *err, size_t errlen);
void vcpu__destroy(struct vcpu *v);
/* CPL3 long mode entry: RIP = entry, RSP = stack top, RDI = boot info GPA. */
int vcpu__setup_regs(struct vcpu *v, uint64_t entry, uint64_t rsp, uint64_t rdi, char *err, size_t errlen);
int vcpu__start(struct vcpu *v, char *err, size_t errlen);
/* Make the vCPU leave KVM_RUN soon (signal + immediate_exit; no kick is lost). */
void vcpu__kick(struct vcpu *v);
/* Block the calling vCPU thread in the host until deadline_ns (CLOCK_MONOTONIC), a stop
 * request, or a force stop, and while a pause is requested. Returns 1 if a stop was requested. */
uint32_t vcpu__block(struct vcpu *v, uint64_t deadline_ns);
/* Guest RIP now (vCPU thread only, or while parked). */
uint64_t vcpu__rip(struct vcpu *v);
/* Copy of the last report (any thread). */
void vcpu__get_report(struct vcpu *v, struct vmc_hc_report *r, uint64_t *nr_reports);
/* Install the process-wide kick signal handler (idempotent). */
int vcpu__init_signals(void);

#endif
