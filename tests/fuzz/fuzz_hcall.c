/* fuzz_hcall.c: the hypercall dispatcher (vmm/hcall.c): guest-chosen port, size, struct pointer and struct contents. */
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/hcall.h"
#include "vmm/vm.h"

#define FUZZ_RAM (8ull << 20)   /* the smallest guest vmcompact runs */

/*
 * Input: port (2 bytes), direction, size, count (1 byte each), the 32-bit value written (the
 * struct's GPA), then bytes copied to guest RAM at that GPA (whatever the guest put there).
 * The VM is a fake one without KVM: RAM is a buffer, the vCPU has no fd and no thread, and a
 * stop is already requested so that a sleep hypercall returns at once.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t run_page[4096] __attribute__((aligned(64)));
	static uint8_t *ram;      /* kept across inputs: an input dirties only what it copied in */
	static FILE *devnull;
	struct kvm_run *run = (struct kvm_run *)run_page;
	size_t copied = 0;
	struct vm vm;
	struct vcpu v;
	enum hcall_result r;
	uint32_t gpa;

	if (size < 9)
		return 0;
	memset(&vm, 0, sizeof(vm));
	memset(&v, 0, sizeof(v));
	if (!ram)
		ram = calloc(1, FUZZ_RAM);
	if (!devnull)
		devnull = fopen("/dev/null", "w");
	vm.ram = ram;
	vm.ram_bytes = FUZZ_RAM;
	vm.slots.ram = ram;    /* one memslot over RAM (promote path remap) */
	vm.slots.ram_bytes = FUZZ_RAM;
	vm.nr_vcpus = 1;
	vm.vcpus = &v;
	vm.console = devnull;
	vm.stop_requested = 1;
	FUZZ_ASSERT(vm.ram && vm.console, "setup");
	pthread_mutex_init(&vm.lock, NULL);
	pthread_mutex_init(&vm.report_lock, NULL);
	pthread_mutex_init(&vm.console_lock, NULL);
	pthread_cond_init(&vm.wake_cond, NULL);
	pthread_cond_init(&vm.parked_cond, NULL);
	v.vm = &vm;
	v.fd = -1;
	v.run = run;
	memset(run_page, 0, sizeof(run_page));
	run->exit_reason = KVM_EXIT_IO;
	run->io.port = (uint16_t)(data[0] | data[1] << 8);
	run->io.direction = data[2] & 1;
	run->io.size = data[3];
	run->io.count = data[4];
	run->io.data_offset = 1024;
	memcpy(&gpa, data + 5, sizeof(gpa));
	memcpy(run_page + 1024, &gpa, sizeof(gpa));
	if (gpa < FUZZ_RAM) {
		copied = size - 9 < FUZZ_RAM - gpa ? size - 9 : FUZZ_RAM - gpa;
		memcpy(vm.ram + gpa, data + 9, copied);
	}

	r = hcall__handle_io(&v);
	FUZZ_ASSERT(r == HCALL_CONTINUE || r == HCALL_EXIT || r == HCALL_FAILED, "result %d", (int)r);
	FUZZ_ASSERT((r == HCALL_FAILED) == vm.failed, "result %d but failed %d", (int)r, vm.failed);
	FUZZ_ASSERT(!vm.failed || (vm.fail_msg[0] && memchr(vm.fail_msg, '\0', sizeof(vm.fail_msg))),
		    "a failure without a message");
	FUZZ_ASSERT(v.line_len <= sizeof(v.line), "console line overflow");
	hcall__console_flush(&v);
	if (copied)
		memset(vm.ram + gpa, 0, copied > 4096 ? copied : 4096 < FUZZ_RAM - gpa ? 4096 : FUZZ_RAM - gpa);
	pthread_mutex_destroy(&vm.lock);
	pthread_mutex_destroy(&vm.report_lock);
	pthread_mutex_destroy(&vm.console_lock);
	pthread_cond_destroy(&vm.wake_cond);
	pthread_cond_destroy(&vm.parked_cond);
	return 0;
}
