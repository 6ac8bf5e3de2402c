/* trace.h: defrag trace events named like the kernel's tracepoints: USDT probes (provider "vmcompact") and an optional trace file. */
#ifndef VMC_MM_TRACE_H
#define VMC_MM_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Every trace_*() macro below does two things:
 *  - a USDT probe vmcompact:<event> (a nop plus an ELF note; perf and bpftrace attach to it),
 *    compiled in when <sys/sdt.h> (Debian: systemtap-sdt-dev) is present, else nothing;
 *  - when mm->trace is set, one line "SECONDS EVENT: key=value ..." to that sink.
 * The USDT arguments are the line's values, in the same order (strings as char *).
 */
#if !defined(VMC_NO_USDT) && defined(__has_include)
#if __has_include(<sys/sdt.h>)
#include <sys/sdt.h>
#define VMC_HAVE_USDT 1
#endif
#endif

#ifdef VMC_HAVE_USDT
#define VMC_PROBE1(ev, a) STAP_PROBE1(vmcompact, ev, a)
#define VMC_PROBE2(ev, a, b) STAP_PROBE2(vmcompact, ev, a, b)
#define VMC_PROBE3(ev, a, b, c) STAP_PROBE3(vmcompact, ev, a, b, c)
#define VMC_PROBE4(ev, a, b, c, d) STAP_PROBE4(vmcompact, ev, a, b, c, d)
#define VMC_PROBE5(ev, a, b, c, d, e) STAP_PROBE5(vmcompact, ev, a, b, c, d, e)
#define VMC_PROBE6(ev, a, b, c, d, e, f) STAP_PROBE6(vmcompact, ev, a, b, c, d, e, f)
#else
#define VMC_HAVE_USDT 0
#define VMC_PROBE1(ev, a) do { } while (0)
#define VMC_PROBE2(ev, a, b) do { } while (0)
#define VMC_PROBE3(ev, a, b, c) do { } while (0)
#define VMC_PROBE4(ev, a, b, c, d) do { } while (0)
#define VMC_PROBE5(ev, a, b, c, d, e) do { } while (0)
#define VMC_PROBE6(ev, a, b, c, d, e, f) do { } while (0)
#endif

/* A trace sink: the engine hands it one finished line (no newline). */
struct mm_trace {
	/* NULL: append the line to file. Called from whichever thread runs the engine. */
	void (*write)(struct mm_trace *t, const char *line, size_t len);
	FILE *file;
	void *ctx;
	uint64_t t0_ns;            /* CLOCK_MONOTONIC origin of the line timestamps */
	uint64_t lines;
};

/* A sink writing to file (not owned), timestamps from now. */
void mm_trace__init(struct mm_trace *t, FILE *file);
/* Create path and write its header line. 0, or -errno with a message in err. */
int mm_trace__open(struct mm_trace *t, const char *path, char *err, size_t errlen);
/* Flush and close a sink made by mm_trace__open (NULL and closed sinks are fine). 0 or -errno. */
int mm_trace__close(struct mm_trace *t);
void mm_trace__emit(struct mm_trace *t, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define MM_TRACE_HEADER "# vmcompact trace v1: SECONDS EVENT: key=value ... (events named like the kernel's tracepoints)"

#define VMC_TRACE_LINE(mm, ev, ...) \
	do { if ((mm)->trace) mm_trace__emit((mm)->trace, #ev, __VA_ARGS__); } while (0)
#define VMC_ULL(x) ((unsigned long long)(x))

/* --- Linux compaction (include/trace/events/compaction.h) --- */
#define trace_mm_compaction_begin(mm, zone_start, migrate_pfn, free_pfn, zone_end, order) do { \
	VMC_PROBE5(mm_compaction_begin, VMC_ULL(zone_start), VMC_ULL(migrate_pfn), VMC_ULL(free_pfn), \
		   VMC_ULL(zone_end), (int)(order)); \
	VMC_TRACE_LINE(mm, mm_compaction_begin, "zone_start=%#llx migrate_pfn=%#llx free_pfn=%#llx zone_end=%#llx order=%d", \
		       VMC_ULL(zone_start), VMC_ULL(migrate_pfn), VMC_ULL(free_pfn), VMC_ULL(zone_end), (int)(order)); \
} while (0)

#define trace_mm_compaction_end(mm, zone_start, migrate_pfn, free_pfn, zone_end, order, status) do { \
	VMC_PROBE6(mm_compaction_end, VMC_ULL(zone_start), VMC_ULL(migrate_pfn), VMC_ULL(free_pfn), \
		   VMC_ULL(zone_end), (int)(order), (const char *)(status)); \
	VMC_TRACE_LINE(mm, mm_compaction_end, \
		       "zone_start=%#llx migrate_pfn=%#llx free_pfn=%#llx zone_end=%#llx order=%d status=%s", \
		       VMC_ULL(zone_start), VMC_ULL(migrate_pfn), VMC_ULL(free_pfn), VMC_ULL(zone_end), (int)(order), \
		       (const char *)(status)); \
} while (0)

#define trace_mm_compaction_isolate_migratepages(mm, start_pfn, end_pfn, nr_scanned, nr_taken) do { \
	VMC_PROBE4(mm_compaction_isolate_migratepages, VMC_ULL(start_pfn), VMC_ULL(end_pfn), VMC_ULL(nr_scanned), \
		   VMC_ULL(nr_taken)); \
	VMC_TRACE_LINE(mm, mm_compaction_isolate_migratepages, "range=(%#llx ~ %#llx) nr_scanned=%llu nr_taken=%llu", \
		       VMC_ULL(start_pfn), VMC_ULL(end_pfn), VMC_ULL(nr_scanned), VMC_ULL(nr_taken)); \
} while (0)

#define trace_mm_compaction_isolate_freepages(mm, start_pfn, end_pfn, nr_scanned, nr_taken) do { \
	VMC_PROBE4(mm_compaction_isolate_freepages, VMC_ULL(start_pfn), VMC_ULL(end_pfn), VMC_ULL(nr_scanned), \
		   VMC_ULL(nr_taken)); \
	VMC_TRACE_LINE(mm, mm_compaction_isolate_freepages, "range=(%#llx ~ %#llx) nr_scanned=%llu nr_taken=%llu", \
		       VMC_ULL(start_pfn), VMC_ULL(end_pfn), VMC_ULL(nr_scanned), VMC_ULL(nr_taken)); \
} while (0)

#define trace_mm_compaction_migratepages(mm, nr_migrated, nr_failed) do { \
	VMC_PROBE2(mm_compaction_migratepages, VMC_ULL(nr_migrated), VMC_ULL(nr_failed)); \
	VMC_TRACE_LINE(mm, mm_compaction_migratepages, "nr_migrated=%llu nr_failed=%llu", \
		       VMC_ULL(nr_migrated), VMC_ULL(nr_failed)); \
} while (0)

/* --- migration (include/trace/events/migrate.h) and khugepaged (huge_memory.h) --- */
#define trace_mm_migrate_pages(mm, succeeded, failed, thp_succeeded, thp_failed, reason) do { \
	VMC_PROBE5(mm_migrate_pages, VMC_ULL(succeeded), VMC_ULL(failed), VMC_ULL(thp_succeeded), \
		   VMC_ULL(thp_failed), (const char *)(reason)); \
	VMC_TRACE_LINE(mm, mm_migrate_pages, "succeeded=%llu failed=%llu thp_succeeded=%llu thp_failed=%llu reason=%s", \
		       VMC_ULL(succeeded), VMC_ULL(failed), VMC_ULL(thp_succeeded), VMC_ULL(thp_failed), \
		       (const char *)(reason)); \
} while (0)

/* One 2 MiB window remap of guest region `region` (promotion: zero-copy or after copies). */
#define trace_mm_collapse_huge_page(mm, region, runs, ns) do { \
	VMC_PROBE3(mm_collapse_huge_page, VMC_ULL(region), VMC_ULL(runs), VMC_ULL(ns)); \
	VMC_TRACE_LINE(mm, mm_collapse_huge_page, "region=%llu mappings=%llu ns=%llu", VMC_ULL(region), \
		       VMC_ULL(runs), VMC_ULL(ns)); \
} while (0)

/* --- vmcompact's own --- */
/* One 4 KiB move: copy src -> dst, remap gpfn (gpfn -1: movable ballast, no remap). */
#define trace_defrag_move(mm, gpfn, src, dst, ns, flags) do { \
	VMC_PROBE5(defrag_move, (long long)(gpfn), VMC_ULL(src), VMC_ULL(dst), VMC_ULL(ns), (unsigned)(flags)); \
	VMC_TRACE_LINE(mm, defrag_move, "gpfn=%lld src=%#llx dst=%#llx ns=%llu flags=%#x", (long long)(gpfn), \
		       VMC_ULL(src), VMC_ULL(dst), VMC_ULL(ns), (unsigned)(flags)); \
} while (0)

/* The engine has stopped every vCPU for step `step`; stopping them took latency_ns. */
#define trace_vcpu_pause(mm, step, latency_ns) do { \
	VMC_PROBE2(vcpu_pause, VMC_ULL(step), VMC_ULL(latency_ns)); \
	VMC_TRACE_LINE(mm, vcpu_pause, "step=%llu latency_ns=%llu", VMC_ULL(step), VMC_ULL(latency_ns)); \
} while (0)

/* The vCPUs run again after step `step`; they were stopped for pause_ns. */
#define trace_vcpu_resume(mm, step, pause_ns) do { \
	VMC_PROBE2(vcpu_resume, VMC_ULL(step), VMC_ULL(pause_ns)); \
	VMC_TRACE_LINE(mm, vcpu_resume, "step=%llu pause_ns=%llu", VMC_ULL(step), VMC_ULL(pause_ns)); \
} while (0)

/* A defrag step ended: its duration (the vCPU pause) and the operations it did. */
#define trace_defrag_step(mm, step, dur_ns, nr_ops, pages_copied) do { \
	VMC_PROBE4(defrag_step, VMC_ULL(step), VMC_ULL(dur_ns), VMC_ULL(nr_ops), VMC_ULL(pages_copied)); \
	VMC_TRACE_LINE(mm, defrag_step, "step=%llu dur_ns=%llu ops=%llu pages_copied=%llu", VMC_ULL(step), \
		       VMC_ULL(dur_ns), VMC_ULL(nr_ops), VMC_ULL(pages_copied)); \
} while (0)

/* mm__defrag() begins / ends one request. */
#define trace_defrag_begin(mm, mode, algo, order) do { \
	VMC_PROBE3(defrag_begin, (const char *)(mode), (const char *)(algo), (int)(order)); \
	VMC_TRACE_LINE(mm, defrag_begin, "mode=%s algo=%s order=%d", (const char *)(mode), (const char *)(algo), \
		       (int)(order)); \
} while (0)

#define trace_defrag_end(mm, error, wall_ns, steps, pages_copied, regions_backed_2m) do { \
	VMC_PROBE5(defrag_end, (int)(error), VMC_ULL(wall_ns), VMC_ULL(steps), VMC_ULL(pages_copied), \
		   VMC_ULL(regions_backed_2m)); \
	VMC_TRACE_LINE(mm, defrag_end, "error=%d wall_ns=%llu steps=%llu pages_copied=%llu regions_backed_2m=%llu", \
		       (int)(error), VMC_ULL(wall_ns), VMC_ULL(steps), VMC_ULL(pages_copied), \
		       VMC_ULL(regions_backed_2m)); \
} while (0)

#endif
