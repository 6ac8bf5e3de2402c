/* main.c: guest agent entry: checks the boot info, runs the selected workload, reports, exits. */
#include "agent.h"

static const char *const wl_names[VMC_WL_COUNT] = {
	[VMC_WL_NOOP] = "noop", [VMC_WL_TOUCH] = "touch", [VMC_WL_VERIFY] = "verify",
	[VMC_WL_GUPS] = "gups", [VMC_WL_STREAM] = "stream", [VMC_WL_IDLE] = "idle",
	[VMC_WL_FAULT] = "fault", [VMC_WL_CHASE] = "chase",
};

const char *agent__workload_name(uint32_t id)
{
	return id < VMC_WL_COUNT && wl_names[id] ? wl_names[id] : "?";
}

/* Writes one signature word at the start and one at the end of every page of the slice. */
static uint32_t wl__touch(const struct vmc_boot_info *bi, struct vmc_hc_report *r)
{
	uint64_t t0 = tsc__read();

	for (uint64_t gpa = bi->mem_start; gpa < bi->mem_end; gpa += VMC_PAGE_SIZE) {
		volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)gpa;
		p[0] = gpa;
		p[VMC_PAGE_SIZE / 8 - 1] = ~gpa;
		r->pages++;
	}
	r->passes = 1;
	r->tsc_cycles = tsc__read() - t0;
	return VMC_GUEST_OK;
}

/* Sleeps in the host (the vCPU thread blocks) until a stop is requested. */
static uint32_t wl__idle(const struct vmc_boot_info *bi, struct vmc_hc_report *r)
{
	while (!agent__stop_requested(bi)) {
		if (hc__sleep(1000000000ull))
			break;
		r->passes++;
	}
	r->flags |= VMC_REPORT_STOPPED;
	return VMC_GUEST_OK;
}

static const char *const fault_names[VMC_FAULT_COUNT] = {
	[VMC_FAULT_BADPTR] = "badptr", [VMC_FAULT_BADLEN] = "badlen", [VMC_FAULT_BADPORT] = "badport",
	[VMC_FAULT_BADCALL] = "badcall", [VMC_FAULT_MMIO] = "mmio", [VMC_FAULT_TRIPLE] = "triple",
};

/* Test-only: each case must make the VMM stop the VM with an error; reaching the end is a bug. */
static uint32_t wl__fault(const struct vmc_boot_info *bi, struct vmc_hc_report *r)
{
	static const char msg[] = "fault: badlen\n";
	struct vmc_hc_console c;

	if (bi->args.fault == 0 || bi->args.fault >= VMC_FAULT_COUNT) {
		console__printf("agent: unknown fault kind %u\n", bi->args.fault);
		return VMC_GUEST_BADARGS;
	}
	console__printf("agent: vcpu %u provoking fault:%s\n", bi->vcpu_id, fault_names[bi->args.fault]);
	switch (bi->args.fault) {
	case VMC_FAULT_BADPTR:
		/* The struct pointer itself is past RAM (still a 32-bit GPA when RAM < 4 GiB). */
		__asm__ volatile("outl %0, %1" : : "a"((uint32_t)(bi->ram_bytes + 0x1000)),
				 "Nd"((uint16_t)(VMC_HC_PORT_BASE + VMC_HC_CONSOLE)) : "memory");
		break;
	case VMC_FAULT_BADLEN:
		c.gpa = (uint64_t)(uintptr_t)msg;
		c.len = bi->ram_bytes;  /* runs past the end of RAM (and past VMC_CONSOLE_MAX) */
		hc__call(VMC_HC_CONSOLE, &c);
		break;
	case VMC_FAULT_BADPORT:
		__asm__ volatile("outl %0, %1" : : "a"(0), "Nd"((uint16_t)0x80) : "memory");
		break;
	case VMC_FAULT_BADCALL:
		hc__call(VMC_HC_PORT_COUNT - 1, &c);
		break;
	case VMC_FAULT_MMIO:
		r->bytes = *(volatile uint64_t *)(uintptr_t)VMC_GPA_HOLE(bi->ram_bytes);
		break;
	case VMC_FAULT_TRIPLE:
		__asm__ volatile("ud2");
		break;
	default:
		break;
	}
	console__printf("agent: fault:%s did not stop the VM\n", fault_names[bi->args.fault]);
	return VMC_GUEST_BADARGS;
}

void agent_main(struct vmc_boot_info *bi)
{
	struct vmc_hc_report r = { 0 };
	uint32_t status;

	if (bi->magic != VMC_BOOT_MAGIC || bi->abi_version != VMC_ABI_VERSION) {
		console__printf("agent: bad boot info (magic %lx, abi %u, want %u)\n",
				bi->magic, bi->abi_version, VMC_ABI_VERSION);
		hc__exit(VMC_GUEST_BADARGS);
	}
	if (bi->workload >= VMC_WL_COUNT || bi->mem_start >= bi->mem_end ||
	    bi->mem_end > bi->ram_bytes || bi->tsc_khz == 0) {
		console__printf("agent: bad workload %u or slice [%lx, %lx) or tsc %lu kHz\n",
				bi->workload, bi->mem_start, bi->mem_end, bi->tsc_khz);
		hc__exit(VMC_GUEST_BADARGS);
	}
	if (bi->vcpu_id == 0)
		console__printf("agent: hello from vcpu 0/%u at CPL3, abi %u, %lu MiB RAM, workload %s\n",
				bi->nr_vcpus, bi->abi_version, bi->ram_bytes >> 20, wl_names[bi->workload]);

	r.workload = bi->workload;
	switch (bi->workload) {
	case VMC_WL_NOOP:   status = VMC_GUEST_OK; break;
	case VMC_WL_TOUCH:  status = wl__touch(bi, &r); break;
	case VMC_WL_VERIFY: status = wl__verify(bi, &r); break;
	case VMC_WL_GUPS:   status = wl__gups(bi, &r); break;
	case VMC_WL_STREAM: status = wl__stream(bi, &r); break;
	case VMC_WL_IDLE:   status = wl__idle(bi, &r); break;
	case VMC_WL_FAULT:  status = wl__fault(bi, &r); break;
	case VMC_WL_CHASE:  status = wl__chase(bi, &r); break;
	default:            status = VMC_GUEST_BADARGS; break;
	}
	if (agent__stop_requested(bi))
		r.flags |= VMC_REPORT_STOPPED;
	r.flags |= VMC_REPORT_FINAL;
	hc__report(&r);
	hc__exit(status);
}
