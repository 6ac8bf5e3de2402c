/* cmd_run.c: the `vmcompact run` command: boot a VM, give it a control socket, wait, report. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vmm/cli/builtin.h"
#include "vmm/control/control.h"
#include "vmm/run.h"
#include "vmm/snapshot/run_glue.h"
#include "vmm/util.h"

/* A run from the command line: the VM, and the control socket every such VM gets. */
struct run_cmd {
	struct run_ctx ctx;
	struct control_server ctl;
	bool ctl_started;
	sigset_t stopset, oldset;  /* SIGINT/SIGTERM, blocked from the start of cmd_run */
};

/* Main thread: wait for every vCPU to end; turn signals and the timeout into stop requests. */
static void run__wait(struct run_ctx *ctx, int sigfd)
{
	uint64_t now = util__now_ns();
	uint64_t timeout_at = ctx->opts.timeout_ms ? now + ctx->opts.timeout_ms * 1000000ull : UINT64_MAX;
	uint64_t force_at = UINT64_MAX;
	bool forced = false;

	while (!vm__all_exited(&ctx->vm)) {
		struct pollfd pfd[3] = { { .fd = ctx->vm.done_fd, .events = POLLIN },
					 { .fd = sigfd, .events = POLLIN },
					 { .fd = ctx->stop_efd, .events = POLLIN } };
		uint64_t next = timeout_at < force_at ? timeout_at : force_at;
		int ms = next == UINT64_MAX ? -1 : next <= now ? 0 : (int)((next - now + 999999) / 1000000);

		if (poll(pfd, ctx->stop_efd >= 0 ? 3 : 2, ms) < 0 && errno != EINTR)
			break;
		now = util__now_ns();
		if (pfd[0].revents & POLLIN) {
			uint64_t n;

			if (read(ctx->vm.done_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
				break;
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (ctx->stop_requested && !forced) {
					fprintf(stderr, "vmcompact: second signal, force-stopping\n");
					force_at = now;
				}
				ctx->stop_by_signal = true;
				run__stop(ctx, now, &force_at);
			}
		}
		if (ctx->stop_efd >= 0 && (pfd[2].revents & POLLIN)) {
			uint64_t n;

			if (read(ctx->stop_efd, &n, sizeof(n)) == sizeof(n))
				run__stop(ctx, now, &force_at);
		}
		if (now >= timeout_at && !ctx->stop_requested) {
			ctx->stop_by_timeout = true;
			run__stop(ctx, now, &force_at);
		}
		if (now >= force_at && !forced) {
			forced = true;
			fprintf(stderr, "vmcompact: error: guest did not stop within %llu ms of the stop request; force-stopping\n",
				(unsigned long long)ctx->opts.stop_grace_ms);
			vm__force_stop(&ctx->vm);
			force_at = UINT64_MAX;
		}
	}
}


/* Failing to create the socket is fatal only if the user asked for it (--name, --socket). */
static int run_cmd__start_control(struct run_cmd *rc, char *err, size_t errlen)
{
	struct run_ctx *ctx = &rc->ctx;
	struct control_config cc;
	bool asked = ctx->opts.name || ctx->opts.socket_path;
	int r;

	control_config__init(&cc);
	cc.name = ctx->opts.name;
	cc.path = ctx->opts.socket_path;
	r = control__start(&rc->ctl, &ctx->host, &cc, err, errlen);
	if (r) {
		if (asked)
			return r;
		fprintf(stderr, "vmcompact: warning: no control socket: %s\n", err);
		err[0] = 0;
		return 0;
	}
	rc->ctl_started = true;
	if (rc->ctl.note[0])
		fprintf(stderr, "vmcompact: %s\n", rc->ctl.note);
	if (!ctx->opts.json)
		printf("vmcompact: control socket %s\n", rc->ctl.path);
	return 0;
}

static void run_cmd__stop_control(struct run_cmd *rc, const char *reason)
{
	if (rc->ctl_started)
		control__destroy(&rc->ctl, reason);
	rc->ctl_started = false;
}

static void run_cmd__report(const struct run_ctx *ctx)
{
	if (ctx->opts.json) {
		struct json_object *j = run__result_json(ctx);

		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else {
		run__print_human(ctx);
	}
	fflush(stdout);
}

/* Boot, run and tear down one VM. Returns the process exit code. */
static int run_cmd__execute(struct run_cmd *rc)
{
	struct run_ctx *ctx = &rc->ctx;
	char err[1024];
	int sigfd;

	ctx->exit_code = VMC_EXIT_HOST_ERROR;
	/* SIGINT/SIGTERM (blocked since cmd_run began, so one sent during start-up waits here)
	 * become stop requests; vCPU threads inherit the blocked mask. */
	sigfd = signalfd(-1, &rc->stopset, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sigfd < 0) {
		snprintf(err, sizeof(err), "signalfd: %s", strerror(errno));
		goto fail;
	}
	if (run__boot(ctx, err, sizeof(err)) || run_cmd__start_control(rc, err, sizeof(err)))
		goto fail;
	run__wait(ctx, sigfd);
	/* Clients see the defrag work cancelled, then SHUTDOWN, before the vCPUs are joined. */
	vmm_host__cancel_defrag(&ctx->host);
	run_cmd__stop_control(rc, ctx->stop_by_signal ? "host-signal" : NULL);
	run__collect(ctx);
	run_cmd__report(ctx);
	close(sigfd);
	pthread_sigmask(SIG_SETMASK, &rc->oldset, NULL);
	run__teardown(ctx);
	return ctx->exit_code;

fail:
	fprintf(stderr, "vmcompact: %s\n", err);
	if (sigfd >= 0)
		close(sigfd);
	pthread_sigmask(SIG_SETMASK, &rc->oldset, NULL);
	vmm_host__cancel_defrag(&ctx->host);
	run_cmd__stop_control(rc, "host-error");
	run__teardown(ctx);
	return VMC_EXIT_HOST_ERROR;
}

int cmd_run(int argc, char **argv)
{
	struct run_cmd rc;
	char err[256];
	int r;

	memset(&rc, 0, sizeof(rc));
	sigemptyset(&rc.stopset);
	sigaddset(&rc.stopset, SIGINT);
	sigaddset(&rc.stopset, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &rc.stopset, &rc.oldset);
	rc.ctx.t_start_ns = util__process_start_ns();
	run__default_options(&rc.ctx.opts);
	rc.ctx.opts.snapshot_ops = &snapshot_run_ops;
	r = run__parse_args(argc, argv, &rc.ctx.opts, err, sizeof(err));
	if (r == 1)
		return 0;
	/* the control socket's name is checked before anything boots (exit 2, not 1) */
	if (!r && rc.ctx.opts.name && control__check_name(rc.ctx.opts.name, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmcompact run: --name: %s\nTry 'vmcompact run --help'.\n", err);
		return VMC_EXIT_USAGE;
	}
	if (r) {
		fprintf(stderr, "vmcompact run: %s\nTry 'vmcompact run --help'.\n", err);
		return VMC_EXIT_USAGE;
	}
	/* a refused snapshot file is bad input: one error before anything starts */
	if (rc.ctx.opts.restore_path &&
	    snapshot__check_restore(rc.ctx.opts.restore_path, rc.ctx.opts.restore_layout, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmcompact run: --restore: %s\n", err);
		return VMC_EXIT_USAGE;
	}
	return run_cmd__execute(&rc);
}
