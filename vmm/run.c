/* run.c: one VM's life: guest RAM from the frame pool, the KVM VM and its vCPUs, its defrag job and defragd. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vmm/loader.h"
#include "vmm/run.h"
#include "vmm/util.h"

void run__default_options(struct run_options *o)
{
	char err[64];

	memset(o, 0, sizeof(*o));
	o->mem_bytes = RUN_DEFAULT_MEM;
	o->cpus = 1;
	o->stop_grace_ms = RUN_DEFAULT_STOP_GRACE_S * 1000ull;
	workload__parse("verify", &o->workload[0], err, sizeof(err));
	o->nr_workloads = 1;
	snprintf(o->workload_text, sizeof(o->workload_text), "verify");
	o->slack_pct = RUN_DEFAULT_SLACK_PCT;
	o->aging = (struct aging_config)AGING_DEFAULTS;
	o->defrag_after_ms = RUN_DEFAULT_DEFRAG_AFTER_S * 1000ull;
	defrag_request__init(&o->defrag_req);
	o->proactiveness = DEFRAGD_DEFAULT_PROACTIVENESS;
	o->defrag_max_mbps = -1;
	o->promote_path = PROMOTE_PATH_AUTO;
}





uint64_t run__slack_bytes(const struct run_options *o)
{
	uint64_t b = o->slack_pct >= 0.0 ? (uint64_t)((double)o->mem_bytes * o->slack_pct / 100.0) : o->slack_bytes;

	return (b + VMC_HUGE_SIZE - 1) & ~(VMC_HUGE_SIZE - 1);
}


int run__find_agent(char *path, size_t len, char *err, size_t errlen)
{
	static const char *const rel[] = { RUN_AGENT_NAME, "../guest-agent/" RUN_AGENT_NAME,
					    "../libexec/vmcompact/" RUN_AGENT_NAME };
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0) {
		snprintf(err, errlen, "readlink /proc/self/exe: %s", strerror(errno));
		return -errno;
	}
	exe[n] = 0;
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		char dir[PATH_MAX];

		memcpy(dir, exe, (size_t)n + 1);
		if ((size_t)snprintf(path, len, "%s/%s", dirname(dir), rel[i]) >= len)
			continue;
		if (access(path, R_OK) == 0)
			return 0;
	}
	snprintf(err, errlen, "guest agent %s not found next to %s (use --agent PATH)", RUN_AGENT_NAME, exe);
	return -ENOENT;
}

/* Guest RAM: the mm/ frame pool, seen by the guest through the window (host VA of GPA 0). */
static int run__setup_ram(struct run_ctx *ctx, char *err, size_t errlen)
{
	struct mm_config cfg = {
		.guest_bytes = ctx->opts.mem_bytes,
		.slack_bytes = run__slack_bytes(&ctx->opts),
		.pool_path = ctx->opts.pool_path,
		.prefault = !ctx->opts.no_prefault,
		.prefault_async = true, /* the guest starts while the pool is faulted in */
		.force_mem = ctx->opts.force_mem,
		/* defrag may borrow up to the guest's size in 2 MiB blocks (bounded by MemAvailable) */
		.borrow_capacity_bytes = ctx->opts.mem_bytes,
		.aging = ctx->opts.aging,
	};
	const struct run_snapshot_ops *snap = ctx->opts.restore_path ? ctx->opts.snapshot_ops : NULL;
	int rc;

	if (ctx->opts.restore_path && !snap) {
		snprintf(err, errlen, "--restore: this program was built without snapshot support");
		return -ENOTSUP;
	}
	rc = snap ? snap->prepare(ctx, &cfg, err, errlen) : 0;
	if (rc)
		return rc;
	rc = mm__create(&ctx->mm, &cfg, err, errlen);
	if (rc)
		return rc;
	ctx->mm_created = true;
	ctx->ram = ctx->mm.win.base;
	if (ctx->opts.trace_path) {
		rc = mm_trace__open(&ctx->trace, ctx->opts.trace_path, err, errlen);
		if (rc)
			return rc;
		ctx->mm.trace = &ctx->trace;
	}
	rc = snap ? snap->load_memory(ctx, err, errlen) : 0;
	if (rc)
		return rc;
	if (ctx->mm.pool.backing == POOL_BACKING_4K && ctx->mm.pool.note[0])
		fprintf(stderr, "vmcompact: warning: guest RAM has no 2 MiB host pages: %s\n", ctx->mm.pool.note);
	return 0;
}

static void run__teardown_ram(struct run_ctx *ctx)
{
	if (ctx->mm_created)
		mm__destroy(&ctx->mm);
	if (mm_trace__close(&ctx->trace))
		fprintf(stderr, "vmcompact: writing the trace file %s failed\n", ctx->opts.trace_path);
	ctx->mm_created = false;
	ctx->ram = NULL;
}


/* The defrag engine stops the world around each step: every vCPU parked and blocked. */
static int run__step_pause(void *opaque)
{
	struct run_ctx *ctx = opaque;

	vm__pause(&ctx->vm);
	return 0;
}

static void run__step_resume(void *opaque)
{
	struct run_ctx *ctx = opaque;

	vm__resume(&ctx->vm);
}

void run__step_ops(struct run_ctx *ctx, struct mm_step_ops *ops)
{
	ops->pause = run__step_pause;
	ops->resume = run__step_resume;
	ops->ctx = ctx;
}

/* Sleep up to ms, returning early (false) once every vCPU has ended. */
static bool run__sleep_while_running(struct run_ctx *ctx, uint64_t ms)
{
	uint64_t until = util__now_ns() + ms * 1000000ull;

	while (util__now_ns() < until) {
		if (vm__all_exited(&ctx->vm) || ctx->defrag_cancel)
			return false;
		usleep(10000);
	}
	return !vm__all_exited(&ctx->vm);
}

/* --defrag once: after the warm-up, one defrag request while the guest keeps running. */
static void *run__defrag_thread(void *opaque)
{
	struct run_ctx *ctx = opaque;
	struct defrag_request req = ctx->opts.defrag_req;
	struct defrag_job_info info;
	uint64_t id;
	char err[256];

	if (!run__sleep_while_running(ctx, ctx->opts.defrag_after_ms)) {
		snprintf(ctx->defrag_note, sizeof(ctx->defrag_note),
			 "the guest ended before the %llu ms warm-up was over; no defrag ran",
			 (unsigned long long)ctx->opts.defrag_after_ms);
		return NULL;
	}
	mm__stat(&ctx->mm, &ctx->mem_before);
	kvm_stats__read(&ctx->vm, &ctx->kvm_before);
	ctx->have_before = true;
	/* Through the VM's job runner: never at the same time as defragd or a `defrag` command. */
	ctx->defrag_rc = defrag_job__start(&ctx->host.job, &req, DEFRAG_ORIGIN_MANUAL, &id, NULL,
					   err, sizeof(err));
	if (ctx->defrag_rc) {
		snprintf(ctx->defrag_note, sizeof(ctx->defrag_note), "%s", err);
		return NULL;
	}
	while (!defrag_job__wait_timeout(&ctx->host.job, id, 50, &info))
		if (ctx->defrag_cancel)
			defrag_job__cancel_id(&ctx->host.job, id);
	ctx->defrag_stats = info.stats;
	ctx->defrag_rc = info.error;
	ctx->defrag_ran = true;
	if (ctx->defrag_rc && !ctx->opts.json)
		fprintf(stderr, "vmcompact: defrag: %s\n", ctx->defrag_stats.error_msg[0] ?
			ctx->defrag_stats.error_msg : strerror(-ctx->defrag_rc));
	return NULL;
}

void run__stop(struct run_ctx *ctx, uint64_t now, uint64_t *force_at)
{
	if (!ctx->stop_requested) {
		ctx->stop_requested = true;
		/* The stop flag lives in guest RAM: never write it while the engine moves that page. */
		pthread_mutex_lock(&ctx->mm.lock);
		vm__request_stop(&ctx->vm);
		pthread_mutex_unlock(&ctx->mm.lock);
		*force_at = now + ctx->opts.stop_grace_ms * 1000000ull;
	}
}











static const char *run__host_status(void *opaque)
{
	struct run_ctx *ctx = opaque;

	if (vm__all_exited(&ctx->vm) || ctx->stop_requested)
		return "shutdown";
	return ctx->vm.pause_depth ? "paused" : "running";
}

static int run__host_kvm_stats(void *opaque, struct kvm_pages *out)
{
	struct run_ctx *ctx = opaque;

	if (kvm_stats__read(&ctx->vm, out) || !out->valid)
		return -ENOENT;
	return 0;
}

static void run__host_request_stop(void *opaque)
{
	struct run_ctx *ctx = opaque;
	uint64_t one = 1;

	if (write(ctx->stop_efd, &one, sizeof(one)) < 0)
		fprintf(stderr, "vmcompact: stop request lost: %s\n", strerror(errno));
}

/* query-status gets the guest's own view: workload and what the vCPUs reported so far. */
static void run__host_add_status(void *opaque, struct json_object *o)
{
	struct run_ctx *ctx = opaque;
	uint64_t errors = 0, passes = UINT64_MAX, updates = 0, accesses = 0;
	double gups_seconds = 0, chase_seconds = 0;

	for (uint32_t i = 0; i < ctx->vm.nr_vcpus; i++) {
		struct vmc_hc_report r;

		vcpu__get_report(&ctx->vm.vcpus[i], &r, NULL);
		errors += r.errors;
		if (r.workload == VMC_WL_GUPS) {
			updates += r.updates;
			gups_seconds += run__guest_seconds(ctx, r.tsc_cycles);
		} else if (r.workload == VMC_WL_CHASE) {
			accesses += r.accesses;
			chase_seconds += run__guest_seconds(ctx, r.tsc_cycles);
		} else if (r.passes < passes) {
			passes = r.passes;
		}
	}
	json_object_object_add(o, "workload", json_object_new_string(ctx->opts.workload_text));
	json_object_object_add(o, "verify_errors", json_object_new_uint64(errors));
	json_object_object_add(o, "min_passes", json_object_new_uint64(passes == UINT64_MAX ? 0 : passes));
	json_object_object_add(o, "gups_updates", json_object_new_uint64(updates));
	json_object_object_add(o, "gups_seconds", json_object_new_double(gups_seconds));
	json_object_object_add(o, "chase_accesses", json_object_new_uint64(accesses));
	json_object_object_add(o, "chase_seconds", json_object_new_double(chase_seconds));
	if (vm__all_exited(&ctx->vm)) {
		/* the final word, in the SHUTDOWN event `vmcompact stop` waits for */
		int code = vm__exit_code(&ctx->vm);

		json_object_object_add(o, "exit_status", json_object_new_int(code));
		json_object_object_add(o, "forced", json_object_new_boolean(code == VMC_EXIT_FORCED));
	}
}



static int run__host_snapshot(void *opaque, const char *path, bool live, bool layout, struct json_object **result,
			      char *err, size_t errlen)
{
	struct run_ctx *ctx = opaque;

	return ctx->opts.snapshot_ops->save(ctx, path, live, layout, result, err, errlen);
}

/* The host the control plane and defragd see; its defrag job and defragd start here. */
static int run__start_host(struct run_ctx *ctx, char *err, size_t errlen)
{
	static const struct defragd_policy defaults = DEFRAGD_POLICY_DEFAULTS;
	struct defragd_policy p = defaults;

	ctx->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctx->stop_efd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -errno;
	}
	run__step_ops(ctx, &ctx->step_ops);
	ctx->host.ctx = ctx;
	ctx->host.name = NULL;
	ctx->host.mm = &ctx->mm;
	ctx->host.step_ops = &ctx->step_ops;
	ctx->host.nr_vcpus = ctx->opts.cpus;
	ctx->host.status = run__host_status;
	ctx->host.kvm_stats = run__host_kvm_stats;
	ctx->host.request_stop = run__host_request_stop;
	ctx->host.add_status = run__host_add_status;
	ctx->host.snapshot = ctx->opts.snapshot_ops ? run__host_snapshot : NULL;
	p.enabled = ctx->opts.defrag == RUN_DEFRAG_AUTO;
	p.proactiveness = (unsigned)ctx->opts.proactiveness;
	p.max_pause_us = (uint32_t)(ctx->opts.defrag_req.max_pause_ns / 1000);
	if (ctx->opts.defrag_max_mbps >= 0)
		p.max_mbps = (uint32_t)ctx->opts.defrag_max_mbps;
	return vmm_host__start_defrag(&ctx->host, &p, err, errlen);
}

static int run__start_guest(struct run_ctx *ctx, char *err, size_t errlen)
{
	struct vm_config cfg = { 0 };
	struct vm_workload wls[RUN_MAX_WORKLOADS];
	int rc;

	cfg.ram = ctx->ram;
	cfg.ram_bytes = ctx->opts.mem_bytes;
	cfg.nr_vcpus = ctx->opts.cpus;
	cfg.console = ctx->opts.json ? stderr : stdout;
	/* A lazy restore fills memory through userfaultfd on the window: the guest must see it there. */
	cfg.promote_path = ctx->opts.restore_lazy ? PROMOTE_PATH_REMAP : ctx->opts.promote_path;
	cfg.keep_zap_quirk = ctx->opts.keep_zap_quirk;
	rc = vm__create(&ctx->vm, &cfg, err, errlen);
	if (rc)
		return rc < 0 ? rc : -EIO;
	ctx->vm_created = true;
	if (ctx->vm.slots.path == PROMOTE_PATH_MEMSLOT) {
		rc = mm__view_attach(&ctx->mm, &ctx->vm.slots.view, err, errlen);
		if (rc)
			return rc;
	}
	for (unsigned i = 0; i < ctx->opts.nr_workloads; i++)
		wls[i] = (struct vm_workload){ ctx->opts.workload[i].id, ctx->opts.workload[i].args };
	rc = ctx->opts.restore_path ? ctx->opts.snapshot_ops->load_vcpus(ctx, err, errlen) :
	     vm__setup_guest(&ctx->vm, ctx->elf, ctx->elf_len, wls, ctx->opts.nr_workloads, err, errlen);
	if (rc)
		return rc < 0 ? rc : -EINVAL;
	rc = vm__start(&ctx->vm, err, errlen);
	return rc ? (rc < 0 ? rc : -EIO) : 0;
}

int run__boot(struct run_ctx *ctx, char *err, size_t errlen)
{
	int rc;

	ctx->stop_efd = -1;
	if (ctx->opts.agent_path)
		snprintf(ctx->agent_path, sizeof(ctx->agent_path), "%s", ctx->opts.agent_path);
	else if ((rc = run__find_agent(ctx->agent_path, sizeof(ctx->agent_path), err, errlen)))
		return rc;
	rc = loader__read_file(ctx->agent_path, &ctx->elf, &ctx->elf_len, err, errlen);
	if (rc)
		return rc < 0 ? rc : -EINVAL;
	rc = run__setup_ram(ctx, err, errlen);
	if (rc)
		return rc;
	rc = run__start_guest(ctx, err, errlen);
	if (rc)
		return rc;
	rc = run__start_host(ctx, err, errlen);
	if (rc)
		return rc;
	/* The layout as placed, once the pool's huge blocks are known (the guest already runs). */
	rc = mm__wait_ready(&ctx->mm);
	if (rc) {
		snprintf(err, errlen, "%s", ctx->mm.prefault_err);
		return rc;
	}
	mm__stat(&ctx->mm, &ctx->mem_start);
	if (ctx->opts.defrag == RUN_DEFRAG_ONCE) {
		rc = pthread_create(&ctx->defrag_thread, NULL, run__defrag_thread, ctx);
		if (rc)
			fprintf(stderr, "vmcompact: warning: cannot start the defrag thread: %s\n", strerror(rc));
		ctx->defrag_thread_started = !rc;
	}
	return 0;
}

void run__request_stop(struct run_ctx *ctx)
{
	uint64_t unused;

	run__stop(ctx, util__now_ns(), &unused);
}

bool run__wait_exited(struct run_ctx *ctx, uint64_t timeout_ms)
{
	uint64_t until = util__now_ns() + timeout_ms * 1000000ull;

	while (!vm__all_exited(&ctx->vm)) {
		if (util__now_ns() >= until)
			return false;
		usleep(2000);
	}
	return true;
}

void run__collect(struct run_ctx *ctx)
{
	ctx->t_end_ns = util__now_ns();
	if (ctx->defrag_thread_started) {
		ctx->defrag_cancel = 1;
		pthread_join(ctx->defrag_thread, NULL);
		ctx->defrag_thread_started = false;
	}
	vmm_host__cancel_defrag(&ctx->host);
	kvm_stats__read(&ctx->vm, &ctx->kvm_after);
	mm__stat(&ctx->mm, &ctx->mem_after);
	vm__join(&ctx->vm);
	ctx->exit_code = vm__exit_code(&ctx->vm);
}

void run__teardown(struct run_ctx *ctx)
{
	if (ctx->defrag_thread_started) {
		ctx->defrag_cancel = 1;
		pthread_join(ctx->defrag_thread, NULL);
		ctx->defrag_thread_started = false;
	}
	vmm_host__stop_defrag(&ctx->host);
	if (ctx->stop_efd >= 0)
		close(ctx->stop_efd);
	ctx->stop_efd = -1;
	if (ctx->vm_created) {
		mm__view_detach(&ctx->mm);
		vm__destroy(&ctx->vm);
	}
	ctx->vm_created = false;
	if (ctx->restore)
		ctx->opts.snapshot_ops->release(ctx);
	run__teardown_ram(ctx);
	free(ctx->elf);
	ctx->elf = NULL;
}


