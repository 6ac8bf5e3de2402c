/* kvm.c: the /dev/kvm handle: open, API/capability checks, supported CPUID. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "vmm/kvm.h"

#define KVM_CPUID_MAX 256

int kvm__open(struct kvm *k, char *err, size_t errlen)
{
	static const struct { int cap; const char *name; } required[] = {
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
		{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
		{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	};
	int rc, api;

	memset(k, 0, sizeof(*k));
	k->fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "open /dev/kvm: %s", strerror(errno));
		return rc;
	}
	api = ioctl(k->fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		snprintf(err, errlen, "KVM API version %d, want %d", api, KVM_API_VERSION);
		rc = -ENOTSUP;
		goto fail;
	}
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		if (ioctl(k->fd, KVM_CHECK_EXTENSION, required[i].cap) <= 0) {
			snprintf(err, errlen, "KVM lacks %s", required[i].name);
			rc = -ENOTSUP;
			goto fail;
		}
	}
	k->has_stats_fd = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_BINARY_STATS_FD) > 0;
	k->vcpu_mmap_size = ioctl(k->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (k->vcpu_mmap_size < (int)sizeof(struct kvm_run)) {
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %d", k->vcpu_mmap_size);
		rc = -ENOTSUP;
		goto fail;
	}
	k->cpuid = calloc(1, sizeof(*k->cpuid) + KVM_CPUID_MAX * sizeof(struct kvm_cpuid_entry2));
	if (!k->cpuid) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	k->cpuid->nent = KVM_CPUID_MAX;
	if (ioctl(k->fd, KVM_GET_SUPPORTED_CPUID, k->cpuid) < 0) {
		rc = -errno;
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		goto fail;
	}
	return 0;
fail:
	kvm__close(k);
	return rc;
}

void kvm__close(struct kvm *k)
{
	free(k->cpuid);
	k->cpuid = NULL;
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
}
