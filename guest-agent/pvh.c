/* pvh.c: the agent booted by QEMU (PVH): memory map, TSC frequency, serial console, progress, JSON result, exit. */
#include "pvh.h"

/*
 * pvh.S enters pvh_main at CPL3 with the hvm_start_info pointer. From then on the agent is
 * the same program as under vmcompact, with these ops under it instead of hypercalls:
 *   console  -> COM1 (0x3f8), polled
 *   report   -> kept; a progress line at most every progress_ms (default 1 s); a 'q' or 's'
 *               received on COM1 sets stop_requested (the workloads' graceful stop)
 *   exit     -> the JSON result line, then isa-debug-exit (QEMU exits with status*2+1)
 *   sleep    -> TSC busy-wait (there is no host to block in), polling COM1 for a stop
 * One vCPU: QEMU's APs are never started (-smp N > 1 is refused with a message).
 */
#define PIT_HZ          1193182u
#define PIT_CAL_TICKS   (PIT_HZ / 20)     /* 50 ms */
#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_NB_CPUS   0x05
#define TOP_4G          0x100000000ull

/* The one vCPU's state: the ops have no context argument (agent.h). */
struct pvh {
	struct vmc_boot_info bi __attribute__((aligned(64)));
	struct pvh_opts opts;
	struct vmc_hc_report last;
	uint64_t nr_reports;
	uint64_t mem_bytes, qemu_cpus, entry_tsc;
	uint64_t progress_tsc, last_progress_tsc;
	const char *tsc_source;
	char cmdline[1024];
	char line[2048];
};

static struct pvh pvh;

static void pvh__console(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		/* Wait for THR empty (bounded: a missing UART reads 0xff and never blocks). */
		for (unsigned spin = 0; !(pvh__inb(PVH_COM1 + 5) & 0x20) && spin < 100000; spin++)
			__asm__ volatile("pause");
		pvh__outb(PVH_COM1, (uint8_t)s[i]);
	}
}

/* Prints the JSON result line and asks QEMU to exit; returns only if QEMU did not. */
static void pvh__finish(uint32_t status, const char *error)
{
	struct pvh_result res = {
		.bi = &pvh.bi, .opts = &pvh.opts, .report = &pvh.last, .nr_reports = pvh.nr_reports,
		.mem_bytes = pvh.mem_bytes, .qemu_cpus = pvh.qemu_cpus, .tsc_source = pvh.tsc_source,
		.entry_tsc = pvh.entry_tsc, .exit_status = status, .error = error,
	};
	size_t n = pvh_json__result(pvh.line, sizeof(pvh.line), &res);

	pvh__console(pvh.line, n);
	pvh__outl(PVH_DEBUG_EXIT, status);
}

__attribute__((noreturn)) static void pvh__halt(void)
{
	console__printf("agent: QEMU did not exit: add -device isa-debug-exit,iobase=0xf4,iosize=4; halting\n");
	__asm__ volatile("int $32");   /* pvh.S: cli; hlt at CPL0 */
	for (;;)
		__asm__ volatile("pause");
}

static void pvh__exit(uint32_t status)
{
	pvh__finish(status, NULL);
	pvh__halt();
}

__attribute__((noreturn)) static void pvh__fail(uint32_t status, const char *msg)
{
	console__printf("agent: %s\n", msg);
	pvh__finish(status, msg);
	pvh__halt();
}

/* A 'q' or 's' received on COM1 asks the workload to stop (as vmcompact's stop request does). */
static int pvh__poll_stop(void)
{
	if (pvh.bi.stop_requested)
		return 1;
	while (pvh__inb(PVH_COM1 + 5) & 0x01) {
		uint8_t c = pvh__inb(PVH_COM1);

		if (c == 'q' || c == 's') {
			pvh.bi.stop_requested = 1;
			console__printf("agent: stop requested on the serial port\n");
			return 1;
		}
	}
	return 0;
}

static void pvh__report(struct vmc_hc_report *r)
{
	uint64_t now = tsc__read(), ms;

	pvh.last = *r;
	pvh.nr_reports++;
	if (!(r->flags & VMC_REPORT_FINAL))
		pvh__poll_stop();
	if ((r->flags & VMC_REPORT_FINAL) || !pvh.progress_tsc || now - pvh.last_progress_tsc < pvh.progress_tsc)
		return;
	pvh.last_progress_tsc = now;
	ms = pvh.bi.tsc_khz ? r->tsc_cycles / pvh.bi.tsc_khz : 0;
	console__printf("agent: progress %lu.%03lu s: passes %lu, updates %lu, accesses %lu, bytes %lu, errors %lu\n",
			ms / 1000, ms % 1000, r->passes, r->updates, r->accesses, r->bytes, r->errors);
}

/* Busy-waits (no host to block in), polling the serial port for a stop every millisecond. */
static uint32_t pvh__sleep(uint64_t ns)
{
	uint64_t now = tsc__read(), end = now + ns / 1000 * pvh.bi.tsc_khz / 1000, next_poll = now;

	while ((now = tsc__read()) < end) {
		if (now >= next_poll) {
			if (pvh__poll_stop())
				return 1;
			next_poll = now + pvh.bi.tsc_khz;
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

/* CPL0, on the TSS stack: frame = vector, error code, RIP, CS, RFLAGS, RSP, SS. */
uint64_t pvh__exception(const uint64_t *f)
{
	const char *name = f[0] < 32 && exc_names[f[0]] ? exc_names[f[0]] : "?";
	char msg[200];
	uint64_t cr2 = 0;

	if (f[0] == 14)
		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	snprintf(msg, sizeof(msg), "CPU exception %lu (%s) at rip 0x%lx, error code 0x%lx, rsp 0x%lx, cr2 0x%lx",
		 f[0], name, f[2], f[1], f[5], cr2);
	console__printf("agent: %s\n", msg);
	pvh__finish(VMC_GUEST_EXCEPTION, msg);
	return 0;
}

static inline void cpuid(uint32_t leaf, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

static uint32_t pvh__pit_count(void)
{
	uint32_t lo, hi;

	pvh__outb(0x43, 0x00);                   /* latch channel 0 */
	lo = pvh__inb(0x40);
	hi = pvh__inb(0x40);
	return hi << 8 | lo;
}

/*
 * The PIT count and the TSC when it was latched (the middle of a TSC bracket around the read),
 * re-read while the bracket is over twice the narrowest seen (the vCPU was preempted).
 */
static uint32_t pvh__pit_sample(uint64_t *tsc, uint64_t *min_width)
{
	for (int i = 0;; i++) {
		uint64_t t0 = tsc__read(), t1, w;
		uint32_t c = pvh__pit_count();

		t1 = tsc__read();
		w = t1 - t0;
		if (w < *min_width)
			*min_width = w;
		if (w <= 2 * *min_width || i == 9) {
			*tsc = t0 + w / 2;
			return c;
		}
	}
}

static uint32_t pvh__pit_ticks(uint32_t prev, uint32_t cur)
{
	return prev >= cur ? prev - cur : prev + 0xffff - cur;
}

/* TSC cycles against 50 ms of PIT channel 0 (mode 2, period 65535); 0 if the PIT does not count. */
static uint64_t pvh__pit_khz(void)
{
	uint64_t t0, t1, min_width = UINT64_MAX;
	uint32_t prev, cur, ticks = 0, stuck = 0;

	pvh__outb(0x43, 0x34);                   /* channel 0, lo/hi byte, mode 2, binary */
	pvh__outb(0x40, 0xff);
	pvh__outb(0x40, 0xff);
	for (int i = 0; i < 4; i++)              /* learn how narrow a bracket can be */
		pvh__pit_sample(&t0, &min_width);
	prev = pvh__pit_sample(&t0, &min_width);
	while (ticks < PIT_CAL_TICKS) {
		cur = pvh__pit_count();
		stuck = cur == prev ? stuck + 1 : 0;
		if (stuck > 1000000)
			return 0;
		ticks += pvh__pit_ticks(prev, cur);
		prev = cur;
	}
	cur = pvh__pit_sample(&t1, &min_width);
	ticks += pvh__pit_ticks(prev, cur);
	return (t1 - t0) * PIT_HZ / ticks / 1000;
}

/* CPUID 0x40000010 (hypervisor TSC kHz), else CPUID 0x15 (crystal ratio), else the PIT. */
static uint64_t pvh__tsc_khz(const char **source)
{
	uint32_t r[4], max_basic;
	uint64_t khz;

	cpuid(0, r);
	max_basic = r[0];
	cpuid(1, r);
	if (r[2] & (1u << 31)) {
		cpuid(0x40000000, r);
		if (r[0] >= 0x40000010 && r[0] < 0x40000100) {
			cpuid(0x40000010, r);
			if (r[0] >= 100000 && r[0] <= 10000000) {
				*source = "cpuid-0x40000010";
				return r[0];
			}
		}
	}
	if (max_basic >= 0x15) {
		cpuid(0x15, r);
		khz = r[0] ? (uint64_t)r[2] * r[1] / r[0] / 1000 : 0;
		if (khz >= 100000 && khz <= 10000000) {
			*source = "cpuid-0x15";
			return khz;
		}
	}
	khz = pvh__pit_khz();
	*source = khz ? "pit" : "none";
	return khz;
}

/* The number of vCPUs QEMU was given (fw_cfg), 1 if there is no fw_cfg. */
static uint64_t pvh__qemu_cpus(void)
{
	uint8_t sig[4];
	uint32_t n;

	pvh__outw(PVH_FW_CFG_SEL, FW_CFG_SIGNATURE);
	for (int i = 0; i < 4; i++)
		sig[i] = pvh__inb(PVH_FW_CFG_DATA);
	if (sig[0] != 'Q' || sig[1] != 'E' || sig[2] != 'M' || sig[3] != 'U')
		return 1;
	pvh__outw(PVH_FW_CFG_SEL, FW_CFG_NB_CPUS);
	n = pvh__inb(PVH_FW_CFG_DATA);
	n |= (uint32_t)pvh__inb(PVH_FW_CFG_DATA) << 8;
	return n ? n : 1;
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

void pvh_main(const void *start_info)
{
	const struct hvm_start_info *si = start_info;
	struct vmc_boot_info *bi = &pvh.bi;
	uint64_t ram_end;
	char err[200];

	pvh.entry_tsc = tsc__read();
	agent_ops = &pvh_ops;
	bi->nr_vcpus = 1;
	console__printf("agent: PVH boot under QEMU: 23 CPL0 instructions, now CPL3 with IOPL=3\n");
	if (!si || si->magic != HVM_START_MAGIC || si->version < 1)
		pvh__fail(VMC_GUEST_BADARGS, "no PVH start info with a memory map (magic 0x336ec578, version >= 1)");
	pvh__copy_cmdline(si);
	ram_end = pvh__ram_end(si);
	if (!ram_end)
		pvh__fail(VMC_GUEST_BADARGS, "the memory map has no RAM region covering [1 MiB, 6 MiB)");
	pvh.qemu_cpus = pvh__qemu_cpus();
	if (pvh_spec__parse(pvh.cmdline, bi, &pvh.opts, err, sizeof(err)))
		pvh__fail(VMC_GUEST_BADARGS, err);
	if (pvh.qemu_cpus > 1) {
		snprintf(err, sizeof(err), "QEMU has %lu vCPUs but the agent runs on one under PVH "
			 "(no AP bring-up): use -smp 1", pvh.qemu_cpus);
		pvh__fail(VMC_GUEST_BADARGS, err);
	}
	bi->tsc_khz = pvh.opts.tsc_khz;
	pvh.tsc_source = "command line";
	if (!bi->tsc_khz)
		bi->tsc_khz = pvh__tsc_khz(&pvh.tsc_source);
	if (!bi->tsc_khz)
		pvh__fail(VMC_GUEST_BADARGS, "cannot tell the TSC frequency (no CPUID 0x40000010/0x15, the PIT "
			  "does not count): pass tsc_khz=N");
	bi->magic = VMC_BOOT_MAGIC;
	bi->abi_version = VMC_ABI_VERSION;
	bi->ram_bytes = ram_end;
	bi->mem_start = VMC_GPA_WORKLOAD;
	bi->mem_end = ram_end;
	pvh.progress_tsc = pvh.opts.progress_ms * bi->tsc_khz;
	pvh.last_progress_tsc = tsc__read();
	console__printf("agent: %lu MiB RAM in the memory map, workload slice [0x%lx, 0x%lx), TSC %lu kHz (%s), "
			"command line \"%s\"\n", pvh.mem_bytes >> 20, bi->mem_start, bi->mem_end, bi->tsc_khz,
			pvh.tsc_source, pvh.cmdline);
	agent_main(bi);
}
