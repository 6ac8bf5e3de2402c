/* defrag.c: mm__defrag(), the one entry point: runs a request's mode with the chosen algorithm on the engine. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/internal.h"

static const char *const defrag_mode_names[DEFRAG_MODE_COUNT] = {
	[DEFRAG_COMPACT] = "compact",
	[DEFRAG_COLLAPSE] = "collapse",
	[DEFRAG_FULL] = "full",
};
static const char *const defrag_algo_names[DEFRAG_ALGO_COUNT] = {
	[DEFRAG_ALGO_LINUX] = "linux",
	[DEFRAG_ALGO_PLANNED] = "planned",
};

const char *defrag_mode__name(enum defrag_mode m)
{
	return (unsigned)m < DEFRAG_MODE_COUNT ? defrag_mode_names[m] : "?";
}

const char *defrag_algo__name(enum defrag_algo a)
{
	return (unsigned)a < DEFRAG_ALGO_COUNT ? defrag_algo_names[a] : "?";
}

static int name__find(const char *const *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (name && !strcmp(names[i], name))
			return i;
	return -1;
}

int defrag_borrow__parse(const char *s, uint64_t *bytes)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	if (!strcmp(s, "auto")) {
		*bytes = DEFRAG_BORROW_AUTO;
		return 0;
	}
	if (!strcmp(s, "off")) {
		*bytes = DEFRAG_BORROW_OFF;
		return 0;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || errno || s[0] == '-')
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': mult = 1ull << 10; end++; break;
	case 'm': case 'M': mult = 1ull << 20; end++; break;
	case 'g': case 'G': mult = 1ull << 30; end++; break;
	default: break;
	}
	if (*end || !v || v > (64ull << 30) / mult)
		return -EINVAL;
	*bytes = v * mult;
	return 0;
}

const char *defrag_borrow__name(uint64_t bytes, char *buf, size_t len)
{
	if (bytes == DEFRAG_BORROW_AUTO)
		return "auto";
	if (bytes == DEFRAG_BORROW_OFF)
		return "off";
	snprintf(buf, len, "%lluM", (unsigned long long)(bytes >> 20));
	return buf;
}

int defrag_mode__parse(const char *name)
{
	return name__find(defrag_mode_names, DEFRAG_MODE_COUNT, name);
}

int defrag_algo__parse(const char *name)
{
	return name__find(defrag_algo_names, DEFRAG_ALGO_COUNT, name);
}

void defrag_request__init(struct defrag_request *req)
{
	memset(req, 0, sizeof(*req));
	req->mode = DEFRAG_FULL;
	req->algo = DEFRAG_ALGO_PLANNED;
	req->order = -1;
	req->max_pause_ns = DEFRAG_MAX_PAUSE_NS_DEFAULT;
	req->extfrag_threshold = EXTFRAG_THRESHOLD_DEFAULT;
	req->borrow_bytes = DEFRAG_BORROW_AUTO;
}

/*
 * Progress in one unit for every mode and algorithm: guest regions' worth of the work. Each
 * phase reports in its own unit (frames scanned, chunks, regions, pages placed); phase i of n
 * maps onto [i*R, (i+1)*R] of n*R, R the guest's 2 MiB regions.
 */
struct progress_map {
	void (*fn)(void *ctx, uint64_t done, uint64_t total);
	void *ctx;
	uint64_t regions, last;
	unsigned phase, phases;
};

static void progress_map__report(void *opaque, uint64_t done, uint64_t total)
{
	struct progress_map *m = opaque;
	uint64_t d = total ? m->regions * (done < total ? done : total) / total : 0;

	/* a scanner may step back a little (Linux's free scanner restarts in a block): never report less */
	d += m->phase * m->regions;
	if (d < m->last)
		d = m->last;
	m->last = d;
	m->fn(m->ctx, d, m->phases * m->regions);
}

int mm__defrag(struct mm *mm, const struct defrag_request *req_in, const struct mm_step_ops *ops,
	       struct defrag_stats *st)
{
	struct progress_map pm = { req_in->progress, req_in->progress_ctx, mm->map.nr_regions, 0, 0, 1 };
	struct defrag_request mapped = *req_in, *req = &mapped;
	struct defrag_engine e;
	enum compact_result cres = COMPACT_SKIPPED;
	uint32_t lazy = 0;
	int ret;

	/* Free frames must be faulted in (host THPs allocated) before anything is copied there. */
	ret = mm__wait_ready(mm);
	if (ret) {
		memset(st, 0, sizeof(*st));
		st->error = ret;
		snprintf(st->error_msg, sizeof(st->error_msg), "prefault failed: %.100s",
			 mm->prefault_err);
		return ret;
	}
	if (!mm->cfg.prefault) {
		/* Never prefaulted: learn which blocks are huge now, fault the free ones in as huge. */
		pthread_mutex_lock(&mm->lock);
		lazy = mm__fault_in_free_blocks(mm);
		pthread_mutex_unlock(&mm->lock);
	}
	if (req->progress) {
		mapped.progress = progress_map__report;
		mapped.progress_ctx = &pm;
		pm.phases = req->mode == DEFRAG_FULL && req->algo == DEFRAG_ALGO_LINUX ? 2 : 1;
	}
	ret = defrag_engine__init(&e, mm, req, ops, st);
	st->blocks_faulted_lazily = lazy;
	if (ret)
		goto out;
	trace_defrag_begin(mm, defrag_mode__name(req->mode), defrag_algo__name(req->algo), req->order);

	if (req->mode > DEFRAG_FULL || req->algo > DEFRAG_ALGO_PLANNED) {
		defrag__set_error(&e, -EINVAL, "defrag: unknown mode %d or algorithm %d", req->mode, req->algo);
		ret = -EINVAL;
		goto out;
	}
	switch (req->mode) {
	case DEFRAG_COMPACT:
		if (req->algo == DEFRAG_ALGO_LINUX)
			cres = defrag__compact(&e, req->order, req->order >= 0);
		else
			cres = plan__compact(&e, req->order);
		ret = cres == COMPACT_ABORTED ? (st->error ? st->error : -ECANCELED) : 0;
		break;
	case DEFRAG_COLLAPSE:
		ret = req->algo == DEFRAG_ALGO_LINUX ? collapse__linux(&e) : plan__collapse(&e);
		break;
	case DEFRAG_FULL:
		if (req->algo == DEFRAG_ALGO_LINUX) {
			cres = defrag__compact(&e, -1, false);
			ret = cres == COMPACT_ABORTED ? (st->error ? st->error : -ECANCELED) : 0;
			pm.phase = 1;
			if (!ret)
				ret = collapse__linux(&e);
		} else {
			/* The plan puts every page straight into its final block: no compaction first. */
			ret = plan__collapse(&e);
		}
		break;
	}
	st->compact_result = cres;
	if (ret == -ECANCELED && !st->error)
		defrag__set_error(&e, ret, "cancelled");
out:
	defrag_engine__exit(&e);
	trace_defrag_end(mm, ret, st->wall_ns, st->steps, st->pages_copied, st->regions_backed_2m);
	return ret;
}
