/* kvm_state.h: a vCPU's KVM state to and from the snapshot's struct snap_vcpu, and the memslot's dirty log. */
#ifndef VMC_SNAPSHOT_KVM_STATE_H
#define VMC_SNAPSHOT_KVM_STATE_H

#include <stddef.h>
#include <stdint.h>
#include "vmm/snapshot/format.h"

/* The vCPU must be stopped outside KVM_RUN (paused). 0 or -errno with err set. */
int snap_vcpu__save(int vcpu_fd, uint32_t id, struct snap_vcpu *s, char *err, size_t errlen);
/* Before the vCPU first runs: sregs, regs, FPU, MSRs as saved. */
int snap_vcpu__load(int vcpu_fd, const struct snap_vcpu *s, char *err, size_t errlen);

/* Regions (2 MiB) with a dirty page: sel[r] = 1. Returns how many. */
uint32_t snap_dirty__regions(const uint64_t *bitmap, uint32_t nr_regions, uint8_t *sel);

#endif
