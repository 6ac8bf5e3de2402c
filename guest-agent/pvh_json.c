/* pvh_json.c: the one JSON result line the agent prints on serial under QEMU (fields as `vmcompact run --json`). */
#include "pvh.h"

/*
 * The line is a subset of `vmcompact run --json` with the same names and meanings, so the
 * same readers work ("vcpus.0.updates_per_sec"), plus "boot", "tsc_source", "qemu_cpus"
 * and "entry_tsc_ms". Fields only the VMM knows (exits, hypercalls, kvm, memory, pause)
 * are absent. Keep it stable: vmm/qemu/ parses it.
 */
struct jbuf {
	char *buf;
	size_t size, len;
	int fresh;                /* just opened an object or array: no comma before the next key */
};

__attribute__((format(printf, 2, 3)))
static void jb__printf(struct jbuf *j, const char *fmt, ...)
{
	size_t room = j->len < j->size ? j->size - j->len : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(j->buf + (room ? j->len : 0), room, fmt, ap);
	va_end(ap);
	j->len += (size_t)n;
}

/* Opens an object or array value: `{` / `[`, or `"key":{` inside an object. */
static void jb__open(struct jbuf *j, const char *key, char bracket)
{
	if (key)
		jb__printf(j, "%s\"%s\":%c", j->fresh ? "" : ",", key, bracket);
	else
		jb__printf(j, "%s%c", j->fresh ? "" : ",", bracket);
	j->fresh = 1;
}

static void jb__close(struct jbuf *j, char bracket)
{
	jb__printf(j, "%c", bracket);
	j->fresh = 0;
}

static void jb__key(struct jbuf *j, const char *key)
{
	jb__printf(j, "%s\"%s\":", j->fresh ? "" : ",", key);
	j->fresh = 0;
}

/* A non-negative number with 3 decimals (json-c prints more; readers only parse it). */
static void jb__double(struct jbuf *j, const char *key, double v)
{
	uint64_t whole, frac;

	if (!(v >= 0) || v > 1e15)
		v = 0;
	whole = (uint64_t)v;
	frac = (uint64_t)((v - (double)whole) * 1000.0 + 0.5);
	if (frac >= 1000) {
		whole++;
		frac -= 1000;
	}
	jb__key(j, key);
	jb__printf(j, "%lu.%03lu", whole, frac);
}

static void jb__u64(struct jbuf *j, const char *key, uint64_t v)
{
	jb__key(j, key);
	jb__printf(j, "%lu", v);
}

static void jb__bool(struct jbuf *j, const char *key, int v)
{
	jb__key(j, key);
	jb__printf(j, "%s", v ? "true" : "false");
}

/* A string with JSON escapes for '"', '\\' and control characters. */
static void jb__str(struct jbuf *j, const char *key, const char *s)
{
	jb__key(j, key);
	jb__printf(j, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			jb__printf(j, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			jb__printf(j, "\\u%04x", c);
		else
			jb__printf(j, "%c", c);
	}
	jb__printf(j, "\"");
}

static void jb__args(struct jbuf *j, const struct vmc_boot_info *bi)
{
	const struct vmc_workload_args *a = &bi->args;

	jb__open(j, "args", '{');
	if (a->passes)
		jb__u64(j, "passes", a->passes);
	if (a->duration_ms)
		jb__double(j, "seconds", (double)a->duration_ms / 1000.0);
	if (a->updates)
		jb__u64(j, bi->workload == VMC_WL_CHASE ? "accesses" : "updates", a->updates);
	if (a->ws_bytes)
		jb__u64(j, "ws_bytes", a->ws_bytes);
	if (a->seed)
		jb__u64(j, "seed", a->seed);
	if (a->flags & VMC_WL_FOREVER)
		jb__bool(j, "forever", 1);
	if (a->flags & VMC_WL_CHASE_PAGE)
		jb__bool(j, "page", 1);
	jb__close(j, '}');
}

static void jb__vcpu(struct jbuf *j, const struct pvh_result *res, uint32_t i, double secs)
{
	const struct vmc_hc_report *r = &res->report[i];

	jb__open(j, NULL, '{');
	jb__u64(j, "id", i);
	jb__u64(j, "exit_status", res->status[i]);
	jb__bool(j, "guest_exited", res->exited[i]);
	jb__u64(j, "reports", res->nr_reports[i]);
	jb__bool(j, "final", !!(r->flags & VMC_REPORT_FINAL));
	jb__bool(j, "stopped", !!(r->flags & VMC_REPORT_STOPPED));
	jb__u64(j, "pages", r->pages);
	jb__u64(j, "passes", r->passes);
	jb__u64(j, "errors", r->errors);
	jb__u64(j, "bad_pages", r->bad_pages);
	jb__u64(j, "stale_words", r->stale_words);
	jb__u64(j, "checked_words", r->checked_words);
	jb__u64(j, "updates", r->updates);
	jb__double(j, "updates_per_sec", secs > 0 ? (double)r->updates / secs : 0);
	jb__double(j, "ns_per_update", r->updates ? secs * 1e9 / (double)r->updates : 0);
	jb__u64(j, "accesses", r->accesses);
	jb__double(j, "ns_per_access", r->accesses ? secs * 1e9 / (double)r->accesses : 0);
	jb__u64(j, "bytes", r->bytes);
	jb__double(j, "bytes_per_sec", secs > 0 ? (double)r->bytes / secs : 0);
	jb__u64(j, "ws_bytes", r->ws_bytes);
	jb__u64(j, "tsc_cycles", r->tsc_cycles);
	jb__double(j, "seconds", secs);
	if (r->errors) {
		jb__open(j, "first_error", '{');
		jb__u64(j, "gpa", r->first_err_gpa);
		jb__u64(j, "expected", r->first_err_expected);
		jb__u64(j, "got", r->first_err_got);
		jb__close(j, '}');
	}
	jb__close(j, '}');
}

static void jb__totals(struct jbuf *j, const struct pvh_result *res, double khz)
{
	uint64_t pages = 0, errors = 0, stale = 0, min_passes = UINT64_MAX;
	double gups = 0, stream = 0;

	for (uint32_t i = 0; i < res->nr_vcpus; i++) {
		const struct vmc_hc_report *r = &res->report[i];
		double secs = khz > 0 ? (double)r->tsc_cycles / (khz * 1000.0) : 0;

		pages += r->pages;
		errors += r->errors;
		stale += r->stale_words;
		if (r->passes < min_passes)
			min_passes = r->passes;
		if (secs > 0) {
			gups += (double)r->updates / secs;
			stream += (double)r->bytes / secs;
		}
	}
	jb__open(j, "totals", '{');
	jb__u64(j, "pages", pages);
	jb__u64(j, "verify_errors", errors);
	jb__u64(j, "verify_stale_words", stale);
	jb__u64(j, "min_passes", min_passes == UINT64_MAX ? 0 : min_passes);
	jb__double(j, "gups_total_updates_per_sec", gups);
	jb__double(j, "stream_total_bytes_per_sec", stream);
	jb__close(j, '}');
}

size_t pvh_json__result(char *buf, size_t len, const struct pvh_result *res)
{
	const struct vmc_boot_info *bi = &res->bi[0];
	struct jbuf j = { buf, len, 0, 1 };
	double khz = (double)bi->tsc_khz;

	jb__open(&j, NULL, '{');
	jb__str(&j, "vmcompact_agent", "result");
	jb__str(&j, "boot", "pvh");
	jb__u64(&j, "abi_version", VMC_ABI_VERSION);
	jb__u64(&j, "mem_bytes", res->mem_bytes);
	jb__u64(&j, "cpus", res->nr_vcpus);
	jb__u64(&j, "qemu_cpus", res->qemu_cpus);
	jb__open(&j, "workload", '{');
	jb__str(&j, "name", agent__workload_name(bi->workload));
	jb__str(&j, "spec", res->opts->spec);
	jb__args(&j, bi);
	jb__close(&j, '}');
	jb__str(&j, "cmdline", res->cmdline ? res->cmdline : "");
	jb__u64(&j, "exit_status", res->exit_status);
	if (res->error) {
		jb__str(&j, "error", res->error);
	} else {
		jb__key(&j, "error");
		jb__printf(&j, "null");
	}
	jb__u64(&j, "tsc_khz", bi->tsc_khz);
	jb__str(&j, "tsc_source", res->tsc_source ? res->tsc_source : "none");
	jb__double(&j, "entry_tsc_ms", khz > 0 ? (double)res->entry_tsc / khz : 0);
	jb__u64(&j, "mem_start", bi->mem_start);
	jb__u64(&j, "mem_end", res->bi[res->nr_vcpus - 1].mem_end);
	jb__open(&j, "vcpus", '[');
	for (uint32_t i = 0; i < res->nr_vcpus; i++)
		jb__vcpu(&j, res, i, khz > 0 ? (double)res->report[i].tsc_cycles / (khz * 1000.0) : 0);
	jb__close(&j, ']');
	jb__totals(&j, res, khz);
	jb__close(&j, '}');
	jb__printf(&j, "\n");
	if (j.len >= len && len) {
		buf[len - 2] = '\n';
		return len - 1;
	}
	return j.len;
}
