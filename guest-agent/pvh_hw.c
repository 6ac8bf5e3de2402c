/* pvh_hw.c: the QEMU hardware the PVH agent touches from CPL3: CPUID, PIT, fw_cfg, and the LAPIC to start APs. */
#include "pvh.h"

#define PIT_HZ          1193182u
#define PIT_CAL_TICKS   (PIT_HZ / 20)     /* 50 ms */
#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_NB_CPUS   0x05
#define LAPIC_SVR       0xfee000f0u
#define LAPIC_ICR_LO    0xfee00300u
#define ICR_PENDING     (1u << 12)
#define ICR_ALL_BUT_SELF (3u << 18)
#define ICR_INIT        0x00004500u      /* INIT, level assert */
#define ICR_STARTUP     0x00004600u      /* start-up (SIPI), vector in bits 0-7 */

extern const uint8_t pvh_tramp_start[], pvh_tramp_end[];
extern volatile uint32_t pvh_ap_next;

static inline void cpuid(uint32_t leaf, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

static uint32_t pvh_hw__pit_count(void)
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
static uint32_t pvh_hw__pit_sample(uint64_t *tsc, uint64_t *min_width)
{
	for (int i = 0;; i++) {
		uint64_t t0 = tsc__read(), t1, w;
		uint32_t c = pvh_hw__pit_count();

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

static uint32_t pvh_hw__pit_ticks(uint32_t prev, uint32_t cur)
{
	return prev >= cur ? prev - cur : prev + 0xffff - cur;
}

/* TSC cycles against 50 ms of PIT channel 0 (mode 2, period 65535); 0 if the PIT does not count. */
static uint64_t pvh_hw__pit_khz(void)
{
	uint64_t t0, t1, min_width = UINT64_MAX;
	uint32_t prev, cur, ticks = 0, stuck = 0;

	pvh__outb(0x43, 0x34);                   /* channel 0, lo/hi byte, mode 2, binary */
	pvh__outb(0x40, 0xff);
	pvh__outb(0x40, 0xff);
	for (int i = 0; i < 4; i++)              /* learn how narrow a bracket can be */
		pvh_hw__pit_sample(&t0, &min_width);
	prev = pvh_hw__pit_sample(&t0, &min_width);
	while (ticks < PIT_CAL_TICKS) {
		cur = pvh_hw__pit_count();
		stuck = cur == prev ? stuck + 1 : 0;
		if (stuck > 1000000)
			return 0;
		ticks += pvh_hw__pit_ticks(prev, cur);
		prev = cur;
	}
	cur = pvh_hw__pit_sample(&t1, &min_width);
	ticks += pvh_hw__pit_ticks(prev, cur);
	return (t1 - t0) * PIT_HZ / ticks / 1000;
}

/* CPUID 0x40000010 (hypervisor TSC kHz), else CPUID 0x15 (crystal ratio), else the PIT. */
uint64_t pvh_hw__tsc_khz(const char **source)
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
	khz = pvh_hw__pit_khz();
	*source = khz ? "pit" : "none";
	return khz;
}

/* The number of vCPUs QEMU was given (fw_cfg), 1 if there is no fw_cfg. */
uint64_t pvh_hw__qemu_cpus(void)
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


static void pvh_hw__delay_us(uint64_t tsc_khz, uint64_t us)
{
	uint64_t end = tsc__read() + us * tsc_khz / 1000;

	while (tsc__read() < end)
		__asm__ volatile("pause");
}

/* xAPIC registers through the identity map (the page is U/S=1, so CPL3 may send IPIs). */
static void pvh_hw__icr(uint32_t v)
{
	volatile uint32_t *icr = (volatile uint32_t *)(uintptr_t)LAPIC_ICR_LO;

	for (int i = 0; i < 1000000 && (*icr & ICR_PENDING); i++)
		__asm__ volatile("pause");
	*icr = v;
}

/*
 * INIT-SIPI-SIPI to all other CPUs (the MP spec's sequence with its 10 ms and 200 us waits);
 * each AP runs pvh.S's trampoline from PVH_TRAMPOLINE and takes the next vCPU id. Waits up to
 * 1 s for nr - 1 of them; returns how many vCPUs run (BSP included).
 */
uint32_t pvh_hw__start_aps(uint32_t nr, uint64_t tsc_khz)
{
	volatile uint32_t *svr = (volatile uint32_t *)(uintptr_t)LAPIC_SVR;
	uint8_t *dst = (uint8_t *)(uintptr_t)PVH_TRAMPOLINE;
	uint64_t deadline;

	memcpy(dst, pvh_tramp_start, (size_t)(pvh_tramp_end - pvh_tramp_start));
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*svr = *svr | 0x1ff;                     /* software-enable the LAPIC, spurious vector 0xff */
	pvh_hw__icr(ICR_ALL_BUT_SELF | ICR_INIT);
	pvh_hw__delay_us(tsc_khz, 10000);
	for (int i = 0; i < 2; i++) {
		pvh_hw__icr(ICR_ALL_BUT_SELF | ICR_STARTUP | (PVH_TRAMPOLINE >> 12));
		pvh_hw__delay_us(tsc_khz, 200);
	}
	deadline = tsc__read() + 1000 * tsc_khz;
	while (__atomic_load_n(&pvh_ap_next, __ATOMIC_ACQUIRE) < nr && tsc__read() < deadline)
		__asm__ volatile("pause");
	return __atomic_load_n(&pvh_ap_next, __ATOMIC_ACQUIRE);
}
