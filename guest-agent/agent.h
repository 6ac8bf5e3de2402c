/* agent.h: the guest agent's internal API: platform ops, console printf, TSC, workloads. */
#ifndef VMC_AGENT_H
#define VMC_AGENT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "vmcompact/abi.h"

/*
 * What the agent needs from below, chosen once at boot by the entry path: vmcompact's
 * hypercalls (_start, the default) or PVH under QEMU (pvh_start32: serial console, one JSON
 * result line, isa-debug-exit). A global because the agent is one program with one platform.
 */
struct agent_ops {
	const char *name;
	void (*console)(const char *s, size_t len);
	void (*report)(struct vmc_hc_report *r);
	void (*exit)(uint32_t status);            /* must not return */
	uint32_t (*sleep)(uint64_t ns);           /* returns 1 if woken by a stop request */
	int progress_always;                      /* timed gups/chase report progress too */
};
extern const struct agent_ops *agent_ops;
extern const struct agent_ops vmc_hypercall_ops;

/* Hypercall: out %eax, %dx with the struct's GPA (identity map: pointer == GPA, < 4 GiB). */
static inline void hc__call(unsigned nr, void *arg)
{
	uint32_t gpa = (uint32_t)(uintptr_t)arg;
	__asm__ volatile("outl %0, %1" : : "a"(gpa), "Nd"((uint16_t)(VMC_HC_PORT_BASE + nr)) : "memory");
}

static inline uint64_t tsc__read(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline uint32_t agent__stop_requested(const struct vmc_boot_info *bi)
{
	return __atomic_load_n(&bi->stop_requested, __ATOMIC_RELAXED);
}

/* lib.c */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void console__write(const char *s, size_t len);
void console__printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hc__report(struct vmc_hc_report *r);
__attribute__((noreturn)) void hc__exit(uint32_t status);
uint32_t hc__sleep(uint64_t ns);   /* returns 1 if woken by a stop request */

/* Time helpers over the host-given TSC frequency. */
uint64_t tsc__from_ms(const struct vmc_boot_info *bi, uint64_t ms);

/* Periodic progress reports: at most one hypercall per interval. */
struct reporter {
	uint64_t last_tsc;
	uint64_t interval_tsc;
};
void reporter__init(struct reporter *rp, const struct vmc_boot_info *bi);
void reporter__maybe(struct reporter *rp, struct vmc_hc_report *r);

/* Workloads: each fills *r (cumulative) and returns the exit status. */
uint32_t wl__verify(const struct vmc_boot_info *bi, struct vmc_hc_report *r);
uint32_t wl__gups(const struct vmc_boot_info *bi, struct vmc_hc_report *r);
uint32_t wl__stream(const struct vmc_boot_info *bi, struct vmc_hc_report *r);
uint32_t wl__chase(const struct vmc_boot_info *bi, struct vmc_hc_report *r);

/* pvh.c: QEMU PVH boot (entry from pvh.S at CPL3 with the hvm_start_info pointer). */
__attribute__((noreturn)) void pvh_main(const void *start_info);
__attribute__((noreturn)) void pvh_ap_main(uint32_t id);
uint64_t pvh__exception(const uint64_t *frame);   /* CPL0, from pvh.S; does not return */
__attribute__((noreturn)) void agent_main(struct vmc_boot_info *bi);
const char *agent__workload_name(uint32_t id);   /* "?" for unknown ids */

#endif
