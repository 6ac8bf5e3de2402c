/* mm_json.h: guest-memory statistics as JSON, shared by `run --json`, query-memory and benches. */
#ifndef VMC_VMM_MM_JSON_H
#define VMC_VMM_MM_JSON_H

#include <stdint.h>
#include "mm/defrag.h"
#include "mm/mm.h"
#include "vmm/kvm_stats.h"

struct json_object;


/* Share of the guest memory KVM maps that it maps with 2 MiB (or larger) entries. */
double kvm_pages__coverage_2m(const struct kvm_pages *k);

struct json_object *mm_json__vmstat(const struct mm_vmstat *v);
struct json_object *mm_json__kvm(const struct kvm_pages *k);
/* The whole memory picture: sizes, buddyinfo, pagetypeinfo, extfrag/unusable indices,
 * scores, backing_2m (+ achievable), frames by owner, VMAs, vmstat; kvm may be NULL. */
struct json_object *mm_json__stat(const struct mm_stat *st, const struct kvm_pages *kvm);
struct json_object *mm_json__defrag_stats(const struct defrag_stats *st);
/* 100 * (achievable - backed) / achievable: how far the guest is from full 2 MiB backing. */
unsigned mm_stat__backing_score(const struct mm_stat *st);


#endif
