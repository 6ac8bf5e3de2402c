/* mm_json.c: guest-memory statistics as JSON, with /proc-style names (buddyinfo, vmstat...). */
#include "vmm/mm_json.h"
#include "vmm/json.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>

double kvm_pages__coverage_2m(const struct kvm_pages *k)
{
	double big = (double)k->pages_2m * 512 + (double)k->pages_1g * 512 * 512;
	double all = big + (double)k->pages_4k;

	return all > 0 ? big / all : 0.0;
}

unsigned mm_stat__backing_score(const struct mm_stat *st)
{
	if (!st->regions_achievable || st->regions_backed_2m >= st->regions_achievable)
		return 0;
	return (unsigned)(100ull * (st->regions_achievable - st->regions_backed_2m) / st->regions_achievable);
}

struct json_object *mm_json__vmstat(const struct mm_vmstat *v)
{
	struct json_object *o = json_object_new_object();

#define VMSTAT(field) json__add_u64(o, #field, v->field)
	VMSTAT(compact_migrate_scanned);
	VMSTAT(compact_free_scanned);
	VMSTAT(compact_isolated);
	VMSTAT(compact_stall);
	VMSTAT(compact_fail);
	VMSTAT(compact_success);
	VMSTAT(pgmigrate_success);
	VMSTAT(pgmigrate_fail);
	VMSTAT(thp_collapse_alloc);
	VMSTAT(thp_collapse_zero_copy);
	VMSTAT(thp_collapse_alloc_failed);
	VMSTAT(pages_copied);
#undef VMSTAT
	return o;
}

struct json_object *mm_json__kvm(const struct kvm_pages *k)
{
	struct json_object *o;

	if (!k || !k->valid)
		return NULL;
	o = json_object_new_object();
	json__add_u64(o, "pages_4k", k->pages_4k);
	json__add_u64(o, "pages_2m", k->pages_2m);
	json__add_u64(o, "pages_1g", k->pages_1g);
	json__add(o, "coverage_2m", json__fixed(kvm_pages__coverage_2m(k), 4));
	return o;
}

static struct json_object *index_json(const int *v)
{
	struct json_object *a = json_object_new_array();

	for (unsigned o = 0; o < MM_MAX_ORDER; o++)
		json_object_array_add(a, json__fixed(v[o] / 1000.0, 3));
	return a;
}

struct json_object *mm_json__stat(const struct mm_stat *st, const struct kvm_pages *kvm)
{
	struct json_object *o = json_object_new_object(), *t, *u, *a;
	unsigned ord, mt;

	json__add_u64(o, "guest_bytes", st->guest_bytes);
	json__add_u64(o, "pool_bytes", st->pool_bytes);
	json__add_u64(o, "pool_capacity_bytes", st->pool_capacity_bytes);
	json__add_u64(o, "slack_bytes", st->slack_bytes);
	json__add(o, "pool_backing", json_object_new_string(pool_backing__name(st->backing)));
	json__add_u64(o, "huge_blocks", st->huge_blocks);
	json__add(o, "huge_blocks_exact", json_object_new_boolean(st->huge_exact));
	json__add_u64(o, "metadata_bytes", st->metadata_bytes);
	json__add(o, "metadata_fraction", json__fixed(st->guest_bytes ? (double)st->metadata_bytes / st->guest_bytes : 0, 5));
	json__add_u64(o, "vmas", st->vmas);
	json__add_str(o, "promote_path", st->view_attached ? "memslot" : "remap");
	json__add_u64(o, "regions_direct", st->regions_direct);
	json__add_u64(o, "memslot_switches", st->view.switches);

	t = json_object_new_object();
	json__add_u64(t, "total", st->nr_regions);
	json__add_u64(t, "in_order", st->regions_in_order);
	json__add_u64(t, "backed_2m", st->regions_backed_2m);
	json__add_u64(t, "achievable", st->regions_achievable);
	json__add(o, "regions", t);
	json__add(o, "backing_2m", json__fixed(st->backing_2m, 4));
	json__add(o, "backing_2m_achievable", json__fixed(st->backing_2m_achievable, 4));
	json__add(o, "backing_2m_of_achievable", json__fixed(st->regions_achievable ?
		(double)st->regions_backed_2m / st->regions_achievable : 0, 4));
	json__add_u64(o, "backing_score", mm_stat__backing_score(st));
	json__add_u64(o, "fragmentation_score", st->frag_score);

	a = json_object_new_array();
	for (ord = 0; ord < MM_MAX_ORDER; ord++)
		json_object_array_add(a, json_object_new_uint64(st->nr_free[ord]));
	json__add(o, "buddyinfo", a);

	t = json_object_new_object();
	json__add(t, "page_block_order", json_object_new_int(MM_PAGEBLOCK_ORDER));
	json__add(t, "pages_per_block", json_object_new_int(MM_PAGEBLOCK_FRAMES));
	u = json_object_new_object();
	for (mt = 0; mt < MIGRATE_TYPES; mt++) {
		a = json_object_new_array();
		for (ord = 0; ord < MM_MAX_ORDER; ord++)
			json_object_array_add(a, json_object_new_uint64(st->nr_free_mt[ord][mt]));
		json__add(u, migratetype_names[mt], a);
	}
	json__add(t, "free", u);
	u = json_object_new_object();
	for (mt = 0; mt < MIGRATE_TYPES; mt++)
		json__add_u64(u, migratetype_names[mt], st->pageblocks_mt[mt]);
	json__add(t, "blocks", u);
	json__add(o, "pagetypeinfo", t);

	json__add(o, "extfrag_index", index_json(st->fragindex));
	json__add(o, "unusable_index", index_json(st->unusable));

	t = json_object_new_object();
	for (ord = 0; ord < FRAME_OWNERS; ord++)
		json__add_u64(t, frame_owner_names[ord], st->frames_owned[ord]);
	json__add(o, "frames", t);
	json__add(o, "kvm", mm_json__kvm(kvm));
	json__add(o, "vmstat", mm_json__vmstat(&st->vmstat));
	return o;
}

struct json_object *mm_json__defrag_stats(const struct defrag_stats *st)
{
	struct json_object *o = json_object_new_object();

	json__add(o, "compact_result", json_object_new_string(compact_result__name(st->compact_result)));
	json__add(o, "seconds", json__fixed(st->wall_ns / 1e9, 4));
	json__add(o, "plan_ms", json__fixed(st->plan_ns / 1e6, 3));
	json__add_u64(o, "steps", st->steps);
	json__add_u64(o, "pages_copied", st->pages_copied);
	json__add_u64(o, "pages_moved_4k", st->pages_moved_4k);
	json__add_u64(o, "guest_pages_moved", st->guest_pages_moved);
	json__add_u64(o, "copies_guest", st->copies_guest);
	json__add_u64(o, "copies_ballast", st->copies_ballast);
	json__add_u64(o, "copies_temp", st->copies_temp);
	json__add(o, "copies_per_promoted_page", json__fixed(st->copies_per_promoted_page, 3));
	json__add(o, "copies_per_moved_page", json__fixed(st->copies_per_moved_page, 3));
	json__add_u64(o, "remaps_2m", st->remaps_2m);
	json__add_u64(o, "regions_promoted", st->regions_promoted);
	json__add_u64(o, "regions_zero_copy", st->regions_zero_copy);
	json__add_u64(o, "regions_fast_path", st->regions_fast_path);
	json__add_u64(o, "regions_failed", st->regions_failed);
	json__add_u64(o, "regions_blocked", st->regions_blocked);
	json__add_u64(o, "regions_achievable", st->regions_achievable);
	json__add_u64(o, "regions_backed_2m", st->regions_backed_2m);
	json__add(o, "pause_max_us", json__fixed(st->pause_max_ns / 1e3, 1));
	json__add(o, "pause_p99_us", json__fixed(st->pause_p99_ns / 1e3, 1));
	json__add(o, "pause_total_ms", json__fixed(st->pause_total_ns / 1e6, 3));
	json__add_str(o, "promote_path", st->promote_path ? st->promote_path : "remap");
	json__add_u64(o, "memslot_switches", st->view_switches);
	json__add(o, "memslot_switch_max_us", json__fixed(st->view_switch_max_ns / 1e3, 1));
	json__add_u64(o, "memslot_demotions", st->view_demotions);
	json__add_u64(o, "memslot_fallbacks", st->view_fallbacks);
	json__add_u64(o, "window_fixes_after_resume", st->window_fixes);
	json__add(o, "window_fix_ms", json__fixed(st->window_fix_ns / 1e6, 3));
	json__add_u64(o, "borrowed_peak_bytes", st->borrowed_peak_bytes);
	json__add_u64(o, "borrow_limit_bytes", st->borrow_limit_bytes);
	json__add_u64(o, "given_back_bytes", st->given_back_bytes);
	json__add_u64(o, "pool_rss_after_bytes", st->pool_rss_after_bytes);
	json__add(o, "borrow_ms", json__fixed(st->borrow_ns / 1e6, 3));
	json__add(o, "give_back_ms", json__fixed(st->give_back_ns / 1e6, 3));
	json__add_u64(o, "blocks_faulted_lazily", st->blocks_faulted_lazily);
	json__add(o, "borrow_note", st->borrow_note[0] ? json_object_new_string(st->borrow_note) : NULL);
	json__add(o, "error", st->error ? json_object_new_string(st->error_msg) : NULL);
	json__add(o, "vmstat", mm_json__vmstat(&st->delta));
	return o;
}
