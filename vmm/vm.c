/* vm.c: a VM: KVM VM fd, its memslots over caller-provided guest RAM, vCPUs, pause/stop lifecycle. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "vmm/loader.h"
#include "vmm/util.h"
#include "vmm/vm.h"

int vm__create(struct vm *vm, const struct vm_config *cfg, char *err, size_t errlen)
{
	struct memslot_caps caps;
	pthread_condattr_t ca;
	char serr[256];
	int rc, khz;

	memset(vm, 0, sizeof(*vm));
	vm->fd = -1;
	vm->done_fd = -1;
	vm->stats.fd = -1;
	vm->kvm.fd = -1;
	if (!cfg->ram || cfg->ram_bytes % VMC_HUGE_SIZE || cfg->ram_bytes < VMC_MIN_RAM ||
	    cfg->ram_bytes > VMC_MAX_RAM || !cfg->nr_vcpus || cfg->nr_vcpus > VMC_MAX_VCPUS) {
		snprintf(err, errlen, "vm: bad RAM (%llu bytes) or vCPU count (%u)",
			 (unsigned long long)cfg->ram_bytes, cfg->nr_vcpus);
		return -EINVAL;
	}
	vm->ram = cfg->ram;
	vm->ram_bytes = cfg->ram_bytes;
	vm->memslot_flags = cfg->memslot_flags;
	vm->console = cfg->console ? cfg->console : stderr;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->report_lock, NULL);
	pthread_mutex_init(&vm->console_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->parked_cond, &ca);
	pthread_cond_init(&vm->wake_cond, &ca);
	pthread_condattr_destroy(&ca);

	rc = kvm__open(&vm->kvm, err, errlen);
	if (rc)
		return rc;
	rc = vcpu__init_signals();
	if (rc) {
		snprintf(err, errlen, "sigaction: %s", strerror(-rc));
		goto fail;
	}
	vm->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->done_fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	vm->fd = ioctl(vm->kvm.fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		goto fail;
	}
	memslot_caps__read(&caps, vm->fd);
	rc = memslots__init(&vm->slots, vm->fd, cfg->ram, cfg->ram_bytes, cfg->memslot_flags, cfg->promote_path,
			    &caps, cfg->keep_zap_quirk, err, errlen);
	if (rc)
		goto fail;
	if (vm->kvm.has_stats_fd && kvm_stats__open(&vm->stats, vm->fd, serr, sizeof(serr)))
		fprintf(stderr, "vmcompact: warning: %s; KVM page stats unavailable\n", serr);

	vm->vcpus = calloc(cfg->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (uint32_t i = 0; i < cfg->nr_vcpus; i++) {
		rc = vcpu__init(&vm->vcpus[i], vm, i, err, errlen);
		if (rc)
			goto fail;
		vm->nr_vcpus++;
	}
	khz = ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);
	if (khz <= 0) {
		rc = -ENOTSUP;
		snprintf(err, errlen, "KVM_GET_TSC_KHZ: %s", khz < 0 ? strerror(errno) : "0 kHz");
		goto fail;
	}
	vm->tsc_khz = (uint64_t)khz;
	return 0;
fail:
	vm__destroy(vm);
	return rc;
}

void vm__destroy(struct vm *vm)
{
	if (vm->vcpus) {
		vm__force_stop(vm);
		vm__join(vm);
		for (uint32_t i = 0; i < vm->nr_vcpus; i++)
			vcpu__destroy(&vm->vcpus[i]);
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	kvm_stats__close(&vm->stats);
	memslots__destroy(&vm->slots);
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
	if (vm->done_fd >= 0)
		close(vm->done_fd);
	vm->done_fd = -1;
	if (vm->kvm.fd >= 0)
		kvm__close(&vm->kvm);
}

/* In-place access for the VMM's own fields in guest RAM (boot info): within one page. */
static void *vm__guest_ptr(struct vm *vm, uint64_t gpa, uint64_t len)
{
	return memslots__gpa_ptr(&vm->slots, gpa, len);
}

int vm__read_guest(struct vm *vm, uint64_t gpa, void *buf, uint64_t len)
{
	return memslots__read(&vm->slots, gpa, buf, len);
}

int vm__write_guest(struct vm *vm, uint64_t gpa, const void *buf, uint64_t len)
{
	return memslots__write(&vm->slots, gpa, buf, len);
}

int vm__setup_guest(struct vm *vm, const void *elf, size_t elf_len, const struct vm_workload *wl,
		    unsigned nr_wl, char *err, size_t errlen)
{
	uint64_t entry;
	int rc;

	if (vm->nr_vcpus > VMC_MAX_VCPUS || !nr_wl)
		return -EINVAL;
	rc = loader__setup_page_tables(vm->ram, vm->ram_bytes, err, errlen);
	if (rc)
		return rc;
	loader__setup_gdt(vm->ram);
	rc = loader__load_elf(elf, elf_len, vm->ram, vm->ram_bytes, &entry, err, errlen);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vmc_boot_info *bi = vm__guest_ptr(vm, VMC_BOOT_INFO_GPA(i), VMC_PAGE_SIZE);

		memset(bi, 0, VMC_PAGE_SIZE);
		bi->magic = VMC_BOOT_MAGIC;
		bi->abi_version = VMC_ABI_VERSION;
		bi->vcpu_id = i;
		bi->nr_vcpus = vm->nr_vcpus;
		bi->workload = wl[i % nr_wl].id;
		bi->ram_bytes = vm->ram_bytes;
		bi->tsc_khz = vm->tsc_khz;
		if (loader__slice(vm->ram_bytes, vm->nr_vcpus, i, &bi->mem_start, &bi->mem_end)) {
			snprintf(err, errlen, "%llu MiB of RAM leaves no 2 MiB workload slice for each of %u vCPUs",
				 (unsigned long long)(vm->ram_bytes >> 20), vm->nr_vcpus);
			return -EINVAL;
		}
		bi->args = wl[i % nr_wl].args;
		rc = vcpu__setup_regs(&vm->vcpus[i], entry, VMC_STACK_TOP(i), VMC_BOOT_INFO_GPA(i), err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

int vm__start(struct vm *vm, char *err, size_t errlen)
{
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		int rc = vcpu__start(&vm->vcpus[i], err, errlen);

		if (rc) {
			vm__force_stop(vm);
			return rc;
		}
	}
	return 0;
}

static void vm__kick_all(struct vm *vm)
{
	/* Under vm->lock: exited threads are not kicked (they are still joinable, so safe anyway). */
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i].state != VCPU_EXITED)
			vcpu__kick(&vm->vcpus[i]);
}

void vm__pause(struct vm *vm)
{
	uint64_t t0 = util__now_ns(), dt;

	pthread_mutex_lock(&vm->lock);
	if (vm->pause_depth++ == 0) {
		vm->pause.held_since_ns = t0;
		__atomic_store_n(&vm->pause_req, 1, __ATOMIC_SEQ_CST);
		vm__kick_all(vm);
	}
	while (vm->nr_parked + vm->nr_exited < vm->nr_vcpus)
		pthread_cond_wait(&vm->parked_cond, &vm->lock);
	dt = util__now_ns() - t0;
	vm->pause.count++;
	vm->pause.total_ns += dt;
	vm->pause.last_ns = dt;
	if (dt > vm->pause.max_ns)
		vm->pause.max_ns = dt;
	pthread_mutex_unlock(&vm->lock);
}

void vm__resume(struct vm *vm)
{
	bool wake = false;

	pthread_mutex_lock(&vm->lock);
	if (vm->pause_depth && --vm->pause_depth == 0) {
		uint64_t held = util__now_ns() - vm->pause.held_since_ns;

		vm->pause.held_total_ns += held;
		if (held > vm->pause.held_max_ns)
			vm->pause.held_max_ns = held;
		__atomic_store_n(&vm->pause_req, 0, __ATOMIC_SEQ_CST);
		wake = true;
	}
	pthread_mutex_unlock(&vm->lock);
	/* Wake after unlocking: woken vCPU threads must not find the lock still held. */
	if (wake)
		pthread_cond_broadcast(&vm->wake_cond);
}

void vm__request_stop(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	__atomic_store_n(&vm->stop_requested, 1, __ATOMIC_SEQ_CST);
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vmc_boot_info *bi = vm__guest_ptr(vm, VMC_BOOT_INFO_GPA(i), sizeof(*bi));

		__atomic_store_n(&bi->stop_requested, 1, __ATOMIC_SEQ_CST);
	}
	pthread_cond_broadcast(&vm->wake_cond);
	pthread_mutex_unlock(&vm->lock);
}

void vm__force_stop(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	__atomic_store_n(&vm->force_stop, 1, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&vm->wake_cond);
	vm__kick_all(vm);
	pthread_mutex_unlock(&vm->lock);
}

void vm__fail(struct vm *vm, const char *fmt, ...)
{
	bool first;
	va_list ap;

	pthread_mutex_lock(&vm->report_lock);
	first = !vm->failed;
	if (first) {
		vm->failed = true;
		va_start(ap, fmt);
		vsnprintf(vm->fail_msg, sizeof(vm->fail_msg), fmt, ap);
		va_end(ap);
		fprintf(stderr, "vmcompact: error: %s\n", vm->fail_msg);
	}
	pthread_mutex_unlock(&vm->report_lock);
	vm__force_stop(vm);
}

bool vm__all_exited(struct vm *vm)
{
	bool all;

	pthread_mutex_lock(&vm->lock);
	all = vm->nr_exited == vm->nr_vcpus;
	pthread_mutex_unlock(&vm->lock);
	return all;
}

void vm__join(struct vm *vm)
{
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->thread_started) {
			pthread_join(v->thread, NULL);
			v->thread_started = false;
		}
	}
}

int vm__exit_code(struct vm *vm)
{
	int code;

	pthread_mutex_lock(&vm->report_lock);
	if (vm->failed)
		code = VMC_EXIT_GUEST_FAULT;
	else
		code = (int)vm->guest_status;
	for (uint32_t i = 0; !vm->failed && i < vm->nr_vcpus; i++)
		if (!vm->vcpus[i].guest_exited)
			code = VMC_EXIT_FORCED;  /* killed before it called VMC_HC_EXIT */
	pthread_mutex_unlock(&vm->report_lock);
	return code;
}
