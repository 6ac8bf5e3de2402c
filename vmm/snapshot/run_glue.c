/* run_glue.c: `run --restore [--lazy] [--restore-layout]` and the control plane's `snapshot` for a VM run by vmm/run.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#include <json-c/json.h>

#include "mm/util.h"
#include "vmm/snapshot/kvm_state.h"
#include "vmm/snapshot/lazy.h"
#include "vmm/snapshot/run_glue.h"

struct restore_state {
	struct snap_file f;
	struct snap_restore_stats rs;
	struct snap_lazy lazy;
	bool lazy_started;
	pthread_t finisher;
	bool finisher_started;
};

int snapshot__check_restore(const char *path, bool use_layout, char *err, size_t errlen)
{
	struct snap_file f;
	int ret = snap_file__open(&f, path, 1, err, errlen);

	if (ret)
		return ret;
	if (!(f.h.flags & SNAP_F_VCPUS) || !f.h.nr_vcpus) {
		snprintf(err, errlen, "snapshot: %s holds guest memory only, no vCPU state (an mm-level snapshot)", path);
		ret = -EINVAL;
	} else if (f.h.nr_vcpus > VMC_MAX_VCPUS || f.h.guest_bytes < VMC_MIN_RAM || f.h.guest_bytes > VMC_MAX_RAM) {
		snprintf(err, errlen, "snapshot: %u vCPUs / %" PRIu64 " MiB is outside what `run` accepts",
			 f.h.nr_vcpus, f.h.guest_bytes >> 20);
		ret = -EINVAL;
	} else if (use_layout && !f.has_layout) {
		snprintf(err, errlen, "snapshot: --restore-layout, but %s was saved without its layout", path);
		ret = -EINVAL;
	}
	snap_file__close(&f);
	return ret;
}

static int glue__prepare(struct run_ctx *ctx, struct mm_config *cfg, char *err, size_t errlen)
{
	struct restore_state *st = calloc(1, sizeof(*st));
	struct mm_config c;
	int ret;

	if (!st)
		return -ENOMEM;
	ret = snap_file__open(&st->f, ctx->opts.restore_path, 0, err, errlen);
	if (ret) {
		free(st);
		return ret;
	}
	ctx->restore = st; /* from here on, release() cleans up */
	if (!(st->f.h.flags & SNAP_F_VCPUS) || !st->f.h.nr_vcpus || st->f.h.nr_vcpus > VMC_MAX_VCPUS) {
		snprintf(err, errlen, "snapshot: %s holds no usable vCPU state", ctx->opts.restore_path);
		return -EINVAL;
	}
	ret = snap_file__mm_config(&st->f, ctx->opts.restore_layout, &c, err, errlen);
	if (ret)
		return ret;
	cfg->guest_bytes = c.guest_bytes;
	cfg->slack_bytes = c.slack_bytes;
	cfg->aging = c.aging;
	cfg->layout = c.layout;
	cfg->borrow_capacity_bytes = c.guest_bytes;
	/* eager: the restore faults the pool in while the records are read; lazy: nothing in the page
	 * cache, so that every first touch is a userfault */
	cfg->prefault = false;
	cfg->prefault_async = false;
	ctx->opts.mem_bytes = c.guest_bytes;
	ctx->opts.cpus = st->f.h.nr_vcpus;
	snprintf(ctx->opts.workload_text, sizeof(ctx->opts.workload_text), "restored from %s", ctx->opts.restore_path);
	return 0;
}

/* --lazy: wait until everything is resident; a bad record fails the VM. */
static void *glue__lazy_finisher(void *opaque)
{
	struct run_ctx *ctx = opaque;
	struct restore_state *st = ctx->restore;
	int ret = snap_lazy__wait(&st->lazy);

	if (ret && ctx->vm_created)
		vm__fail(&ctx->vm, "%s", st->lazy.err);
	else if (ret)
		fprintf(stderr, "vmcompact: %s\n", st->lazy.err);
	else if (!ctx->opts.json)
		fprintf(stderr, "vmcompact: lazy restore: all %" PRIu64 " MiB resident after %.1f ms (%" PRIu64
			" faults, %" PRIu64 " regions on demand); %" PRIu64 " blocks collapsed into huge pages in %.1f ms"
			"%s%s\n", ctx->opts.mem_bytes >> 20, st->lazy.st.resident_ns / 1e6, st->lazy.st.faults,
			st->lazy.st.regions_by_fault, st->lazy.st.regions_collapsed, st->lazy.st.collapse_ns / 1e6,
			st->lazy.st.collapse_failed ? ", refused: " : "",
			st->lazy.st.collapse_failed ? strerror(st->lazy.st.collapse_errno) : "");
	return NULL;
}

static int glue__load_memory(struct run_ctx *ctx, char *err, size_t errlen)
{
	struct restore_state *st = ctx->restore;
	int ret;

	if (!ctx->opts.restore_lazy)
		return snap_file__restore(&st->f, &ctx->mm, &st->rs, err, errlen);
	ret = snap_lazy__start(&st->lazy, &st->f, &ctx->mm, err, errlen);
	if (ret)
		return ret;
	st->lazy_started = true;
	ret = pthread_create(&st->finisher, NULL, glue__lazy_finisher, ctx);
	if (ret) {
		snprintf(err, errlen, "snapshot: --lazy: cannot start a thread: %s", strerror(ret));
		return -ret;
	}
	st->finisher_started = true;
	return 0;
}

static int glue__load_vcpus(struct run_ctx *ctx, char *err, size_t errlen)
{
	struct restore_state *st = ctx->restore;

	if (ctx->vm.nr_vcpus != st->f.h.nr_vcpus) {
		snprintf(err, errlen, "snapshot: the VM has %u vCPUs, the snapshot %u", ctx->vm.nr_vcpus, st->f.h.nr_vcpus);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < ctx->vm.nr_vcpus; i++) {
		int ret = snap_vcpu__load(ctx->vm.vcpus[i].fd, &st->f.vcpus[i], err, errlen);

		if (ret)
			return ret;
	}
	return 0;
}

static void glue__release(struct run_ctx *ctx)
{
	struct restore_state *st = ctx->restore;

	if (!st)
		return;
	if (st->finisher_started)
		pthread_join(st->finisher, NULL);
	if (st->lazy_started)
		snap_lazy__stop(&st->lazy);
	snap_file__close(&st->f);
	free(st);
	ctx->restore = NULL;
}

/* --live: memory written while the guest runs, under KVM's dirty log. */
static int glue__live_pass(struct run_ctx *ctx, struct snap_writer *w, char *err, size_t errlen)
{
	int ret = memslots__set_flags(&ctx->vm.slots, ctx->vm.memslot_flags | KVM_MEM_LOG_DIRTY_PAGES, err, errlen);

	if (!ret)
		ret = snap_writer__write_regions(w, NULL, err, errlen);
	return ret;
}

/* Paused: the regions the dirty log names again, then dirty logging off. */
static int glue__live_rewrite(struct run_ctx *ctx, struct snap_writer *w, char *err, size_t errlen)
{
	uint32_t nr_regions = w->h.nr_regions;
	uint64_t *bitmap = calloc((size_t)nr_regions * (SNAP_PAGES_PER_REGION / 64), sizeof(uint64_t));
	uint8_t *sel = calloc(nr_regions, 1);
	int ret = bitmap && sel ? 0 : -ENOMEM;

	if (ret)
		snprintf(err, errlen, "snapshot: out of memory for the dirty log");
	if (!ret)
		ret = memslots__get_dirty(&ctx->vm.slots, bitmap, err, errlen);
	if (!ret) {
		snap_dirty__regions(bitmap, nr_regions, sel);
		/* KVM logs the guest's writes only; the VMM writes hypercall results, reports and the
		 * boot info into the agent's memory below the workload: always rewrite that. */
		for (uint64_t gpa = 0; gpa < VMC_GPA_WORKLOAD && gpa < ctx->vm.ram_bytes; gpa += SNAP_REGION_SIZE)
			sel[gpa / SNAP_REGION_SIZE] = 1;
		ret = snap_writer__write_regions(w, sel, err, errlen);
	}
	free(bitmap);
	free(sel);
	return ret;
}

static struct json_object *glue__result(const struct snap_writer *w, const char *path, bool live, uint64_t pause_ns)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "file", json_object_new_string(path));
	json_object_object_add(o, "live", json_object_new_boolean(live));
	json_object_object_add(o, "layout", json_object_new_boolean(w->h.flags & SNAP_F_LAYOUT));
	json_object_object_add(o, "present_pages", json_object_new_uint64(w->st.present_pages));
	json_object_object_add(o, "file_bytes", json_object_new_uint64(w->st.file_bytes));
	json_object_object_add(o, "data_bytes", json_object_new_uint64(w->st.data_bytes));
	json_object_object_add(o, "regions_rewritten", json_object_new_uint64(w->st.regions_rewritten));
	json_object_object_add(o, "pause_ms", json_object_new_double(pause_ns / 1e6));
	json_object_object_add(o, "total_ms", json_object_new_double(w->st.total_ns / 1e6));
	json_object_object_add(o, "io", json_object_new_string(w->st.io_note));
	return o;
}

/* Lock order as the defrag engine's: mm->lock, then pause (pauses nest). */
static int glue__save(struct run_ctx *ctx, const char *path, bool live, bool layout, struct json_object **result,
		      char *err, size_t errlen)
{
	struct snap_vcpu *vcpus = calloc(ctx->vm.nr_vcpus, sizeof(*vcpus));
	struct snap_writer w;
	uint64_t t_pause = 0, pause_ns = 0;
	bool paused = false;
	int ret;

	if (!vcpus)
		return -ENOMEM;
	pthread_mutex_lock(&ctx->mm.lock);
	ret = snap_writer__open(&w, &ctx->mm, path, 0, layout, err, errlen);
	if (!ret && live)
		ret = glue__live_pass(ctx, &w, err, errlen);
	if (!ret) {
		t_pause = mm__now_ns();
		vm__pause(&ctx->vm);
		paused = true;
		ret = live ? glue__live_rewrite(ctx, &w, err, errlen) : snap_writer__write_regions(&w, NULL, err, errlen);
	}
	for (uint32_t i = 0; !ret && i < ctx->vm.nr_vcpus; i++)
		ret = snap_vcpu__save(ctx->vm.vcpus[i].fd, i, &vcpus[i], err, errlen);
	if (!ret)
		ret = snap_writer__finish(&w, vcpus, ctx->vm.nr_vcpus, live ? SNAP_F_LIVE : 0, err, errlen);
	if (paused) {
		vm__resume(&ctx->vm);
		pause_ns = mm__now_ns() - t_pause;
	}
	if (live) /* dirty logging off again, whatever happened */
		memslots__set_flags(&ctx->vm.slots, ctx->vm.memslot_flags, NULL, 0);
	pthread_mutex_unlock(&ctx->mm.lock);
	if (!ret)
		*result = glue__result(&w, path, live, pause_ns);
	snap_writer__close(&w, !ret);
	free(vcpus);
	return ret;
}

const struct run_snapshot_ops snapshot_run_ops = {
	.prepare = glue__prepare,
	.load_memory = glue__load_memory,
	.load_vcpus = glue__load_vcpus,
	.release = glue__release,
	.save = glue__save,
};
