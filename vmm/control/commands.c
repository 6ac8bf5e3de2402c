/* commands.c: the control socket's command table: argument specs, checks, and one function per QMP command. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vmm/control/control.h"
#include "vmm/control/internal.h"
#include "vmm/json.h"
#include "vmm/mm_json.h"
#include "vmm/util.h"

/* control__destroy has begun or a stop was asked for: refuse new work. */
static bool control__closing(struct control_server *s)
{
	bool closing;

	pthread_mutex_lock(&s->lock);
	closing = s->closing || s->stop_requested;
	pthread_mutex_unlock(&s->lock);
	return closing;
}

static const char *mode_choice(int i)
{
	return defrag_mode__name((enum defrag_mode)i);
}

static const char *algo_choice(int i)
{
	return defrag_algo__name((enum defrag_algo)i);
}

/* A text cut at a byte limit may end inside a UTF-8 sequence: drop that partial character. */
static void utf8__trim_partial(char *s, size_t n)
{
	size_t i = n, need;
	unsigned char lead;

	while (i > 0 && n - i < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return;
	lead = (unsigned char)s[i - 1];
	if (lead < 0x80)
		return;
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
	if (n - (i - 1) < need)
		s[i - 1] = '\0';
}

int cmd_error__set(struct cmd_error *e, const char *cls, const char *fmt, ...)
{
	va_list ap;
	int n;

	e->cls = cls;
	va_start(ap, fmt);
	n = vsnprintf(e->desc, sizeof(e->desc), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(e->desc))
		utf8__trim_partial(e->desc, strlen(e->desc));
	return -1;
}

const char *cmd_error__printable(char *dst, size_t dstlen, const char *src, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 7 < dstlen; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(dst + o, dstlen - o, "\\u%04x", ch);
		else
			dst[o++] = (char)ch;
	}
	dst[o] = '\0';
	utf8__trim_partial(dst, o);
	return dst;
}

struct cmd_ctx {
	struct control_server *s;
};

enum arg_type { ARG_INT, ARG_BOOL, ARG_ENUM, ARG_STR };

struct arg_spec {
	const char *name;
	enum arg_type type;
	int64_t min, max;             /* ARG_INT */
	const char *(*choice)(int i); /* ARG_ENUM: the name of value i */
	int nr_choices;
};

typedef int (*cmd_fn)(struct cmd_ctx *x, struct json_object *args, struct json_object **ret,
		      struct cmd_error *e);

struct control_command {
	const char *name;
	cmd_fn fn;
	const struct arg_spec *args;  /* terminated by { NULL } */
	const char *help;
};

static bool args__get(struct json_object *args, const char *name, struct json_object **v)
{
	return args && json_object_object_get_ex(args, name, v);
}

static int64_t arg__int(struct json_object *args, const char *name, int64_t def)
{
	struct json_object *v;

	return args__get(args, name, &v) ? json_object_get_int64(v) : def;
}

static int arg__enum(struct json_object *args, const char *name, int (*parse)(const char *), int def)
{
	struct json_object *v;
	int i;

	if (!args__get(args, name, &v))
		return def;
	i = parse(json_object_get_string(v));
	return i < 0 ? def : i;
}

/* Accepted for QMP clients; unlike QEMU, commands work without it (plain socat use). */
static int qmp_capabilities(struct cmd_ctx *x, struct json_object *args,
			    struct json_object **ret, struct cmd_error *e)
{
	return 0;
}

static int qmp_query_commands(struct cmd_ctx *x, struct json_object *args,
			      struct json_object **ret, struct cmd_error *e);

static int qmp_query_status(struct cmd_ctx *x, struct json_object *args,
			    struct json_object **ret, struct cmd_error *e)
{
	struct control_server *s = x->s;
	struct vmm_host *h = s->host;
	struct json_object *o = json_object_new_object();
	struct defrag_job_info info;
	enum defragd_state dstate;
	struct mm_stat st;
	const char *status = vmm_host__status(h);

	mm__stat(h->mm, &st);
	defrag_job__snapshot(&s->host->job, &info);
	defragd__snapshot(&s->host->defragd, NULL, NULL, &dstate);

	json__add_str(o, "name", s->name);
	json_object_object_add(o, "pid", json_object_new_int64(getpid()));
	json__add_str(o, "status", status);
	json_object_object_add(o, "running", json_object_new_boolean(strcmp(status, "running") == 0));
	json__add_u64(o, "uptime-ms", (util__now_ns() - s->start_ns) / 1000000);
	json__add_u64(o, "vcpus", h->nr_vcpus);
	json__add_u64(o, "guest_bytes", st.guest_bytes);
	json__add_u64(o, "regions", st.nr_regions);
	json__add_u64(o, "regions_backed_2m", st.regions_backed_2m);
	json__add(o, "backing_2m", json__fixed(st.backing_2m, 4));
	json__add(o, "backing_2m_achievable", json__fixed(st.backing_2m_achievable, 4));
	json__add_str(o, "defrag", defrag_job_state_names[info.state]);
	json__add_str(o, "defragd", defragd_state_names[dstate]);
	json__add_str(o, "socket", s->path);
	if (h->add_status)
		h->add_status(h->ctx, o);
	*ret = o;
	return 0;
}

/* KVM's own page counts from the host hook; valid=false (JSON null) without one. */
static void host__kvm_pages(const struct vmm_host *h, struct kvm_pages *k)
{
	if (!h->kvm_stats || h->kvm_stats(h->ctx, k) < 0)
		memset(k, 0, sizeof(*k));
}

static int qmp_query_memory(struct cmd_ctx *x, struct json_object *args,
			    struct json_object **ret, struct cmd_error *e)
{
	struct vmm_host *h = x->s->host;
	struct kvm_pages kvm;
	struct mm_stat st;

	mm__stat(h->mm, &st);
	host__kvm_pages(h, &kvm);
	*ret = mm_json__stat(&st, &kvm);
	return 0;
}

static int qmp_defrag(struct cmd_ctx *x, struct json_object *args, struct json_object **ret,
		      struct cmd_error *e)
{
	struct control_server *s = x->s;
	struct defrag_request req;
	struct json_object *v;
	uint64_t id;
	char err[256];
	int r;

	if (control__closing(s))
		return cmd_error__set(e, "DeviceNotActive", "VM '%s' is shutting down", s->name);
	if (strcmp(vmm_host__status(s->host), "shutdown") == 0)
		return cmd_error__set(e, "DeviceNotActive", "VM '%s' is shut down", s->name);

	defrag_request__init(&req);
	req.mode = (enum defrag_mode)arg__enum(args, "mode", defrag_mode__parse, DEFRAG_FULL);
	if (req.mode != DEFRAG_COMPACT && s->host->mm->pool.backing == POOL_BACKING_4K)
		return cmd_error__set(e, "GenericError", "VM '%s' has no host huge pages, so no region "
				      "can be collapsed onto one (mode '%s' needs them; mode 'compact' "
				      "still compacts free memory): %.300s", s->name,
				      defrag_mode__name(req.mode), s->host->mm->pool.note);
	req.algo = (enum defrag_algo)arg__enum(args, "algo", defrag_algo__parse, DEFRAG_ALGO_PLANNED);
	req.order = -1;
	if (args__get(args, "order", &v)) {
		if (req.mode == DEFRAG_COLLAPSE)
			return cmd_error__set(e, "GenericError", "Parameter 'order' is only valid "
					      "with mode 'compact' or 'full'");
		req.order = (int)json_object_get_int64(v);
	}
	if (args__get(args, "max-pause-us", &v))
		req.max_pause_ns = (uint64_t)json_object_get_int64(v) * 1000;
	if (args__get(args, "max-mbps", &v))
		req.max_bytes_per_sec = (uint64_t)json_object_get_int64(v) * 1000000;
	req.max_regions = (uint32_t)arg__int(args, "max-regions", req.max_regions);

	r = defrag_job__start(&s->host->job, &req, DEFRAG_ORIGIN_MANUAL, &id, NULL, err, sizeof(err));
	if (r < 0)
		return cmd_error__set(e, "GenericError", "%s", err);
	*ret = json_object_new_object();
	json__add_u64(*ret, "job-id", id);
	return 0;
}

static int qmp_query_defrag(struct cmd_ctx *x, struct json_object *args,
			    struct json_object **ret, struct cmd_error *e)
{
	struct control_server *s = x->s;
	struct json_object *o = json_object_new_object(), *p;
	struct defrag_job_info info;
	uint64_t end;

	defrag_job__snapshot(&s->host->job, &info);
	json__add_str(o, "state", defrag_job_state_names[info.state]);
	if (info.state != DEFRAG_JOB_IDLE) {
		json__add_u64(o, "job-id", info.id);
		json__add_str(o, "origin", defrag_origin_names[info.origin]);
		json__add_str(o, "mode", defrag_mode__name(info.mode));
		json__add_str(o, "algo", defrag_algo__name(info.algo));
		json_object_object_add(o, "order", json_object_new_int(info.order));
		p = json_object_new_object();
		json__add_u64(p, "done", info.done);
		json__add_u64(p, "total", info.total);
		json__add(o, "progress", p);
		end = info.state == DEFRAG_JOB_RUNNING ? util__now_ns() : info.finished_ns;
		json__add(o, "elapsed-ms", json__fixed((end - info.started_ns) / 1e6, 3));
		if (info.state == DEFRAG_JOB_FAILED)
			json__add_str(o, "error", defrag_job_info__error(&info));
		if (info.has_result)
			json__add(o, "result", mm_json__defrag_stats(&info.stats));
	}
	*ret = o;
	return 0;
}

static int qmp_cancel_defrag(struct cmd_ctx *x, struct json_object *args,
			     struct json_object **ret, struct cmd_error *e)
{
	uint64_t id;

	if (defrag_job__cancel(&x->s->host->job, &id) < 0)
		return cmd_error__set(e, "DeviceNotActive", "no defrag job is running");
	*ret = json_object_new_object();
	json__add_u64(*ret, "job-id", id);
	return 0;
}

static struct json_object *policy__json(struct control_server *s)
{
	struct json_object *o = json_object_new_object(), *c;
	struct defragd_counters cnt;
	struct defragd_policy p;
	enum defragd_state state;

	defragd__snapshot(&s->host->defragd, &p, &cnt, &state);
	json_object_object_add(o, "auto", json_object_new_boolean(p.enabled));
	json__add_u64(o, "proactiveness", p.proactiveness);
	json__add_u64(o, "interval-ms", p.interval_ms);
	json__add_u64(o, "max-pause-us", p.max_pause_us);
	json__add_u64(o, "max-mbps", p.max_mbps);
	json__add_u64(o, "backoff-ms", p.backoff_ms);
	json__add_u64(o, "regions-per-wakeup", p.regions_per_wakeup);
	json__add_u64(o, "wmark-low", defragd__wmark(p.proactiveness, true));
	json__add_u64(o, "wmark-high", defragd__wmark(p.proactiveness, false));
	json__add_str(o, "state", defragd_state_names[state]);
	c = json_object_new_object();
	json__add_u64(c, "wakeups", cnt.wakeups);
	json__add_u64(c, "rounds", cnt.rounds);
	json__add_u64(c, "regions-promoted", cnt.regions_promoted);
	json__add_u64(c, "pages-copied", cnt.pages_copied);
	json__add_u64(c, "backoffs", cnt.backoffs);
	json__add_u64(c, "busy-skips", cnt.busy_skips);
	json__add_u64(c, "failures", cnt.failures);
	json__add_u64(c, "last-score", cnt.last_score);
	json__add_u64(c, "last-fragmentation-score", cnt.last_free_score);
	json__add(o, "counters", c);
	return o;
}

static int qmp_query_defrag_policy(struct cmd_ctx *x, struct json_object *args,
				   struct json_object **ret, struct cmd_error *e)
{
	*ret = policy__json(x->s);
	return 0;
}

static int qmp_set_defrag_policy(struct cmd_ctx *x, struct json_object *args,
				 struct json_object **ret, struct cmd_error *e)
{
	struct control_server *s = x->s;
	struct defragd_policy p;
	struct json_object *v;
	char err[256];

	defragd__snapshot(&s->host->defragd, &p, NULL, NULL);
	if (args__get(args, "auto", &v))
		p.enabled = json_object_get_boolean(v);
	p.proactiveness = (unsigned)arg__int(args, "proactiveness", p.proactiveness);
	p.interval_ms = (uint32_t)arg__int(args, "interval-ms", p.interval_ms);
	p.max_pause_us = (uint32_t)arg__int(args, "max-pause-us", p.max_pause_us);
	p.max_mbps = (uint32_t)arg__int(args, "max-mbps", p.max_mbps);
	p.backoff_ms = (uint32_t)arg__int(args, "backoff-ms", p.backoff_ms);
	p.regions_per_wakeup = (uint32_t)arg__int(args, "regions-per-wakeup", p.regions_per_wakeup);
	if (p.enabled && control__closing(s))
		return cmd_error__set(e, "DeviceNotActive", "VM '%s' is shutting down", s->name);
	if (defragd__set_policy(&s->host->defragd, &p, err, sizeof(err)) < 0)
		return cmd_error__set(e, "GenericError", "%s", err);
	*ret = policy__json(s);
	return 0;
}

static int qmp_stop(struct cmd_ctx *x, struct json_object *args, struct json_object **ret,
		    struct cmd_error *e)
{
	struct control_server *s = x->s;

	if (!s->host->request_stop)
		return cmd_error__set(e, "GenericError", "this VM cannot be stopped from the socket");
	pthread_mutex_lock(&s->lock);
	s->stop_requested = true;
	pthread_mutex_unlock(&s->lock);
	s->host->request_stop(s->host->ctx);
	return 0;
}

/* Write the VM's snapshot (vCPU state, memory, layout) to an absolute path; the guest pauses. */
static int qmp_snapshot(struct cmd_ctx *x, struct json_object *args, struct json_object **ret,
			struct cmd_error *e)
{
	struct control_server *s = x->s;
	struct json_object *v;
	const char *file;
	char err[512];
	bool live, layout;

	if (!s->host->snapshot)
		return cmd_error__set(e, "GenericError", "this VM cannot be snapshotted");
	if (strcmp(vmm_host__status(s->host), "shutdown") == 0)
		return cmd_error__set(e, "DeviceNotActive", "VM '%s' is shut down", s->name);
	if (!args__get(args, "file", &v))
		return cmd_error__set(e, "GenericError", "Parameter 'file' is missing");
	file = json_object_get_string(v);
	if (file[0] != '/')
		return cmd_error__set(e, "GenericError", "Parameter 'file' must be an absolute path");
	live = args__get(args, "live", &v) && json_object_get_boolean(v);
	layout = !args__get(args, "layout", &v) || json_object_get_boolean(v);
	err[0] = '\0';
	if (s->host->snapshot(s->host->ctx, file, live, layout, ret, err, sizeof(err)) < 0)
		return cmd_error__set(e, "GenericError", "%s", err[0] ? err : "snapshot failed");
	return 0;
}

static const struct arg_spec no_args[] = { { .name = NULL } };

static const struct arg_spec snapshot_args[] = {
	{ "file", ARG_STR, 0, 0, NULL, 0 },
	{ "live", ARG_BOOL, 0, 0, NULL, 0 },
	{ "layout", ARG_BOOL, 0, 0, NULL, 0 },
	{ .name = NULL }
};

static const struct arg_spec defrag_args[] = {
	{ "mode", ARG_ENUM, 0, 0, mode_choice, DEFRAG_MODE_COUNT },
	{ "algo", ARG_ENUM, 0, 0, algo_choice, DEFRAG_ALGO_COUNT },
	{ "order", ARG_INT, 0, MM_MAX_ORDER - 1, NULL, 0 },
	{ "max-pause-us", ARG_INT, DEFRAGD_PAUSE_US_MIN, DEFRAGD_PAUSE_US_MAX, NULL, 0 },
	{ "max-mbps", ARG_INT, 0, DEFRAGD_MBPS_MAX, NULL, 0 },
	{ "max-regions", ARG_INT, 0, UINT32_MAX, NULL, 0 },
	{ .name = NULL }
};

static const struct arg_spec policy_args[] = {
	{ "auto", ARG_BOOL, 0, 0, NULL, 0 },
	{ "proactiveness", ARG_INT, 0, 100, NULL, 0 },
	{ "interval-ms", ARG_INT, DEFRAGD_INTERVAL_MS_MIN, DEFRAGD_INTERVAL_MS_MAX, NULL, 0 },
	{ "max-pause-us", ARG_INT, DEFRAGD_PAUSE_US_MIN, DEFRAGD_PAUSE_US_MAX, NULL, 0 },
	{ "max-mbps", ARG_INT, 0, DEFRAGD_MBPS_MAX, NULL, 0 },
	{ "backoff-ms", ARG_INT, 0, DEFRAGD_BACKOFF_MS_MAX, NULL, 0 },
	{ "regions-per-wakeup", ARG_INT, 1, DEFRAGD_REGIONS_MAX, NULL, 0 },
	{ .name = NULL }
};

/* The command table: name, handler, arguments, what it does. */
static const struct control_command commands[] = {
	{ "qmp_capabilities", qmp_capabilities, no_args, "capabilities negotiation (optional)" },
	{ "query-commands", qmp_query_commands, no_args, "list commands and their arguments" },
	{ "query-status", qmp_query_status, no_args, "name, pid, run state, backing_2m" },
	{ "query-memory", qmp_query_memory, no_args, "buddyinfo, pagetypeinfo, indices, vmstat, KVM pages" },
	{ "defrag", qmp_defrag, defrag_args, "start a defrag job" },
	{ "query-defrag", qmp_query_defrag, no_args, "state, progress and result of the last job" },
	{ "cancel-defrag", qmp_cancel_defrag, no_args, "cancel the running job" },
	{ "set-defrag-policy", qmp_set_defrag_policy, policy_args, "change defragd's policy" },
	{ "query-defrag-policy", qmp_query_defrag_policy, no_args, "defragd policy, state, counters" },
	{ "stop", qmp_stop, no_args, "stop the VM" },
	{ "snapshot", qmp_snapshot, snapshot_args, "write vCPU state, memory and layout to a file" },
};
#define NR_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static int qmp_query_commands(struct cmd_ctx *x, struct json_object *args,
			      struct json_object **ret, struct cmd_error *e)
{
	struct json_object *a = json_object_new_array();
	const struct arg_spec *spec;
	unsigned i;

	for (i = 0; i < NR_COMMANDS; i++) {
		struct json_object *c = json_object_new_object(), *names = json_object_new_array();

		json__add_str(c, "name", commands[i].name);
		for (spec = commands[i].args; spec->name; spec++)
			json_object_array_add(names, json_object_new_string(spec->name));
		json__add(c, "arguments", names);
		json__add_str(c, "help", commands[i].help);
		json_object_array_add(a, c);
	}
	*ret = a;
	return 0;
}

const struct control_command *control_command__find(const char *name)
{
	unsigned i;

	for (i = 0; i < NR_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int args__check(const struct control_command *cmd, struct json_object *args,
		       struct cmd_error *e)
{
	if (!args)
		return 0;
	json_object_object_foreach(args, key, val) {
		const struct arg_spec *a;
		const char *str;
		int64_t n;
		int i;

		for (a = cmd->args; a->name; a++)
			if (strcmp(a->name, key) == 0)
				break;
		if (!a->name)
			return cmd_error__set(e, "GenericError", "Parameter '%s' is unexpected", key);
		switch (a->type) {
		case ARG_INT:
			if (!json_object_is_type(val, json_type_int))
				return cmd_error__set(e, "GenericError", "Invalid parameter type for "
						      "'%s', expected: integer", key);
			n = json_object_get_int64(val);
			if (n < a->min || n > a->max ||
			    (n == INT64_MAX && json_object_get_uint64(val) > INT64_MAX))
				return cmd_error__set(e, "GenericError", "Parameter '%s' expects a "
						      "value in %lld..%lld", key,
						      (long long)a->min, (long long)a->max);
			break;
		case ARG_STR:
			if (!json_object_is_type(val, json_type_string) || !json_object_get_string_len(val))
				return cmd_error__set(e, "GenericError", "Invalid parameter type for "
						      "'%s', expected: non-empty string", key);
			break;
		case ARG_BOOL:
			if (!json_object_is_type(val, json_type_boolean))
				return cmd_error__set(e, "GenericError", "Invalid parameter type for "
						      "'%s', expected: boolean", key);
			break;
		case ARG_ENUM:
			if (!json_object_is_type(val, json_type_string))
				return cmd_error__set(e, "GenericError", "Invalid parameter type for "
						      "'%s', expected: string", key);
			str = json_object_get_string(val);
			for (i = 0; i < a->nr_choices; i++)
				if (strcmp(a->choice(i), str) == 0)
					break;
			if (i == a->nr_choices) {
				char list[128] = "";

				for (i = 0; i < a->nr_choices; i++) {
					strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
					strncat(list, a->choice(i), sizeof(list) - strlen(list) - 1);
				}
				return cmd_error__set(e, "GenericError", "Parameter '%s' does not "
						      "accept value '%s' (expected: %s)", key, str, list);
			}
			break;
		}
	}
	return 0;
}

int control_command__run(const struct control_command *cmd, struct control_server *s,
			 struct json_object *args, struct json_object **ret, struct cmd_error *e)
{
	struct cmd_ctx x = { s };

	if (args__check(cmd, args, e))
		return -1;
	return cmd->fn(&x, args, ret, e);
}
