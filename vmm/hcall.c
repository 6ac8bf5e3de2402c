/* hcall.c: hypercall dispatch: port I/O exits -> checked guest structs -> handlers. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "vmm/hcall.h"
#include "vmm/util.h"
#include "vmm/vm.h"

struct hcall_desc {
	const char *name;
	size_t size;                                          /* bytes of the call's struct */
	/* arg: the struct copied in from gpa (OUT fields go back through vm__write_guest) */
	enum hcall_result (*fn)(struct vcpu *v, void *arg, uint64_t gpa);
};

static void hcall__console_emit(struct vcpu *v)
{
	struct vm *vm = v->vm;

	pthread_mutex_lock(&vm->console_lock);
	fprintf(vm->console, "guest[%u]: %.*s\n", v->id, (int)v->line_len, v->line);
	fflush(vm->console);
	pthread_mutex_unlock(&vm->console_lock);
	v->line_len = 0;
}

void hcall__console_flush(struct vcpu *v)
{
	if (v->line_len)
		hcall__console_emit(v);
}

static enum hcall_result hcall__console(struct vcpu *v, void *arg, uint64_t gpa)
{
	struct vmc_hc_console c;
	char buf[VMC_CONSOLE_MAX];

	memcpy(&c, arg, sizeof(c));
	if (c.len > VMC_CONSOLE_MAX || vm__read_guest(v->vm, c.gpa, buf, c.len)) {
		vm__fail(v->vm, "vcpu %u: rip 0x%llx (after the out): console hypercall: buffer at gpa 0x%llx, len %llu "
			 "is outside guest RAM (%llu MiB) or longer than %u",
			 v->id, (unsigned long long)vcpu__rip(v), (unsigned long long)c.gpa,
			 (unsigned long long)c.len, (unsigned long long)(v->vm->ram_bytes >> 20),
			 VMC_CONSOLE_MAX);
		return HCALL_FAILED;
	}
	for (uint64_t i = 0; i < c.len; i++) {
		char ch = buf[i];

		if (ch == '\n') {
			hcall__console_emit(v);
			continue;
		}
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			ch = '?';
		if (v->line_len == sizeof(v->line))
			hcall__console_emit(v);
		v->line[v->line_len++] = ch;
	}
	return HCALL_CONTINUE;
}

static enum hcall_result hcall__report(struct vcpu *v, void *arg, uint64_t gpa)
{
	struct vm *vm = v->vm;

	pthread_mutex_lock(&vm->report_lock);
	memcpy(&v->report, arg, sizeof(v->report));
	v->nr_reports++;
	pthread_mutex_unlock(&vm->report_lock);
	return HCALL_CONTINUE;
}

static enum hcall_result hcall__exit(struct vcpu *v, void *arg, uint64_t gpa)
{
	struct vm *vm = v->vm;
	struct vmc_hc_exit e;

	memcpy(&e, arg, sizeof(e));
	pthread_mutex_lock(&vm->report_lock);
	v->guest_exited = true;
	v->exit_status = e.status;
	if (e.status && !vm->guest_status)
		vm->guest_status = e.status;
	pthread_mutex_unlock(&vm->report_lock);
	return HCALL_EXIT;
}

static enum hcall_result hcall__sleep(struct vcpu *v, void *arg, uint64_t gpa)
{
	struct vmc_hc_sleep s;
	uint64_t deadline;

	memcpy(&s, arg, sizeof(s));
	deadline = s.ns > UINT64_MAX / 2 ? UINT64_MAX : util__now_ns() + s.ns;
	v->nr_sleeps++;
	s.stopped = vcpu__block(v, deadline);
	/* Written back after the block: a defrag may have moved the page (or switched its memslot)
	 * while this vCPU slept, so go through the accessor again, never a pointer kept from before. */
	vm__write_guest(v->vm, gpa + offsetof(struct vmc_hc_sleep, stopped), &s.stopped, sizeof(s.stopped));
	return HCALL_CONTINUE;
}

static const struct hcall_desc hcalls[VMC_HC_MAX] = {
	[VMC_HC_CONSOLE] = { "console", sizeof(struct vmc_hc_console), hcall__console },
	[VMC_HC_REPORT]  = { "report", sizeof(struct vmc_hc_report), hcall__report },
	[VMC_HC_EXIT]    = { "exit", sizeof(struct vmc_hc_exit), hcall__exit },
	[VMC_HC_SLEEP]   = { "sleep", sizeof(struct vmc_hc_sleep), hcall__sleep },
};

enum hcall_result hcall__handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct vm *vm = v->vm;
	unsigned port = run->io.port, nr;
	const struct hcall_desc *d;
	uint64_t expected = 0;
	uint32_t gpa;
	union {
		struct vmc_hc_console console;
		struct vmc_hc_report report;
		struct vmc_hc_exit exit;
		struct vmc_hc_sleep sleep;
	} arg;

	if (!__atomic_load_n(&vm->first_hc_ns, __ATOMIC_RELAXED))
		__atomic_compare_exchange_n(&vm->first_hc_ns, &expected, util__now_ns(), false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	v->nr_hypercalls++;
	if (port < VMC_HC_PORT_BASE || port >= VMC_HC_PORT_BASE + VMC_HC_PORT_COUNT) {
		vm__fail(vm, "vcpu %u: rip 0x%llx (after the out): port I/O to unknown port 0x%x (%s, size %u)",
			 v->id, (unsigned long long)vcpu__rip(v), port,
			 run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", run->io.size);
		return HCALL_FAILED;
	}
	nr = port - VMC_HC_PORT_BASE;
	if (run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 4 || run->io.count != 1) {
		vm__fail(vm, "vcpu %u: rip 0x%llx (after the out): hypercall port 0x%x: need one 32-bit out, got %s size %u count %u",
			 v->id, (unsigned long long)vcpu__rip(v), port,
			 run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", run->io.size, run->io.count);
		return HCALL_FAILED;
	}
	d = nr < VMC_HC_MAX ? &hcalls[nr] : NULL;
	if (!d || !d->fn) {
		vm__fail(vm, "vcpu %u: rip 0x%llx (after the out): unknown hypercall %u (port 0x%x)",
			 v->id, (unsigned long long)vcpu__rip(v), nr, port);
		return HCALL_FAILED;
	}
	memcpy(&gpa, (uint8_t *)run + run->io.data_offset, sizeof(gpa));
	if (d->size > sizeof(arg) || vm__read_guest(vm, gpa, &arg, d->size)) {
		vm__fail(vm, "vcpu %u: rip 0x%llx (after the out): %s hypercall: struct at gpa 0x%x (%zu bytes) is outside guest RAM (%llu MiB)",
			 v->id, (unsigned long long)vcpu__rip(v), d->name, gpa, d->size,
			 (unsigned long long)(vm->ram_bytes >> 20));
		return HCALL_FAILED;
	}
	return d->fn(v, &arg, gpa);
}
