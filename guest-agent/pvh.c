/* pvh.c: the agent booted by QEMU (PVH): memory map, boot infos, serial console, progress, JSON result, exit. */
#include "pvh.h"

/*
 * pvh.S enters pvh_main at CPL3 on the BSP with the hvm_start_info pointer, and pvh_ap_main
 * on each AP that pvh_hw__start_aps woke. From then on the agent is the same program as
 * under vmcompact, one boot info per vCPU, with these ops under it instead of hypercalls:
 *   console  -> COM1 (0x3f8), polled, one line at a time under a lock
 *   report   -> kept per vCPU; vCPU 0 prints a progress line at most every progress_ms
 *               (default 1 s); a 'q' or 's' received on COM1 sets every stop_requested
 *   exit     -> the last vCPU to exit prints the JSON result line and writes the first
 *               non-zero status to isa-debug-exit (QEMU exits with status*2+1); the others halt
 *   sleep    -> TSC busy-wait (there is no host to block in), polling COM1 for a stop
 */
#define TOP_4G          0x100000000ull
#define LOCK_SPINS      10000000u

/* The VM's state: the ops have no context argument (agent.h). */
struct pvh {
	struct vmc_boot_info bi[VMC_MAX_VCPUS] __attribute__((aligned(64)));
	struct vmc_hc_report last[VMC_MAX_VCPUS];
	uint64_t nr_reports[VMC_MAX_VCPUS];
	uint32_t status[VMC_MAX_VCPUS];
	uint8_t exited[VMC_MAX_VCPUS];
	uint32_t nr_vcpus, nr_exited, guest_status, finishing, console_lock, go;
	struct pvh_opts opts;
	uint64_t mem_bytes, qemu_cpus, entry_tsc, progress_tsc, last_progress_tsc;
	const char *tsc_source;
	char cmdline[1024];
	char line[2048 + VMC_MAX_VCPUS * 1024];
};

static struct pvh pvh;

/* The calling vCPU, from its stack: vCPU i runs on [VMC_STACK_TOP(i) - VMC_STACK_SIZE, VMC_STACK_TOP(i)). */
static uint32_t pvh__self_at(uint64_t sp)
{
	if (sp <= VMC_GPA_STACKS || sp > VMC_STACK_TOP(VMC_MAX_VCPUS - 1))
		return 0;
	return (uint32_t)((sp - 1 - VMC_GPA_STACKS) / VMC_STACK_SIZE);
}

static uint32_t pvh__self(void)
{
	uint64_t sp;

	__asm__ volatile("mov %%rsp, %0" : "=r"(sp));
	return pvh__self_at(sp);
}

/* Bounded: a vCPU that died holding it (CPU exception mid-line) must not silence the rest. */
static void pvh__lock(uint32_t *l)
{
	for (uint32_t i = 0; __atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE) && i < LOCK_SPINS; i++)
		__asm__ volatile("pause");
}

static void pvh__unlock(uint32_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/*
 * 16550 with its FIFO on (pvh_main): once THR-empty says the FIFO drained, 16 bytes fit, so a
 * line costs one status read per 16 bytes instead of one per byte (every port access is a VM
 * exit under KVM).
 */
static void pvh__console(const char *s, size_t len)
{
	pvh__lock(&pvh.console_lock);
	for (size_t i = 0; i < len;) {
		/* Bounded: a missing UART reads 0xff and never blocks. */
		for (unsigned spin = 0; !(pvh__inb(PVH_COM1 + 5) & 0x20) && spin < 100000; spin++)
			__asm__ volatile("pause");
		for (size_t burst = 0; burst < 16 && i < len; burst++, i++)
			pvh__outb(PVH_COM1, (uint8_t)s[i]);
	}
	pvh__unlock(&pvh.console_lock);
}

/* Prints the JSON result line and asks QEMU to exit, once per VM; returns if QEMU did not exit. */
static void pvh__finish(uint32_t status, const char *error)
{
	uint32_t n = pvh.nr_vcpus ? pvh.nr_vcpus : 1;
	struct pvh_result res = {
		.nr_vcpus = n, .bi = pvh.bi, .report = pvh.last, .nr_reports = pvh.nr_reports,
		.status = pvh.status, .exited = pvh.exited, .opts = &pvh.opts, .cmdline = pvh.cmdline,
		.mem_bytes = pvh.mem_bytes,
		.qemu_cpus = pvh.qemu_cpus, .tsc_source = pvh.tsc_source, .entry_tsc = pvh.entry_tsc,
		.exit_status = status, .error = error,
	};
	size_t len;

	if (__atomic_exchange_n(&pvh.finishing, 1, __ATOMIC_ACQ_REL))
		return;
	len = pvh_json__result(pvh.line, sizeof(pvh.line), &res);
	pvh__console(pvh.line, len);
	pvh__outl(PVH_DEBUG_EXIT, status);
}

/* cli; hlt through the DPL3 gate (pvh.S); `loud` says why QEMU is still running. */
__attribute__((noreturn)) static void pvh__halt(int loud)
{
	if (loud)
		console__printf("agent: QEMU did not exit: add -device isa-debug-exit,iobase=0xf4,iosize=4; halting\n");
	__asm__ volatile("int $32");
	for (;;)
		__asm__ volatile("pause");
}

static void pvh__exit(uint32_t status)
{
	uint32_t id = pvh__self(), zero = 0;

	pvh.status[id] = status;
	__atomic_store_n(&pvh.exited[id], 1, __ATOMIC_RELEASE);
	if (status)
		__atomic_compare_exchange_n(&pvh.guest_status, &zero, status, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
	if (__atomic_add_fetch(&pvh.nr_exited, 1, __ATOMIC_ACQ_REL) < pvh.nr_vcpus)
		pvh__halt(0);
	pvh__finish(__atomic_load_n(&pvh.guest_status, __ATOMIC_ACQUIRE), NULL);
	pvh__halt(1);
}

__attribute__((noreturn)) static void pvh__fail(uint32_t status, const char *msg)
{
	console__printf("agent: %s\n", msg);
	pvh__finish(status, msg);
	pvh__halt(1);
}

/* A 'q' or 's' received on COM1 asks every vCPU's workload to stop (as vmcompact's stop does). */
static int pvh__poll_stop(void)
{
	if (pvh.bi[0].stop_requested)
		return 1;
	while (pvh__inb(PVH_COM1 + 5) & 0x01) {
		uint8_t c = pvh__inb(PVH_COM1);

		if (c == 'q' || c == 's') {
			for (uint32_t i = 0; i < VMC_MAX_VCPUS; i++)
				pvh.bi[i].stop_requested = 1;
			console__printf("agent: stop requested on the serial port\n");
			return 1;
		}
	}
	return 0;
}

static void pvh__progress(void)
{
	struct vmc_hc_report sum = { 0 };
	uint64_t ms;

	for (uint32_t i = 0; i < pvh.nr_vcpus; i++) {
		sum.passes += pvh.last[i].passes;
		sum.updates += pvh.last[i].updates;
		sum.accesses += pvh.last[i].accesses;
		sum.bytes += pvh.last[i].bytes;
		sum.errors += pvh.last[i].errors;
	}
	ms = pvh.bi[0].tsc_khz ? pvh.last[0].tsc_cycles / pvh.bi[0].tsc_khz : 0;
	console__printf("agent: progress %lu.%03lu s: passes %lu, updates %lu, accesses %lu, bytes %lu, errors %lu%s\n",
			ms / 1000, ms % 1000, sum.passes, sum.updates, sum.accesses, sum.bytes, sum.errors,
			pvh.nr_vcpus > 1 ? " (all vCPUs)" : "");
}

static void pvh__report(struct vmc_hc_report *r)
{
	uint32_t id = pvh__self();
	uint64_t now = tsc__read();

	pvh.last[id] = *r;
	pvh.nr_reports[id]++;
	if (r->flags & VMC_REPORT_FINAL)
		return;
	pvh__poll_stop();
	if (id != 0 || !pvh.progress_tsc || now - pvh.last_progress_tsc < pvh.progress_tsc)
		return;
	pvh.last_progress_tsc = now;
	pvh__progress();
}

/* Busy-waits (no host to block in), polling the serial port for a stop every millisecond. */
static uint32_t pvh__sleep(uint64_t ns)
{
	uint64_t khz = pvh.bi[0].tsc_khz;
	uint64_t now = tsc__read(), end = now + ns / 1000 * khz / 1000, next_poll = now;

	while ((now = tsc__read()) < end) {
		if (now >= next_poll) {
			if (pvh__poll_stop())
				return 1;
			next_poll = now + khz;
		}
		__asm__ volatile("pause");
	}
	return 0;
}

static const struct agent_ops pvh_ops = {
	.name = "pvh", .console = pvh__console, .report = pvh__report,
	.exit = pvh__exit, .sleep = pvh__sleep, .progress_always = 1,
};

static const char *const exc_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "?", "#TS", "#NP", "#SS",
	"#GP", "#PF", "?", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

/* CPL0, on the vCPU's TSS stack: frame = vector, error code, RIP, CS, RFLAGS, RSP, SS. */
uint64_t pvh__exception(const uint64_t *f)
{
	const char *name = f[0] < 32 && exc_names[f[0]] ? exc_names[f[0]] : "?";
	uint32_t id = (f[3] & 3) == 3 ? pvh__self_at(f[5]) : 0;
	char msg[200];
	uint64_t cr2 = 0;

	if (f[0] == 14)
		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	snprintf(msg, sizeof(msg), "CPU exception %lu (%s) on vcpu %u at rip 0x%lx, error code 0x%lx, "
		 "rsp 0x%lx, cr2 0x%lx", f[0], name, id, f[2], f[1], f[5], cr2);
	console__printf("agent: %s\n", msg);
	pvh__finish(VMC_GUEST_EXCEPTION, msg);
	return 0;
}

/*
 * RAM from the memory map: the total, and the end of the region that holds the agent, its
 * stack and the start of the workload ([1 MiB, 6 MiB)), cut at 4 GiB (the static page
 * tables' reach) and rounded down to 2 MiB. Returns 0 if there is no such region.
 */
static uint64_t pvh__ram_end(const struct hvm_start_info *si)
{
	const struct hvm_memmap_table_entry *e = (const void *)(uintptr_t)si->memmap_paddr;
	uint64_t end = 0, above = 0;

	for (uint32_t i = 0; i < si->memmap_entries && i < 128; i++) {
		uint64_t lo = e[i].addr, hi = e[i].addr + e[i].size;

		if (e[i].type != HVM_MEMMAP_RAM)
			continue;
		pvh.mem_bytes += e[i].size;
		if (hi > TOP_4G)
			above += hi - (lo > TOP_4G ? lo : TOP_4G);
		if (lo <= VMC_GPA_AGENT && hi >= VMC_GPA_WORKLOAD + VMC_HUGE_SIZE)
			end = hi;
	}
	if (above)
		console__printf("agent: %lu MiB of RAM above 4 GiB are not used (the PVH page tables map 4 GiB)\n",
				above >> 20);
	if (end > TOP_4G)
		end = TOP_4G;
	return end & ~(VMC_HUGE_SIZE - 1);
}

static void pvh__copy_cmdline(const struct hvm_start_info *si)
{
	const char *s = (const char *)(uintptr_t)si->cmdline_paddr;
	size_t n = 0;

	if (si->cmdline_paddr && si->cmdline_paddr < TOP_4G)
		for (; s[n] && n < sizeof(pvh.cmdline) - 1; n++)
			pvh.cmdline[n] = s[n];
	pvh.cmdline[n] = 0;
}

/* As vmcompact's loader__slice: [4 MiB, ram_end) in equal 2 MiB-aligned parts, the rest to the last. */
static int pvh__slice(uint64_t ram_end, uint32_t nr, uint32_t id, uint64_t *start, uint64_t *end)
{
	uint64_t per = (ram_end - VMC_GPA_WORKLOAD) / nr / VMC_HUGE_SIZE * VMC_HUGE_SIZE;

	if (!per)
		return -1;
	*start = VMC_GPA_WORKLOAD + id * per;
	*end = id == nr - 1 ? ram_end : *start + per;
	return 0;
}

/* Boot info for every vCPU from bi[0] (parsed), and the APs started; fails with a message. */
static void pvh__setup_vcpus(uint32_t nr, uint64_t ram_end)
{
	struct vmc_boot_info *b0 = &pvh.bi[0];
	char err[200];

	b0->magic = VMC_BOOT_MAGIC;
	b0->abi_version = VMC_ABI_VERSION;
	b0->nr_vcpus = nr;
	b0->ram_bytes = ram_end;
	for (uint32_t i = nr; i-- > 0;) {
		struct vmc_boot_info *b = &pvh.bi[i];

		if (i)
			memcpy(b, b0, sizeof(*b));
		b->vcpu_id = i;
		if (pvh__slice(ram_end, nr, i, &b->mem_start, &b->mem_end)) {
			snprintf(err, sizeof(err), "%lu MiB of RAM leaves no 2 MiB workload slice for each of %u vCPUs",
				 ram_end >> 20, nr);
			pvh__fail(VMC_GUEST_BADARGS, err);
		}
	}
	pvh.nr_vcpus = nr;
	if (nr > 1) {
		uint64_t t0 = tsc__read();
		uint32_t up = pvh_hw__start_aps(nr, b0->tsc_khz);

		if (up != nr) {
			snprintf(err, sizeof(err), "%u of %u vCPUs started (INIT-SIPI-SIPI)", up, nr);
			pvh.nr_vcpus = 1;
			pvh__fail(VMC_GUEST_BADARGS, err);
		}
		console__printf("agent: %u AP%s started in %lu us\n", nr - 1, nr > 2 ? "s" : "",
				(tsc__read() - t0) * 1000 / b0->tsc_khz);
	}
}

void pvh_main(const void *start_info)
{
	const struct hvm_start_info *si = start_info;
	struct vmc_boot_info *bi = &pvh.bi[0];
	uint64_t ram_end;
	char err[200];

	pvh.entry_tsc = tsc__read();
	agent_ops = &pvh_ops;
	bi->nr_vcpus = 1;
	pvh__outb(PVH_COM1 + 2, 0x07);          /* FCR: FIFOs on and cleared */
	console__printf("agent: PVH boot under QEMU: 23 CPL0 instructions, now CPL3 with IOPL=3\n");
	if (!si || si->magic != HVM_START_MAGIC || si->version < 1)
		pvh__fail(VMC_GUEST_BADARGS, "no PVH start info with a memory map (magic 0x336ec578, version >= 1)");
	pvh__copy_cmdline(si);
	ram_end = pvh__ram_end(si);
	if (!ram_end)
		pvh__fail(VMC_GUEST_BADARGS, "the memory map has no RAM region covering [1 MiB, 6 MiB)");
	pvh.qemu_cpus = pvh_hw__qemu_cpus();
	if (pvh_spec__parse(pvh.cmdline, bi, &pvh.opts, err, sizeof(err)))
		pvh__fail(VMC_GUEST_BADARGS, err);
	if (pvh.qemu_cpus > VMC_MAX_VCPUS) {
		snprintf(err, sizeof(err), "QEMU has %lu vCPUs, the agent runs at most %u", pvh.qemu_cpus, VMC_MAX_VCPUS);
		pvh__fail(VMC_GUEST_BADARGS, err);
	}
	bi->tsc_khz = pvh.opts.tsc_khz;
	pvh.tsc_source = "command line";
	if (!bi->tsc_khz)
		bi->tsc_khz = pvh_hw__tsc_khz(&pvh.tsc_source);
	if (!bi->tsc_khz)
		pvh__fail(VMC_GUEST_BADARGS, "cannot tell the TSC frequency (no CPUID 0x40000010/0x15, the PIT "
			  "does not count): pass tsc_khz=N");
	pvh.progress_tsc = pvh.opts.progress_ms * bi->tsc_khz;
	pvh__setup_vcpus((uint32_t)pvh.qemu_cpus, ram_end);
	console__printf("agent: %lu MiB RAM in the memory map, workload [0x%lx, 0x%lx) on %u vCPU%s, TSC %lu kHz (%s), "
			"command line \"%s\"\n", pvh.mem_bytes >> 20, bi->mem_start, ram_end, pvh.nr_vcpus,
			pvh.nr_vcpus > 1 ? "s" : "", bi->tsc_khz, pvh.tsc_source, pvh.cmdline);
	pvh.last_progress_tsc = tsc__read();
	__atomic_store_n(&pvh.go, 1, __ATOMIC_RELEASE);
	agent_main(bi);
}

/* An AP, at CPL3 on VMC_STACK_TOP(id) (pvh.S): waits until the BSP has written its boot info. */
void pvh_ap_main(uint32_t id)
{
	while (!__atomic_load_n(&pvh.go, __ATOMIC_ACQUIRE))
		__asm__ volatile("pause");
	if (id >= pvh.nr_vcpus)
		pvh__halt(0);
	agent_main(&pvh.bi[id]);
}
