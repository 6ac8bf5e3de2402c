/* kvm_stats.h: KVM binary statistics (KVM_GET_STATS_FD): VM-level counters read by name. */
#ifndef VMC_VMM_KVM_STATS_H
#define VMC_VMM_KVM_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

struct vm;

/* KVM's own view of guest RAM: how many pages it maps with 4 KiB / 2 MiB / 1 GiB entries. */
struct kvm_pages {
	bool valid;               /* false if the kernel has no stats fd or lacks the names */
	uint64_t pages_4k, pages_2m, pages_1g;
};

struct kvm_stats {
	int fd;                               /* -1 if unavailable */
	struct kvm_stats_header hdr;
	uint8_t *descs;                       /* hdr.num_desc descriptors */
	size_t desc_size;                     /* sizeof(struct kvm_stats_desc) + name_size */
};

int kvm_stats__open(struct kvm_stats *st, int vm_fd, char *err, size_t errlen);
void kvm_stats__close(struct kvm_stats *st);
/* One counter (first element) by name; -ENOENT if the kernel does not have it. */
int kvm_stats__read_named(const struct kvm_stats *st, const char *name, uint64_t *val);
/* pages_4k/2m/1g of this VM. */
int kvm_stats__read(struct vm *vm, struct kvm_pages *out);

#endif
