/* vcpu.c: one vCPU = one thread running KVM_RUN; exit handling, parking, kicks. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "vmm/hcall.h"
#include "vmm/util.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

/*
 * kvm_pvm notes (probed on this host):
 *  - Entering 64-bit mode directly at CPL3 works: CS=0x33 (DPL3, L=1), SS/DS=0x2b (DPL3),
 *    CR0=PE|MP|ET|WP|PG, CR4=PAE|OSFXSR|OSXMMEXCPT, EFER=LME|LMA|NXE, RFLAGS.IOPL=3.
 *    No real GDT load is needed (KVM_SET_SREGS sets hidden parts); we still provide one.
 *  - CPL3 code runs natively; `out` at CPL3 with IOPL=3 exits as KVM_EXIT_IO (~30 us round
 *    trip here, vs ~8 us at CPL0 because CPL0 is emulated without a world switch).
 *  - On a KVM_EXIT_IO the reported RIP is already past the `out`; on MMIO, shutdown and
 *    EFAULT it is the faulting instruction.
 *  - The 2 MiB region at GPA 0 holds the guest page tables; the shadow MMU write-protects
 *    them, so that region is always mapped with 4 KiB entries (pages_4k ~16 at boot).
 *  - A guest access to a GPA with no memslot: KVM_EXIT_MMIO. A guest access to a memslot
 *    page whose host mapping is missing: KVM_RUN returns -1/EFAULT with exit_reason 0.
 */
#define VCPU_KICK_SIGNAL (SIGRTMIN + 1)

static __thread struct kvm_run *vcpu__tls_run;

static void vcpu__kick_handler(int sig)
{
	(void)sig;
	if (vcpu__tls_run)
		vcpu__tls_run->immediate_exit = 1;
}

int vcpu__init_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = vcpu__kick_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;  /* no SA_RESTART: KVM_RUN must return EINTR */
	return sigaction(VCPU_KICK_SIGNAL, &sa, NULL) ? -errno : 0;
}

int vcpu__init(struct vcpu *v, struct vm *vm, uint32_t id, char *err, size_t errlen)
{
	int rc;

	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "KVM_CREATE_VCPU %u: %s", id, strerror(errno));
		return rc;
	}
	v->run = mmap(NULL, (size_t)vm->kvm.vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		rc = -errno;
		snprintf(err, errlen, "mmap kvm_run of vcpu %u: %s", id, strerror(errno));
		v->run = NULL;
		goto fail;
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, vm->kvm.cpuid) < 0) {
		rc = -errno;
		snprintf(err, errlen, "KVM_SET_CPUID2 on vcpu %u: %s", id, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	vcpu__destroy(v);
	return rc;
}

void vcpu__destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, (size_t)v->vm->kvm.vcpu_mmap_size);
	v->run = NULL;
	if (v->fd > 0)
		close(v->fd);
	v->fd = -1;
}

int vcpu__setup_regs(struct vcpu *v, uint64_t entry, uint64_t rsp, uint64_t rdi, char *err, size_t errlen)
{
	struct kvm_segment cs = {
		.base = 0, .limit = 0xffffffff, .selector = VMC_SEL_USER_CS, .type = 11,
		.present = 1, .dpl = 3, .db = 0, .s = 1, .l = 1, .g = 1,
	};
	struct kvm_segment ds = {
		.base = 0, .limit = 0xffffffff, .selector = VMC_SEL_USER_DS, .type = 3,
		.present = 1, .dpl = 3, .db = 1, .s = 1, .l = 0, .g = 1,
	};
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
		snprintf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
		return -errno;
	}
	sregs.cs = cs;
	sregs.ss = sregs.ds = sregs.es = sregs.fs = sregs.gs = ds;
	sregs.gdt.base = VMC_GPA_GDT;
	sregs.gdt.limit = 7 * 8 - 1;
	sregs.cr0 = 0x80000000ull | 0x10000 | 0x20 | 0x10 | 0x2 | 0x1; /* PG WP NE ET MP PE */
	sregs.cr3 = VMC_GPA_PML4;
	sregs.cr4 = 0x20 | 0x200 | 0x400;                             /* PAE OSFXSR OSXMMEXCPT */
	sregs.efer = 0x100 | 0x400 | 0x800;                            /* LME LMA NXE */
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0) {
		snprintf(err, errlen, "KVM_SET_SREGS: %s", strerror(errno));
		return -errno;
	}
	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rsp = rsp;
	regs.rdi = rdi;
	regs.rflags = 0x2 | (3u << 12);                                /* IOPL=3, IF=0 */
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0) {
		snprintf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

uint64_t vcpu__rip(struct vcpu *v)
{
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		return ~0ull;
	return regs.rip;
}

void vcpu__get_report(struct vcpu *v, struct vmc_hc_report *r, uint64_t *nr_reports)
{
	pthread_mutex_lock(&v->vm->report_lock);
	*r = v->report;
	if (nr_reports)
		*nr_reports = v->nr_reports;
	pthread_mutex_unlock(&v->vm->report_lock);
}

void vcpu__kick(struct vcpu *v)
{
	if (v->thread_started)
		pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

static void vcpu__timespec(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / 1000000000ull);
	ts->tv_nsec = (long)(ns % 1000000000ull);
}

uint32_t vcpu__block(struct vcpu *v, uint64_t deadline_ns)
{
	struct vm *vm = v->vm;
	uint32_t stopped;

	pthread_mutex_lock(&vm->lock);
	v->state = VCPU_PARKED;
	vm->nr_parked++;
	pthread_cond_broadcast(&vm->parked_cond);
	for (;;) {
		bool paused = __atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE);

		if (__atomic_load_n(&vm->force_stop, __ATOMIC_ACQUIRE))
			break;
		if (!paused && (__atomic_load_n(&vm->stop_requested, __ATOMIC_ACQUIRE) ||
				util__now_ns() >= deadline_ns))
			break;
		if (paused || deadline_ns == UINT64_MAX) {
			pthread_cond_wait(&vm->wake_cond, &vm->lock);
		} else {
			struct timespec ts;

			vcpu__timespec(deadline_ns, &ts);
			pthread_cond_timedwait(&vm->wake_cond, &vm->lock, &ts);
		}
	}
	vm->nr_parked--;
	v->state = VCPU_RUNNING;
	stopped = (uint32_t)__atomic_load_n(&vm->stop_requested, __ATOMIC_ACQUIRE);
	pthread_mutex_unlock(&vm->lock);
	return stopped;
}

static const char *vcpu__exit_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_UNKNOWN: return "unknown";
	case KVM_EXIT_EXCEPTION: return "exception";
	case KVM_EXIT_HLT: return "hlt";
	case KVM_EXIT_FAIL_ENTRY: return "fail_entry";
	case KVM_EXIT_INTERNAL_ERROR: return "internal_error";
	case KVM_EXIT_SHUTDOWN: return "shutdown";
	default: return "other";
	}
}

/* Returns true if the vCPU thread should end. */
static bool vcpu__handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct vm *vm = v->vm;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return hcall__handle_io(v) != HCALL_CONTINUE;
	case KVM_EXIT_INTR:
		return false;
	case KVM_EXIT_MMIO:
		vm__fail(vm, "vcpu %u: rip 0x%llx: MMIO %s of %u bytes at gpa 0x%llx (no RAM there; RAM is %llu MiB)",
			 v->id, (unsigned long long)vcpu__rip(v), run->mmio.is_write ? "write" : "read",
			 run->mmio.len, (unsigned long long)run->mmio.phys_addr,
			 (unsigned long long)(vm->ram_bytes >> 20));
		return true;
	case KVM_EXIT_SHUTDOWN:
		vm__fail(vm, "vcpu %u: rip 0x%llx: triple fault (KVM_EXIT_SHUTDOWN): the guest took an exception "
			 "(it has no IDT); gpa unknown", v->id, (unsigned long long)vcpu__rip(v));
		return true;
	case KVM_EXIT_INTERNAL_ERROR:
		vm__fail(vm, "vcpu %u: rip 0x%llx: KVM internal error, suberror %u; gpa unknown",
			 v->id, (unsigned long long)vcpu__rip(v), run->internal.suberror);
		return true;
	case KVM_EXIT_FAIL_ENTRY:
		vm__fail(vm, "vcpu %u: rip 0x%llx: VM entry failed, reason 0x%llx; gpa unknown", v->id,
			 (unsigned long long)vcpu__rip(v),
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return true;
	default:
		vm__fail(vm, "vcpu %u: rip 0x%llx: unexpected exit %u (%s); gpa unknown", v->id,
			 (unsigned long long)vcpu__rip(v), run->exit_reason, vcpu__exit_name(run->exit_reason));
		return true;
	}
}

static void *vcpu__thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	uint64_t one = 1;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	vcpu__tls_run = v->run;

	for (;;) {
		int rc;

		/* Clear first, then check: a kick after the check sets it again, so KVM_RUN
		 * returns at once and no kick is lost. */
		v->run->immediate_exit = 0;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&vm->force_stop, __ATOMIC_ACQUIRE))
			break;
		if (__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE)) {
			vcpu__block(v, 0);
			continue;
		}
		rc = ioctl(v->fd, KVM_RUN, 0);
		if (rc < 0) {
			int e = errno;

			if (e == EINTR || e == EAGAIN)
				continue;
			if (e == EFAULT)
				vm__fail(vm, "vcpu %u: rip 0x%llx: KVM_RUN: EFAULT: guest access to guest RAM whose host "
					 "mapping is missing; gpa unknown", v->id, (unsigned long long)vcpu__rip(v));
			else
				vm__fail(vm, "vcpu %u: rip 0x%llx: KVM_RUN: %s; gpa unknown", v->id,
					 (unsigned long long)vcpu__rip(v), strerror(e));
			break;
		}
		v->nr_exits++;
		if (vcpu__handle_exit(v))
			break;
	}
	hcall__console_flush(v);
	vcpu__tls_run = NULL;
	pthread_mutex_lock(&vm->lock);
	v->state = VCPU_EXITED;
	vm->nr_exited++;
	pthread_cond_broadcast(&vm->parked_cond);
	pthread_mutex_unlock(&vm->lock);
	if (write(vm->done_fd, &one, sizeof(one)) < 0)
		perror("vmcompact: eventfd write");
	return NULL;
}

int vcpu__start(struct vcpu *v, char *err, size_t errlen)
{
	int rc = pthread_create(&v->thread, NULL, vcpu__thread, v);

	if (rc) {
		snprintf(err, errlen, "pthread_create vcpu %u: %s", v->id, strerror(rc));
		return -rc;
	}
	v->thread_started = true;
	return 0;
}
