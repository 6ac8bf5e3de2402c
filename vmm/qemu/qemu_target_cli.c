/* qemu_target_cli.c: target options, opening a QEMU guest, and its RAM coverage as text and JSON. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "vmm/qemu/qemu_target_cli.h"
#include "vmm/util.h"


bool qemu_target_opts__take(struct qemu_target_opts *o, int opt, const char *arg, bool *bad)
{
	char *end;

	switch (opt) {
	case 'D':
		o->domain = arg;
		break;
	case 'S':
		o->qmp = arg;
		break;
	case 'U':
		o->uri = arg;
		return true;
	case 'Q':
		errno = 0;
		o->pid = strtol(arg, &end, 10);
		if (errno || end == arg || *end || o->pid <= 0 || o->pid > 0x3fffffff) {
			fprintf(stderr, "vmcompact: invalid value '%s' for --qemu (a PID)\n", arg);
			*bad = true;
		}
		break;
	default:
		return false;
	}
	o->given++;
	return true;
}

int qemu_target_opts__open(const struct qemu_target_opts *o, const char *prog,
			   struct qemu_target *t)
{
	char err[512];
	int r;

	if (o->given != 1) {
		fprintf(stderr, "vmcompact %s: name exactly one of --domain, --qemu, --qmp\n", prog);
		return QEMU_EXIT_USAGE;
	}
	if (o->domain)
		r = qemu_target__open_domain(t, o->domain, o->uri, err, sizeof(err));
	else if (o->qmp)
		r = qemu_target__open_qmp(t, o->qmp, err, sizeof(err));
	else
		r = qemu_target__open_pid(t, (pid_t)o->pid, o->uri, err, sizeof(err));
	if (r == 0) {
		r = qemu_target__find_ram(t, err, sizeof(err));
		if (r < 0)
			qemu_target__close(t);
	}
	if (r < 0) {
		fprintf(stderr, "vmcompact %s: %s\n", prog, err);
		return qemu_exit__from_errno(r);
	}
	return QEMU_EXIT_OK;
}

/* hugetlb backing shows in smaps as a larger kernel page size */
static void cover__note_hugetlb(struct qemu_ramblock *b, const struct smaps_cover *s)
{
	if (s->kernel_page_size > 4096 && b->kind != RAM_HUGETLB) {
		b->kind = RAM_HUGETLB;
		b->collapsible = false;
		snprintf(b->note, sizeof(b->note), "hugetlb pages of %" PRIu64 " KiB: already huge",
			 s->kernel_page_size >> 10);
	}
}

int qemu_cover__take(struct qemu_target *t, struct qemu_cover *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->blocks = calloc(t->nr_blocks ? t->nr_blocks : 1, sizeof(*c->blocks));
	if (!c->blocks)
		return -ENOMEM;
	for (size_t i = 0; i < t->nr_blocks; i++) {
		struct qemu_ramblock *b = &t->blocks[i];
		struct qemu_block_cover *bc = &c->blocks[i];
		int r;

		if (!b->identified)
			continue;
		r = smaps_cover__read(t->pid, b->start, b->end, &bc->smaps, err, errlen);
		if (r == -ESRCH)
			return r;
		bc->have_smaps = r == 0;
		if (bc->have_smaps) {
			cover__note_hugetlb(b, &bc->smaps);
			c->ram += bc->smaps.size;
			c->huge += bc->smaps.huge;
		}
		r = region_map__scan(t->pid, b->start, b->end, &bc->map, err, errlen);
		if (r == -ESRCH)
			return r;
		bc->have_map = r == 0;
		if (bc->have_map && b->collapsible) {
			c->regions += bc->map.nr;
			c->regions_huge += bc->map.count[REGION_HUGE];
			c->regions_populated += bc->map.nr - bc->map.count[REGION_EMPTY];
		}
	}
	qemu_target__kvm_pages(t, &c->kvm);
	return 0;
}

void qemu_cover__free(struct qemu_cover *c, size_t nr_blocks)
{
	for (size_t i = 0; c->blocks && i < nr_blocks; i++)
		region_map__free(&c->blocks[i].map);
	free(c->blocks);
	c->blocks = NULL;
}

double qemu_cover__share(const struct qemu_cover *c)
{
	return c->ram ? (double)c->huge / (double)c->ram : 0.0;
}

static struct json_object *cover__map_string(const struct region_map *m)
{
	char *s = malloc(m->nr + 1);
	struct json_object *o;

	if (!s)
		return NULL;
	for (size_t i = 0; i < m->nr; i++)
		s[i] = region_state_chars[m->state[i]];
	s[m->nr] = '\0';
	o = json_object_new_string(s);
	free(s);
	return o;
}

static struct json_object *cover__block_json(const struct qemu_ramblock *b,
					     const struct qemu_block_cover *bc, bool with_map)
{
	struct json_object *o = json_object_new_object(), *s, *rg;

	json_object_object_add(o, "id", json_object_new_string(b->dev.id));
	json_object_object_add(o, "type", json_object_new_string(b->dev.type));
	json_object_object_add(o, "size", json_object_new_uint64(b->dev.size));
	json_object_object_add(o, "identified", json_object_new_boolean(b->identified));
	json_object_object_add(o, "backing", json_object_new_string(ram_kind_names[b->kind]));
	json_object_object_add(o, "mapping", json_object_new_string(b->mapping));
	json_object_object_add(o, "start", json_object_new_uint64(b->start));
	json_object_object_add(o, "collapsible", json_object_new_boolean(b->collapsible));
	json_object_object_add(o, "note", json_object_new_string(b->note));
	if (bc->have_smaps) {
		s = json_object_new_object();
		json_object_object_add(s, "rss", json_object_new_uint64(bc->smaps.rss));
		json_object_object_add(s, "huge_bytes", json_object_new_uint64(bc->smaps.huge));
		json_object_object_add(s, "share_2m",
				       json_object_new_double(smaps_cover__share(&bc->smaps)));
		json_object_object_add(o, "smaps", s);
	}
	if (bc->have_map) {
		rg = json_object_new_object();
		json_object_object_add(rg, "total", json_object_new_uint64(bc->map.nr));
		json_object_object_add(rg, "huge", json_object_new_uint64(bc->map.count[REGION_HUGE]));
		json_object_object_add(rg, "small", json_object_new_uint64(bc->map.count[REGION_SMALL]));
		json_object_object_add(rg, "empty", json_object_new_uint64(bc->map.count[REGION_EMPTY]));
		json_object_object_add(rg, "unknown",
				       json_object_new_uint64(bc->map.count[REGION_UNKNOWN]));
		json_object_object_add(rg, "pfns_visible", json_object_new_boolean(bc->map.pfns_visible));
		if (with_map)
			json_object_object_add(rg, "map", cover__map_string(&bc->map));
		json_object_object_add(o, "regions", rg);
	}
	return o;
}

static struct json_object *kvm_pages__json(const struct qemu_kvm_pages *k)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "available", json_object_new_boolean(k->valid));
	if (!k->valid) {
		json_object_object_add(o, "why", json_object_new_string(k->why));
		return o;
	}
	json_object_object_add(o, "pages_4k", json_object_new_uint64(k->pages_4k));
	json_object_object_add(o, "pages_2m", json_object_new_uint64(k->pages_2m));
	json_object_object_add(o, "pages_1g", json_object_new_uint64(k->pages_1g));
	return o;
}

struct json_object *qemu_cover__json(const struct qemu_target *t, const struct qemu_cover *c,
				     bool with_map)
{
	struct json_object *o = json_object_new_object(), *arr = json_object_new_array(), *tot;

	json_object_object_add(o, "target", json_object_new_string(t->label));
	json_object_object_add(o, "pid", json_object_new_int(t->pid));
	json_object_object_add(o, "accel", json_object_new_string(t->kvm ? "kvm" : "tcg"));
	for (size_t i = 0; i < t->nr_blocks; i++)
		json_object_array_add(arr, cover__block_json(&t->blocks[i], &c->blocks[i], with_map));
	json_object_object_add(o, "blocks", arr);
	tot = json_object_new_object();
	json_object_object_add(tot, "ram_bytes", json_object_new_uint64(c->ram));
	json_object_object_add(tot, "huge_bytes", json_object_new_uint64(c->huge));
	json_object_object_add(tot, "share_2m", json_object_new_double(qemu_cover__share(c)));
	json_object_object_add(tot, "regions", json_object_new_uint64(c->regions));
	json_object_object_add(tot, "regions_huge", json_object_new_uint64(c->regions_huge));
	json_object_object_add(tot, "regions_populated", json_object_new_uint64(c->regions_populated));
	json_object_object_add(o, "totals", tot);
	json_object_object_add(o, "kvm", kvm_pages__json(&c->kvm));
	return o;
}

void qemu_cover__print(const struct qemu_target *t, const struct qemu_cover *c, bool with_map,
		       FILE *f)
{
	char b1[32], b2[32];

	fprintf(f, "%s, pid %d, accel %s\n", t->label, (int)t->pid, t->kvm ? "kvm" : "tcg");
	fprintf(f, "%-14s %-22s %7s %-10s %8s %9s  %s\n", "BLOCK", "TYPE", "SIZE", "BACKING",
		"2M(smaps)", "H/4/./U", "MAPPING");
	for (size_t i = 0; i < t->nr_blocks; i++) {
		const struct qemu_ramblock *b = &t->blocks[i];
		const struct qemu_block_cover *bc = &c->blocks[i];
		char share[16] = "-", regions[48] = "-";

		if (bc->have_smaps)
			snprintf(share, sizeof(share), "%.1f%%", 100.0 * smaps_cover__share(&bc->smaps));
		if (bc->have_map)
			snprintf(regions, sizeof(regions), "%zu/%zu/%zu/%zu", bc->map.count[REGION_HUGE],
				 bc->map.count[REGION_SMALL], bc->map.count[REGION_EMPTY],
				 bc->map.count[REGION_UNKNOWN]);
		fprintf(f, "%-14s %-22s %7s %-10s %8s %9s  %s\n", b->dev.id, b->dev.type,
			util__human_bytes(b->dev.size, b1, sizeof(b1)), ram_kind_names[b->kind], share,
			regions, b->identified ? (b->mapping[0] ? b->mapping : "[anonymous]") : "?");
		if (!b->collapsible || strncmp(b->note, "matched by", 10))
			fprintf(f, "  %s: %s\n", b->dev.id, b->note);
		if (with_map && bc->have_map)
			region_map__print(&bc->map, f, 64);
	}
	fprintf(f, "RAM on 2 MiB host pages: %.1f%% (%s of %s, smaps); %" PRIu64 " of %" PRIu64
		" collapsible regions (pagemap)\n", 100.0 * qemu_cover__share(c),
		util__human_bytes(c->huge, b1, sizeof(b1)), util__human_bytes(c->ram, b2, sizeof(b2)),
		c->regions_huge, c->regions);
	if (c->kvm.valid)
		fprintf(f, "KVM: pages_4k %" PRIu64 ", pages_2m %" PRIu64 ", pages_1g %" PRIu64 "\n",
			c->kvm.pages_4k, c->kvm.pages_2m, c->kvm.pages_1g);
	else
		fprintf(f, "KVM pages: %s\n", c->kvm.why);
}

int qemu_target__ranges(const struct qemu_target *t, struct collapse_range **out, size_t *nr,
			char *err, size_t errlen)
{
	struct collapse_range *r = calloc(t->nr_blocks ? t->nr_blocks : 1, sizeof(*r));
	size_t n = 0, off = 0;

	*out = NULL;
	*nr = 0;
	if (!r)
		return -ENOMEM;
	err[0] = '\0';
	for (size_t i = 0; i < t->nr_blocks; i++) {
		if (t->blocks[i].collapsible) {
			r[n].start = t->blocks[i].start;
			r[n++].end = t->blocks[i].end;
		} else if (off < errlen) {
			off += (size_t)snprintf(err + off, errlen - off, "%s%s: %s", off ? "; " : "",
						t->blocks[i].dev.id, t->blocks[i].note);
		}
	}
	if (!n) {
		char why[512];

		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "%s has no guest RAM MADV_COLLAPSE can put on 2 MiB pages (%s)",
			 t->label, why);
		free(r);
		return -ENODATA;
	}
	*out = r;
	*nr = n;
	return 0;
}

struct json_object *collapse_result__json(const struct collapse_result *r)
{
	struct json_object *o = json_object_new_object(), *f = json_object_new_object();

	json_object_object_add(o, "regions", json_object_new_uint64(r->regions));
	json_object_object_add(o, "already_huge", json_object_new_uint64(r->already_huge));
	json_object_object_add(o, "unpopulated", json_object_new_uint64(r->unpopulated));
	json_object_object_add(o, "attempted", json_object_new_uint64(r->attempted));
	json_object_object_add(o, "collapsed", json_object_new_uint64(r->collapsed));
	json_object_object_add(o, "failed", json_object_new_uint64(r->failed));
	json_object_object_add(f, "EAGAIN", json_object_new_uint64(r->failed_eagain));
	json_object_object_add(f, "ENOMEM", json_object_new_uint64(r->failed_enomem));
	json_object_object_add(f, "EINVAL", json_object_new_uint64(r->failed_einval));
	json_object_object_add(f, "other", json_object_new_uint64(r->failed_other));
	json_object_object_add(o, "failed_by_reason", f);
	json_object_object_add(o, "huge_after", json_object_new_uint64(r->huge_after));
	json_object_object_add(o, "calls", json_object_new_uint64(r->calls));
	json_object_object_add(o, "seconds", json_object_new_double(r->seconds));
	json_object_object_add(o, "call_seconds", json_object_new_double(r->call_seconds));
	json_object_object_add(o, "call_max_ms", json_object_new_double(r->call_max_ms));
	json_object_object_add(o, "call_p99_ms", json_object_new_double(r->call_p99_ms));
	json_object_object_add(o, "calls_over_budget", json_object_new_uint64(r->calls_over_budget));
	json_object_object_add(o, "sleep_seconds", json_object_new_double(r->sleep_seconds));
	json_object_object_add(o, "chunk_max_regions", json_object_new_uint64(r->chunk_max));
	json_object_object_add(o, "cancelled", json_object_new_boolean(r->cancelled));
	json_object_object_add(o, "pfns_visible", json_object_new_boolean(r->pfns_visible));
	return o;
}
