/* run_result.c: what a VM's run produced, as `run --json`'s machine-readable result and as text. */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "vmm/json.h"
#include "vmm/run.h"

double run__guest_seconds(const struct run_ctx *ctx, uint64_t cycles)
{
	return ctx->vm.tsc_khz ? (double)cycles / ((double)ctx->vm.tsc_khz * 1000.0) : 0.0;
}

static double run__ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static double run__startup_ms(const struct run_ctx *ctx)
{
	uint64_t first = ctx->vm.first_hc_ns;

	return first ? run__ms(first - ctx->t_start_ns) : -1.0;
}

static struct json_object *run__args_json(const struct workload_spec *w)
{
	struct json_object *a = json_object_new_object();
	const struct vmc_workload_args *args = &w->args;

	if (args->passes)
		json_object_object_add(a, "passes", json_object_new_uint64(args->passes));
	if (args->duration_ms)
		json_object_object_add(a, "seconds", json_object_new_double((double)args->duration_ms / 1000.0));
	if (args->updates)
		json_object_object_add(a, w->id == VMC_WL_CHASE ? "accesses" : "updates", json_object_new_uint64(args->updates));
	if (args->ws_bytes)
		json_object_object_add(a, "ws_bytes", json_object_new_uint64(args->ws_bytes));
	if (args->seed)
		json_object_object_add(a, "seed", json_object_new_uint64(args->seed));
	if (args->flags & VMC_WL_FOREVER)
		json_object_object_add(a, "forever", json_object_new_boolean(1));
	if (args->flags & VMC_WL_CHASE_PAGE)
		json_object_object_add(a, "page", json_object_new_boolean(1));
	if (w->id == VMC_WL_FAULT)
		json_object_object_add(a, "fault", json_object_new_string(workload__fault_name(args->fault)));
	return a;
}

static struct json_object *run__layout_json(const struct run_ctx *ctx)
{
	const struct run_options *o = &ctx->opts;
	const struct mm *mm = &ctx->mm;
	struct json_object *l = json_object_new_object();

	json_object_object_add(l, "age", json_object_new_double(o->aging.age));
	json_object_object_add(l, "seed", json_object_new_uint64(o->aging.seed));
	json_object_object_add(l, "ballast", json_object_new_double(o->aging.ballast));
	json_object_object_add(l, "unmovable", json_object_new_double(o->aging.unmovable));
	json_object_object_add(l, "slack_bytes", json_object_new_uint64(mm->cfg.slack_bytes));
	json_object_object_add(l, "pool_backing", json_object_new_string(pool_backing__name(mm->pool.backing)));
	json_object_object_add(l, "pool_note", mm->pool.note[0] ? json_object_new_string(mm->pool.note) : NULL);
	json_object_object_add(l, "mm_startup_ms", json_object_new_double(mm->startup.total_ns / 1e6));
	json_object_object_add(l, "prefault_ms", json_object_new_double(mm->startup.prefault_ns / 1e6));
	json_object_object_add(l, "window_map_ms", json_object_new_double(mm->startup.map_ns / 1e6));
	return l;
}

/* memory.start (layout as placed), memory.before (just before defrag), memory.after (end). */
static struct json_object *run__memory_json(const struct run_ctx *ctx)
{
	struct json_object *m = json_object_new_object();
	json_object_object_add(m, "layout", run__layout_json(ctx));
	json_object_object_add(m, "start", mm_json__stat(&ctx->mem_start, NULL));
	if (ctx->have_before)
		json_object_object_add(m, "before", mm_json__stat(&ctx->mem_before, &ctx->kvm_before));
	json_object_object_add(m, "after", mm_json__stat(&ctx->mem_after, &ctx->kvm_after));
	return m;
}

/* One vCPU's report as `run --json` shows it. */
static struct json_object *run__vcpu_json(const struct run_ctx *ctx, uint32_t i, const struct vmc_hc_report *r,
					  uint64_t nr_reports)
{
	const struct vcpu *v = &ctx->vm.vcpus[i];
	struct json_object *o = json_object_new_object();
	double secs = run__guest_seconds(ctx, r->tsc_cycles);

	json__add(o, "id", json_object_new_int((int)i));
	json__add(o, "exit_status", json_object_new_int((int)v->exit_status));
	json__add(o, "guest_exited", json_object_new_boolean(v->guest_exited));
	json__add_u64(o, "reports", nr_reports);
	json__add(o, "final", json_object_new_boolean(!!(r->flags & VMC_REPORT_FINAL)));
	json__add(o, "stopped", json_object_new_boolean(!!(r->flags & VMC_REPORT_STOPPED)));
	json__add_u64(o, "pages", r->pages);
	json__add_u64(o, "passes", r->passes);
	json__add_u64(o, "errors", r->errors);
	json__add_u64(o, "bad_pages", r->bad_pages);
	json__add_u64(o, "stale_words", r->stale_words);
	json__add_u64(o, "checked_words", r->checked_words);
	json__add_u64(o, "updates", r->updates);
	json__add(o, "updates_per_sec", json_object_new_double(secs > 0 ? (double)r->updates / secs : 0));
	json__add(o, "ns_per_update", json_object_new_double(r->updates ? secs * 1e9 / (double)r->updates : 0));
	json__add_u64(o, "accesses", r->accesses);
	json__add(o, "ns_per_access", json_object_new_double(r->accesses ? secs * 1e9 / (double)r->accesses : 0));
	json__add_u64(o, "bytes", r->bytes);
	json__add(o, "bytes_per_sec", json_object_new_double(secs > 0 ? (double)r->bytes / secs : 0));
	json__add_u64(o, "ws_bytes", r->ws_bytes);
	json__add_u64(o, "tsc_cycles", r->tsc_cycles);
	json__add(o, "seconds", json_object_new_double(secs));
	json__add_u64(o, "exits", v->nr_exits);
	json__add_u64(o, "hypercalls", v->nr_hypercalls);
	if (r->errors) {
		struct json_object *fe = json_object_new_object();

		json__add_u64(fe, "gpa", r->first_err_gpa);
		json__add_u64(fe, "expected", r->first_err_expected);
		json__add_u64(fe, "got", r->first_err_got);
		json__add(o, "first_error", fe);
	}
	return o;
}

/* vcpus[] and totals: what every vCPU reported, and the sums. */
static void run__vcpus_json(const struct run_ctx *ctx, struct json_object *root)
{
	struct json_object *vcpus = json_object_new_array(), *totals = json_object_new_object();
	uint64_t verify_errors = 0, stale = 0, pages = 0, min_passes = UINT64_MAX;
	double gups = 0, stream = 0;

	for (uint32_t i = 0; i < ctx->vm.nr_vcpus; i++) {
		struct vmc_hc_report r;
		uint64_t nr_reports;
		double secs;

		vcpu__get_report(&ctx->vm.vcpus[i], &r, &nr_reports);
		json_object_array_add(vcpus, run__vcpu_json(ctx, i, &r, nr_reports));
		secs = run__guest_seconds(ctx, r.tsc_cycles);
		verify_errors += r.errors;
		stale += r.stale_words;
		pages += r.pages;
		if (r.passes < min_passes)
			min_passes = r.passes;
		if (secs > 0) {
			gups += (double)r.updates / secs;
			stream += (double)r.bytes / secs;
		}
	}
	json__add(root, "vcpus", vcpus);
	json__add_u64(totals, "pages", pages);
	json__add_u64(totals, "verify_errors", verify_errors);
	json__add_u64(totals, "verify_stale_words", stale);
	json__add_u64(totals, "min_passes", min_passes == UINT64_MAX ? 0 : min_passes);
	json__add(totals, "gups_total_updates_per_sec", json_object_new_double(gups));
	json__add(totals, "stream_total_bytes_per_sec", json_object_new_double(stream));
	json__add(root, "totals", totals);
}

static struct json_object *run__workload_json(const struct run_ctx *ctx)
{
	struct json_object *wl = json_object_new_object();

	json__add_str(wl, "name", workload__name(ctx->opts.workload[0].id));
	json__add_str(wl, "spec", ctx->opts.workload_text);
	json__add(wl, "args", run__args_json(&ctx->opts.workload[0]));
	if (ctx->opts.nr_workloads > 1) {
		struct json_object *mix = json_object_new_array();

		for (unsigned i = 0; i < ctx->opts.nr_workloads; i++)
			json_object_array_add(mix, json_object_new_string(ctx->opts.workload[i].spec));
		json__add(wl, "mix", mix);
	}
	return wl;
}

/* --defrag once: what it did, or why it did not run. */
static struct json_object *run__defrag_json(const struct run_ctx *ctx)
{
	struct json_object *d = ctx->defrag_ran ? mm_json__defrag_stats(&ctx->defrag_stats) : json_object_new_object();

	json__add(d, "ran", json_object_new_boolean(ctx->defrag_ran));
	json__add_str(d, "mode", defrag_mode__name(ctx->opts.defrag_req.mode));
	json__add_str(d, "algo", defrag_algo__name(ctx->opts.defrag_req.algo));
	if (ctx->defrag_note[0])
		json__add_str(d, "note", ctx->defrag_note);
	return d;
}

static struct json_object *run__kvm_json(const struct run_ctx *ctx)
{
	struct json_object *kvm = json_object_new_object();

	json__add(kvm, "stats_valid", json_object_new_boolean(ctx->kvm_after.valid));
	json__add_u64(kvm, "pages_4k", ctx->kvm_after.pages_4k);
	json__add_u64(kvm, "pages_2m", ctx->kvm_after.pages_2m);
	json__add_u64(kvm, "pages_1g", ctx->kvm_after.pages_1g);
	json__add(kvm, "coverage_2m", json_object_new_double(kvm_pages__coverage_2m(&ctx->kvm_after)));
	json__add_str(kvm, "promote_path", promote_path__name(ctx->vm.slots.path));
	json__add_str(kvm, "promote_path_why", ctx->vm.slots.why);
	json__add_u64(kvm, "memslot_switches", ctx->vm.slots.switches);
	json__add(kvm, "zap_all_quirk_disabled", json_object_new_boolean(ctx->vm.slots.zap_all_quirk_off));
	return kvm;
}

static struct json_object *run__pause_json(const struct vm *vm)
{
	struct json_object *pause = json_object_new_object();

	/* stop latency (request -> all parked) and held time (request -> resume, as the defrag
	 * result's pause_max_us): two names, never one "max_us" for both */
	json__add_u64(pause, "count", vm->pause.count);
	json__add(pause, "stop_latency_avg_us", json_object_new_double(
		vm->pause.count ? (double)vm->pause.total_ns / (double)vm->pause.count / 1e3 : 0));
	json__add(pause, "stop_latency_max_us", json_object_new_double((double)vm->pause.max_ns / 1e3));
	json__add(pause, "held_max_us", json_object_new_double((double)vm->pause.held_max_ns / 1e3));
	json__add(pause, "held_total_ms", json_object_new_double((double)vm->pause.held_total_ns / 1e6));
	return pause;
}

struct json_object *run__result_json(const struct run_ctx *ctx)
{
	const struct vm *vm = &ctx->vm;
	struct json_object *root = json_object_new_object();

	json__add_str(root, "version", VMC_VERSION);
	json__add(root, "abi_version", json_object_new_int(VMC_ABI_VERSION));
	json__add_u64(root, "mem_bytes", ctx->opts.mem_bytes);
	json__add(root, "cpus", json_object_new_int((int)ctx->opts.cpus));
	json__add(root, "workload", run__workload_json(ctx));
	json__add(root, "exit_status", json_object_new_int(ctx->exit_code));
	json__add(root, "error", vm->failed ? json_object_new_string(vm->fail_msg) : NULL);
	json__add_str(root, "stopped_by", ctx->stop_by_signal ? "signal" : ctx->stop_by_timeout ? "timeout" :
					  ctx->stop_requested ? "stop-request" : "guest");
	json__add(root, "startup_ms", json_object_new_double(run__startup_ms(ctx)));
	json__add_u64(root, "first_hypercall_monotonic_ns", vm->first_hc_ns);
	json__add(root, "wall_ms", json_object_new_double(run__ms(ctx->t_end_ns - ctx->t_start_ns)));
	json__add_u64(root, "tsc_khz", vm->tsc_khz);
	run__vcpus_json(ctx, root);
	json__add(root, "kvm", run__kvm_json(ctx));
	json__add(root, "memory", run__memory_json(ctx));
	json__add(root, "backing_2m", json_object_new_double(ctx->mem_after.backing_2m));
	json__add(root, "backing_2m_achievable", json_object_new_double(ctx->mem_after.backing_2m_achievable));
	if (ctx->opts.defrag == RUN_DEFRAG_ONCE)
		json__add(root, "defrag", run__defrag_json(ctx));
	json__add(root, "pause", run__pause_json(vm));
	return root;
}

static void run__print_memory(const struct run_ctx *ctx)
{
	const struct mm_stat *a = &ctx->mem_after, *b = &ctx->mem_start;
	const struct defrag_stats *d = &ctx->defrag_stats;

	printf("  memory: pool %llu MiB (%s, %llu of %u blocks huge), age %.2f seed %llu, %llu window VMAs\n",
	       (unsigned long long)(a->pool_bytes >> 20), pool_backing__name(a->backing),
	       (unsigned long long)a->huge_blocks, (unsigned)(a->pool_bytes >> 21), ctx->opts.aging.age,
	       (unsigned long long)ctx->opts.aging.seed, (unsigned long long)a->vmas);
	printf("  backing_2m: %.3f at start, %.3f at the end (achievable %.3f); buddyinfo", b->backing_2m,
	       a->backing_2m, a->backing_2m_achievable);
	for (unsigned o = 0; o < MM_MAX_ORDER; o++)
		printf(" %llu", (unsigned long long)a->nr_free[o]);
	printf("\n");
	if (ctx->opts.defrag != RUN_DEFRAG_ONCE)
		return;
	if (!ctx->defrag_ran) {
		printf("  defrag: did not run: %s\n", ctx->defrag_note[0] ? ctx->defrag_note : "no reason recorded");
		return;
	}
	printf("  defrag (%s, %s): %.3f s, %u regions promoted + %u zero-copy, %llu pages copied "
	       "(%.3f per promoted page), %llu steps, pause max %.0f us p99 %.0f us%s%s\n",
	       defrag_mode__name(ctx->opts.defrag_req.mode), defrag_algo__name(ctx->opts.defrag_req.algo),
	       d->wall_ns / 1e9, d->regions_promoted, d->regions_zero_copy, (unsigned long long)d->pages_copied,
	       d->copies_per_promoted_page, (unsigned long long)d->steps, d->pause_max_ns / 1e3,
	       d->pause_p99_ns / 1e3, d->error ? ": " : "", d->error ? d->error_msg : "");
}

void run__print_human(const struct run_ctx *ctx)
{
	const struct vm *vm = &ctx->vm;

	printf("vmcompact: %llu MiB, %u vCPU%s, workload %s: exit %d, start-up %.2f ms, wall %.1f ms%s\n",
	       (unsigned long long)(ctx->opts.mem_bytes >> 20), ctx->opts.cpus, ctx->opts.cpus > 1 ? "s" : "",
	       ctx->opts.workload_text, ctx->exit_code, run__startup_ms(ctx),
	       run__ms(ctx->t_end_ns - ctx->t_start_ns),
	       ctx->stop_by_signal ? " (stopped by signal)" : ctx->stop_by_timeout ? " (stopped by timeout)" : "");
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vmc_hc_report r;
		double secs;

		vcpu__get_report(&vm->vcpus[i], &r, NULL);
		secs = run__guest_seconds(ctx, r.tsc_cycles);
		printf("  vcpu %u: %llu pages, %llu passes, %.3f s", i, (unsigned long long)r.pages,
		       (unsigned long long)r.passes, secs);
		if (r.workload == VMC_WL_VERIFY)
			printf(", %llu words checked, %llu errors (%llu stale)", (unsigned long long)r.checked_words,
			       (unsigned long long)r.errors, (unsigned long long)r.stale_words);
		if (r.updates && secs > 0)
			printf(", %llu updates: %.1f M updates/s, %.2f ns/update", (unsigned long long)r.updates,
			       (double)r.updates / secs / 1e6, secs * 1e9 / (double)r.updates);
		if (r.accesses && secs > 0)
			printf(", %llu accesses: %.2f ns/access", (unsigned long long)r.accesses,
			       secs * 1e9 / (double)r.accesses);
		if (r.bytes && secs > 0)
			printf(", %.2f GB/s", (double)r.bytes / secs / 1e9);
		printf("\n");
	}
	if (ctx->kvm_after.valid)
		printf("  kvm: pages_4k %llu, pages_2m %llu, pages_1g %llu\n",
		       (unsigned long long)ctx->kvm_after.pages_4k, (unsigned long long)ctx->kvm_after.pages_2m,
		       (unsigned long long)ctx->kvm_after.pages_1g);
	printf("  promote path: %s (%s), %llu memslot switches\n", promote_path__name(vm->slots.path), vm->slots.why,
	       (unsigned long long)vm->slots.switches);
	if (vm->pause.count)
		printf("  pauses: %llu, stopping the vCPUs took avg %.1f us, max %.1f us; held stopped max %.1f us\n",
		       (unsigned long long)vm->pause.count, (double)vm->pause.total_ns / (double)vm->pause.count / 1e3,
		       (double)vm->pause.max_ns / 1e3, (double)vm->pause.held_max_ns / 1e3);
	run__print_memory(ctx);
}
