/* kvm_stats.c: KVM binary statistics (KVM_GET_STATS_FD): VM-level counters read by name. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "vmm/kvm_stats.h"
#include "vmm/vm.h"

int kvm_stats__open(struct kvm_stats *st, int vm_fd, char *err, size_t errlen)
{
	size_t len;
	ssize_t n;
	int rc;

	memset(st, 0, sizeof(*st));
	st->fd = ioctl(vm_fd, KVM_GET_STATS_FD, NULL);
	if (st->fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "KVM_GET_STATS_FD: %s", strerror(errno));
		st->fd = -1;
		return rc;
	}
	n = pread(st->fd, &st->hdr, sizeof(st->hdr), 0);
	if (n != (ssize_t)sizeof(st->hdr) || st->hdr.num_desc == 0 || st->hdr.num_desc > 4096 ||
	    st->hdr.name_size == 0 || st->hdr.name_size > 4096) {
		snprintf(err, errlen, "KVM stats: bad header");
		rc = -EIO;
		goto fail;
	}
	st->desc_size = sizeof(struct kvm_stats_desc) + st->hdr.name_size;
	len = st->desc_size * st->hdr.num_desc;
	st->descs = malloc(len);
	if (!st->descs) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (pread(st->fd, st->descs, len, st->hdr.desc_offset) != (ssize_t)len) {
		snprintf(err, errlen, "KVM stats: short descriptor read");
		rc = -EIO;
		goto fail;
	}
	return 0;
fail:
	kvm_stats__close(st);
	return rc;
}

void kvm_stats__close(struct kvm_stats *st)
{
	free(st->descs);
	st->descs = NULL;
	if (st->fd >= 0)
		close(st->fd);
	st->fd = -1;
}

int kvm_stats__read_named(const struct kvm_stats *st, const char *name, uint64_t *val)
{
	if (st->fd < 0 || !st->descs)
		return -ENODEV;
	for (uint32_t i = 0; i < st->hdr.num_desc; i++) {
		const struct kvm_stats_desc *d = (const void *)(st->descs + i * st->desc_size);

		if (strncmp(d->name, name, st->hdr.name_size))
			continue;
		if (d->size < 1)
			return -EIO;
		if (pread(st->fd, val, sizeof(*val), st->hdr.data_offset + d->offset) != sizeof(*val))
			return -errno ? -errno : -EIO;
		return 0;
	}
	return -ENOENT;
}

int kvm_stats__read(struct vm *vm, struct kvm_pages *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = kvm_stats__read_named(&vm->stats, "pages_4k", &out->pages_4k);
	if (!rc)
		rc = kvm_stats__read_named(&vm->stats, "pages_2m", &out->pages_2m);
	if (!rc)
		rc = kvm_stats__read_named(&vm->stats, "pages_1g", &out->pages_1g);
	out->valid = rc == 0;
	return rc;
}
