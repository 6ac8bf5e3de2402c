/* kvm_state.c: vCPU registers, segment state, FPU and the MSRs a CPL3 guest needs; dirty logging of memslot 0. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "vmm/snapshot/kvm_state.h"

_Static_assert(sizeof(struct kvm_regs) == SNAP_KVM_REGS_SIZE, "kvm_regs size is the file's");
_Static_assert(sizeof(struct kvm_sregs) == SNAP_KVM_SREGS_SIZE, "kvm_sregs size is the file's");
_Static_assert(sizeof(struct kvm_fpu) == SNAP_KVM_FPU_SIZE, "kvm_fpu size is the file's");

/* TSC (the guest's clock continues), SYSENTER/SYSCALL, KERNEL_GS_BASE, TSC_AUX, PAT, MISC_ENABLE. */
static const uint32_t snap_msr_list[] = {
	0x10, 0x174, 0x175, 0x176, 0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084,
	0xc0000102, 0xc0000103, 0x277, 0x1a0,
};
_Static_assert(sizeof(snap_msr_list) / sizeof(snap_msr_list[0]) <= SNAP_MAX_MSRS, "MSR list fits");

struct snap_msrs_buf {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[SNAP_MAX_MSRS];
};

int snap_vcpu__save(int fd, uint32_t id, struct snap_vcpu *s, char *err, size_t errlen)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;

	memset(s, 0, sizeof(*s));
	s->id = id;
	if (ioctl(fd, KVM_GET_REGS, &regs) || ioctl(fd, KVM_GET_SREGS, &sregs) || ioctl(fd, KVM_GET_FPU, &fpu)) {
		snprintf(err, errlen, "snapshot: vCPU %u: KVM_GET_REGS/SREGS/FPU: %s", id, strerror(errno));
		return -errno;
	}
	memcpy(s->regs, &regs, sizeof(regs));
	memcpy(s->sregs, &sregs, sizeof(sregs));
	memcpy(s->fpu, &fpu, sizeof(fpu));
	/* One at a time: KVM_GET_MSRS stops at the first MSR this host does not have. */
	for (size_t i = 0; i < sizeof(snap_msr_list) / sizeof(snap_msr_list[0]); i++) {
		struct snap_msrs_buf b = { .hdr.nmsrs = 1, .e[0].index = snap_msr_list[i] };

		if (ioctl(fd, KVM_GET_MSRS, &b) == 1) {
			s->msrs[s->nr_msrs].index = b.e[0].index;
			s->msrs[s->nr_msrs++].data = b.e[0].data;
		}
	}
	return 0;
}

int snap_vcpu__load(int fd, const struct snap_vcpu *s, char *err, size_t errlen)
{
	struct snap_msrs_buf b = { .hdr.nmsrs = s->nr_msrs };
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	int n;

	memcpy(&regs, s->regs, sizeof(regs));
	memcpy(&sregs, s->sregs, sizeof(sregs));
	memcpy(&fpu, s->fpu, sizeof(fpu));
	/* sregs first: they set the mode in which the registers are meaningful. */
	if (ioctl(fd, KVM_SET_SREGS, &sregs) || ioctl(fd, KVM_SET_REGS, &regs) || ioctl(fd, KVM_SET_FPU, &fpu)) {
		snprintf(err, errlen, "snapshot: vCPU %u: KVM_SET_SREGS/REGS/FPU refused the saved state: %s", s->id,
			 strerror(errno));
		return -errno;
	}
	for (uint32_t i = 0; i < s->nr_msrs && i < SNAP_MAX_MSRS; i++) {
		b.e[i].index = s->msrs[i].index;
		b.e[i].data = s->msrs[i].data;
	}
	n = s->nr_msrs ? ioctl(fd, KVM_SET_MSRS, &b) : 0;
	if (n != (int)s->nr_msrs) {
		snprintf(err, errlen, "snapshot: vCPU %u: KVM_SET_MSRS set %d of %u MSRs (MSR 0x%x refused)", s->id, n,
			 s->nr_msrs, n >= 0 && n < (int)s->nr_msrs ? s->msrs[n].index : 0);
		return -EINVAL;
	}
	return 0;
}

uint32_t snap_dirty__regions(const uint64_t *bitmap, uint32_t nr_regions, uint8_t *sel)
{
	uint32_t n = 0;

	for (uint32_t r = 0; r < nr_regions; r++) {
		const uint64_t *w = bitmap + (size_t)r * (SNAP_PAGES_PER_REGION / 64);
		uint64_t acc = 0;

		for (unsigned i = 0; i < SNAP_PAGES_PER_REGION / 64; i++)
			acc |= w[i];
		sel[r] = acc != 0;
		n += sel[r];
	}
	return n;
}
