/* hcall.h: hypercall dispatch: port I/O exits -> checked guest structs -> handlers. */
#ifndef VMC_VMM_HCALL_H
#define VMC_VMM_HCALL_H

struct vcpu;

enum hcall_result {
	HCALL_CONTINUE = 0,   /* re-enter the guest */
	HCALL_EXIT = 1,       /* guest asked to exit: end the vCPU thread */
	HCALL_FAILED = -1,    /* VM failed (vm__fail was called) */
};

/* Handle a KVM_EXIT_IO on v. */
enum hcall_result hcall__handle_io(struct vcpu *v);
/* Flush a pending partial console line (at vCPU exit). */
void hcall__console_flush(struct vcpu *v);

#endif
