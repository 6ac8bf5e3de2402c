/* mm_json.c: guest-memory statistics as JSON, with /proc-style names (buddyinfo, vmstat...). */
#include "vmm/mm_json.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>

static void jadd(struct json_object *o, const char *key, struct json_object *v)
{
	json_object_object_add(o, key, v);
}

static void jadd_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

/* A double printed with a fixed number of decimals (json-c keeps the text). */
static struct json_object *jfixed(double v, int decimals)
{
	char buf[64];

	if (!isfinite(v))
		return NULL;
	snprintf(buf, sizeof(buf), "%.*f", decimals, v);
	return json_object_new_double_s(v, buf);
}

const char *pool_backing__name(enum pool_backing b)
{
	switch (b) {
	case POOL_BACKING_THP: return "thp";
	case POOL_BACKING_HUGETLB: return "hugetlb";
	case POOL_BACKING_4K: return "4k";
	}
	return "unknown";
}

const char *compact_result__name(enum compact_result r)
{
	static const char *const names[] = {
		[COMPACT_NOT_SUITABLE_ZONE] = "not_suitable_zone",
		[COMPACT_SKIPPED] = "skipped",
		[COMPACT_CONTINUE] = "continue",
		[COMPACT_COMPLETE] = "complete",
		[COMPACT_PARTIAL_SKIPPED] = "partial_skipped",
		[COMPACT_SUCCESS] = "success",
		[COMPACT_ABORTED] = "aborted",
	};

	if ((unsigned)r < sizeof(names) / sizeof(names[0]) && names[r])
		return names[r];
	return "unknown";
}

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

#define VMSTAT(field) jadd_u64(o, #field, v->field)
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
	jadd_u64(o, "pages_4k", k->pages_4k);
	jadd_u64(o, "pages_2m", k->pages_2m);
	jadd_u64(o, "pages_1g", k->pages_1g);
	jadd(o, "coverage_2m", jfixed(kvm_pages__coverage_2m(k), 4));
	return o;
}

static struct json_object *index_json(const int *v)
{
	struct json_object *a = json_object_new_array();

	for (unsigned o = 0; o < MM_MAX_ORDER; o++)
		json_object_array_add(a, jfixed(v[o] / 1000.0, 3));
	return a;
}

struct json_object *mm_json__stat(const struct mm_stat *st, const struct kvm_pages *kvm)
{
	struct json_object *o = json_object_new_object(), *t, *u, *a;
	unsigned ord, mt;

	jadd_u64(o, "guest_bytes", st->guest_bytes);
	jadd_u64(o, "pool_bytes", st->pool_bytes);
	jadd_u64(o, "slack_bytes", st->slack_bytes);
	jadd(o, "pool_backing", json_object_new_string(pool_backing__name(st->backing)));
	jadd_u64(o, "huge_blocks", st->huge_blocks);
	jadd(o, "huge_blocks_exact", json_object_new_boolean(st->huge_exact));
	jadd_u64(o, "metadata_bytes", st->metadata_bytes);
	jadd(o, "metadata_fraction", jfixed(st->guest_bytes ? (double)st->metadata_bytes / st->guest_bytes : 0, 5));
	jadd_u64(o, "vmas", st->vmas);

	t = json_object_new_object();
	jadd_u64(t, "total", st->nr_regions);
	jadd_u64(t, "in_order", st->regions_in_order);
	jadd_u64(t, "backed_2m", st->regions_backed_2m);
	jadd_u64(t, "achievable", st->regions_achievable);
	jadd(o, "regions", t);
	jadd(o, "backing_2m", jfixed(st->backing_2m, 4));
	jadd(o, "backing_2m_achievable", jfixed(st->backing_2m_achievable, 4));
	jadd(o, "backing_2m_of_achievable", jfixed(st->regions_achievable ?
		(double)st->regions_backed_2m / st->regions_achievable : 0, 4));
	jadd_u64(o, "backing_score", mm_stat__backing_score(st));
	jadd_u64(o, "fragmentation_score", st->frag_score);

	a = json_object_new_array();
	for (ord = 0; ord < MM_MAX_ORDER; ord++)
		json_object_array_add(a, json_object_new_uint64(st->nr_free[ord]));
	jadd(o, "buddyinfo", a);

	t = json_object_new_object();
	jadd(t, "page_block_order", json_object_new_int(MM_PAGEBLOCK_ORDER));
	jadd(t, "pages_per_block", json_object_new_int(MM_PAGEBLOCK_FRAMES));
	u = json_object_new_object();
	for (mt = 0; mt < MIGRATE_TYPES; mt++) {
		a = json_object_new_array();
		for (ord = 0; ord < MM_MAX_ORDER; ord++)
			json_object_array_add(a, json_object_new_uint64(st->nr_free_mt[ord][mt]));
		jadd(u, migratetype_names[mt], a);
	}
	jadd(t, "free", u);
	u = json_object_new_object();
	for (mt = 0; mt < MIGRATE_TYPES; mt++)
		jadd_u64(u, migratetype_names[mt], st->pageblocks_mt[mt]);
	jadd(t, "blocks", u);
	jadd(o, "pagetypeinfo", t);

	jadd(o, "extfrag_index", index_json(st->fragindex));
	jadd(o, "unusable_index", index_json(st->unusable));

	t = json_object_new_object();
	for (ord = 0; ord < FRAME_OWNERS; ord++)
		jadd_u64(t, frame_owner_names[ord], st->frames_owned[ord]);
	jadd(o, "frames", t);
	jadd(o, "kvm", mm_json__kvm(kvm));
	jadd(o, "vmstat", mm_json__vmstat(&st->vmstat));
	return o;
}

struct json_object *mm_json__defrag_stats(const struct defrag_stats *st)
{
	struct json_object *o = json_object_new_object();

	jadd(o, "compact_result", json_object_new_string(compact_result__name(st->compact_result)));
	jadd(o, "seconds", jfixed(st->wall_ns / 1e9, 4));
	jadd(o, "plan_ms", jfixed(st->plan_ns / 1e6, 3));
	jadd_u64(o, "steps", st->steps);
	jadd_u64(o, "pages_copied", st->pages_copied);
	jadd_u64(o, "pages_moved_4k", st->pages_moved_4k);
	jadd_u64(o, "guest_pages_moved", st->guest_pages_moved);
	jadd_u64(o, "copies_guest", st->copies_guest);
	jadd_u64(o, "copies_ballast", st->copies_ballast);
	jadd_u64(o, "copies_temp", st->copies_temp);
	jadd(o, "copies_per_promoted_page", jfixed(st->copies_per_promoted_page, 3));
	jadd(o, "copies_per_moved_page", jfixed(st->copies_per_moved_page, 3));
	jadd_u64(o, "remaps_2m", st->remaps_2m);
	jadd_u64(o, "regions_promoted", st->regions_promoted);
	jadd_u64(o, "regions_zero_copy", st->regions_zero_copy);
	jadd_u64(o, "regions_fast_path", st->regions_fast_path);
	jadd_u64(o, "regions_failed", st->regions_failed);
	jadd_u64(o, "regions_blocked", st->regions_blocked);
	jadd_u64(o, "regions_achievable", st->regions_achievable);
	jadd_u64(o, "regions_backed_2m", st->regions_backed_2m);
	jadd(o, "pause_max_us", jfixed(st->pause_max_ns / 1e3, 1));
	jadd(o, "pause_p99_us", jfixed(st->pause_p99_ns / 1e3, 1));
	jadd(o, "pause_total_ms", jfixed(st->pause_total_ns / 1e6, 3));
	jadd(o, "error", st->error ? json_object_new_string(st->error_msg) : NULL);
	jadd(o, "vmstat", mm_json__vmstat(&st->delta));
	return o;
}
