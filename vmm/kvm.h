/* kvm.h: the /dev/kvm handle: open, API/capability checks, supported CPUID. */
#ifndef VMC_VMM_KVM_H
#define VMC_VMM_KVM_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/kvm.h>

struct kvm {
	int fd;
	int vcpu_mmap_size;
	bool has_stats_fd;             /* KVM_CAP_BINARY_STATS_FD */
	struct kvm_cpuid2 *cpuid;      /* KVM_GET_SUPPORTED_CPUID, set on every vCPU */
};

/* -ENOENT if /dev/kvm does not exist (callers may treat that as "skip"). */
int kvm__open(struct kvm *k, char *err, size_t errlen);
void kvm__close(struct kvm *k);

#endif
