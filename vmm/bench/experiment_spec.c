/* experiment_spec.c: the experiment spec file: `key = value` lines, comma-separated lists, # comments. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bench/experiment.h"
#include "vmm/util.h"

static const char *const known_backings[] = {
	"linear", "aged", "aged+planned", "aged+linux", "qemu-memfd", "qemu-anon-thp", "qemu-defrag", "hugetlbfs",
};
static const char *const known_workloads[] = { "chase", "gups", "stream", "verify" };

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

static bool in(const char *v, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v, set[i]))
			return true;
	return false;
}

/* Split value on commas into items; each item through one(). 0, or -1 with err. */
static int each_item(char *value, unsigned *count, int (*one)(struct exp_spec *, const char *, unsigned),
		     struct exp_spec *s, char *err, size_t errlen)
{
	char *save = NULL, *tok;

	*count = 0;
	for (tok = strtok_r(value, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		tok = trim(tok);
		if (*count == EXP_MAX_LIST) {
			snprintf(err, errlen, "more than %d items", EXP_MAX_LIST);
			return -1;
		}
		if (one(s, tok, *count)) {
			snprintf(err, errlen, "bad item '%s'", tok);
			return -1;
		}
		(*count)++;
	}
	if (!*count) {
		snprintf(err, errlen, "empty list");
		return -1;
	}
	return 0;
}

static int one_backing(struct exp_spec *s, const char *v, unsigned i)
{
	if (!in(v, known_backings, sizeof(known_backings) / sizeof(known_backings[0])))
		return -1;
	snprintf(s->backings[i], sizeof(s->backings[i]), "%s", v);
	return 0;
}

static int one_workload(struct exp_spec *s, const char *v, unsigned i)
{
	if (!in(v, known_workloads, sizeof(known_workloads) / sizeof(known_workloads[0])))
		return -1;
	snprintf(s->workloads[i], sizeof(s->workloads[i]), "%s", v);
	return 0;
}

static int one_ws(struct exp_spec *s, const char *v, unsigned i)
{
	return util__parse_size(v, &s->working_sets[i]) || s->working_sets[i] < (1 << 20) ? -1 : 0;
}

static int one_vcpus(struct exp_spec *s, const char *v, unsigned i)
{
	uint64_t n;

	if (util__parse_count(v, &n) || n < 1 || n > 16)
		return -1;
	s->vcpus[i] = (unsigned)n;
	return 0;
}

static int one_growth_size(struct exp_spec *s, const char *v, unsigned i)
{
	char buf[32];
	size_t len = strlen(v);

	if (!len || len >= sizeof(buf))
		return -1;
	strcpy(buf, v);
	s->growth_optional[i] = buf[len - 1] == '?';
	if (s->growth_optional[i])
		buf[len - 1] = 0;
	return util__parse_size(buf, &s->growth_sizes[i]) || s->growth_sizes[i] % (2 << 20) ||
	       s->growth_sizes[i] < (8 << 20) ? -1 : 0;
}

static int one_algo(struct exp_spec *s, const char *v, unsigned i)
{
	if (strcmp(v, "planned") && strcmp(v, "linux"))
		return -1;
	snprintf(s->growth_algos[i], sizeof(s->growth_algos[i]), "%s", v);
	return 0;
}

static int scalar_count(const char *v, uint64_t *out, uint64_t lo, uint64_t hi)
{
	return util__parse_count(v, out) || *out < lo || *out > hi ? -1 : 0;
}

/* One key; 0, or -1 with err. */
static int spec_set(struct exp_spec *s, const char *key, char *v, char *err, size_t errlen)
{
	uint64_t n;
	char *end;

	if (!strcmp(key, "backings"))
		return each_item(v, &s->nr_backings, one_backing, s, err, errlen);
	if (!strcmp(key, "workloads"))
		return each_item(v, &s->nr_workloads, one_workload, s, err, errlen);
	if (!strcmp(key, "working_sets"))
		return each_item(v, &s->nr_working_sets, one_ws, s, err, errlen);
	if (!strcmp(key, "vcpus"))
		return each_item(v, &s->nr_vcpus, one_vcpus, s, err, errlen);
	if (!strcmp(key, "growth_sizes"))
		return each_item(v, &s->nr_growth_sizes, one_growth_size, s, err, errlen);
	if (!strcmp(key, "growth_algos"))
		return each_item(v, &s->nr_growth_algos, one_algo, s, err, errlen);
	if (!strcmp(key, "guest") || !strcmp(key, "pause_trace_size") || !strcmp(key, "timeline_mem")) {
		if (util__parse_size(v, &n) || n % (2 << 20) || (n && n < (8 << 20)))
			goto bad;
		*(!strcmp(key, "guest") ? &s->guest : !strcmp(key, "timeline_mem") ? &s->timeline_mem
										: &s->pause_trace_size) = n;
		return 0;
	}
	if (!strcmp(key, "age")) {
		s->age = strtod(v, &end);
		return *end || end == v || !(s->age >= 0 && s->age <= 1) ? (snprintf(err, errlen, "age must be 0..1"), -1) : 0;
	}
	if (!strcmp(key, "seed"))
		return util__parse_count(v, &s->seed) ? (snprintf(err, errlen, "bad seed"), -1) : 0;
	if (!strcmp(key, "slack") && strlen(v) < sizeof(s->slack)) {
		strcpy(s->slack, v);
		return 0;
	}
	if (!strcmp(key, "repetitions") || !strcmp(key, "growth_repetitions")) {
		if (scalar_count(v, &n, 1, 100))
			goto bad;
		*(!strcmp(key, "repetitions") ? &s->repetitions : &s->growth_repetitions) = (unsigned)n;
		return 0;
	}
	if (!strcmp(key, "measure_ms"))
		return scalar_count(v, &s->measure_ms, 100, 600000) ? (snprintf(err, errlen, "measure_ms: 100..600000"), -1) : 0;
	if (!strcmp(key, "timeline_ms"))
		return scalar_count(v, &s->timeline_ms, 20, 10000) ? (snprintf(err, errlen, "timeline_ms: 20..10000"), -1) : 0;
	if (!strcmp(key, "timeline_max_mbps"))
		return scalar_count(v, &s->timeline_max_mbps, 0, 100000) ? (snprintf(err, errlen, "bad timeline_max_mbps"), -1) : 0;
	if (!strcmp(key, "timeline_workload") && in(v, known_workloads, sizeof(known_workloads) / sizeof(known_workloads[0]))) {
		snprintf(s->timeline_workload, sizeof(s->timeline_workload), "%s", v);
		return 0;
	}
	if (!strcmp(key, "chase") && (!strcmp(v, "page") || !strcmp(v, "line"))) {
		s->chase_page = !strcmp(v, "page");
		return 0;
	}
	snprintf(err, errlen, "unknown key or bad value");
	return -1;
bad:
	snprintf(err, errlen, "bad value '%s'", v);
	return -1;
}

static void spec_defaults(struct exp_spec *s)
{
	memset(s, 0, sizeof(*s));
	s->guest = 1ull << 30;
	s->age = 0.9;
	s->seed = 7;
	strcpy(s->slack, "6%");
	s->vcpus[0] = 1;
	s->nr_vcpus = 1;
	s->repetitions = 3;
	s->growth_repetitions = 3;
	s->measure_ms = 1000;
	s->timeline_ms = 200;
	s->timeline_max_mbps = 64;
	strcpy(s->timeline_workload, "gups");
}

static int spec_check(const struct exp_spec *s, char *err, size_t errlen)
{
	for (unsigned i = 0; i < s->nr_working_sets; i++)
		if (s->working_sets[i] > s->guest) {
			snprintf(err, errlen, "working set %llu MiB is larger than guest = %llu MiB",
				 (unsigned long long)(s->working_sets[i] >> 20), (unsigned long long)(s->guest >> 20));
			return -1;
		}
	if (s->timeline_mem && s->timeline_mem > s->guest * 64) {
		snprintf(err, errlen, "timeline_mem is implausibly large");
		return -1;
	}
	return 0;
}

int exp_spec__load(struct exp_spec *s, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char line[1024], msg[256];
	unsigned lineno = 0;

	spec_defaults(s);
	snprintf(s->path, sizeof(s->path), "%s", path);
	if (!f) {
		snprintf(err, errlen, "cannot open spec %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *hash = strchr(line, '#'), *eq, *key, *val;

		lineno++;
		if (hash)
			*hash = 0;
		key = trim(line);
		if (!*key)
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%u: expected 'key = value'", path, lineno);
			goto fail;
		}
		*eq = 0;
		key = trim(key);
		val = trim(eq + 1);
		if (spec_set(s, key, val, msg, sizeof(msg))) {
			snprintf(err, errlen, "%s:%u: %s: %s", path, lineno, key, msg);
			goto fail;
		}
	}
	fclose(f);
	if (spec_check(s, msg, sizeof(msg))) {
		snprintf(err, errlen, "%s: %s", path, msg);
		return -1;
	}
	return 0;
fail:
	fclose(f);
	return -1;
}
