/* pvh_spec.c: parses QEMU's -append line into boot info: the same workload spec as `vmcompact run --workload`. */
#include "pvh.h"

/*
 * Syntax (documented in guest-agent/README.md):
 *   SPEC [KEY=VALUE | FLAG]...
 *   SPEC = NAME[:ARG,...] | forever[:W[,ARG...]]      as `vmcompact run --workload` (no mixes)
 * Tokens after SPEC are the same ARGs, space-separated, plus the PVH-only keys progress_ms=
 * and tsc_khz=. Tokens whose key holds a '.' are kernel-style parameters that QEMU may add
 * (microvm's virtio_mmio.device=...) and are ignored.
 */

enum { K_PASSES = 1, K_SECONDS = 2, K_UPDATES = 4, K_WS = 8, K_SEED = 16, K_FOREVER = 32, K_PAGE = 64 };

static const unsigned allowed[VMC_WL_COUNT] = {
	[VMC_WL_VERIFY] = K_PASSES | K_SECONDS | K_FOREVER,
	[VMC_WL_GUPS] = K_WS | K_UPDATES | K_SECONDS | K_SEED | K_FOREVER,
	[VMC_WL_STREAM] = K_WS | K_PASSES | K_SECONDS | K_FOREVER,
	[VMC_WL_CHASE] = K_WS | K_UPDATES | K_SECONDS | K_SEED | K_FOREVER | K_PAGE,
};

static int str__eq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/* Copies s[0..n) into a NUL-terminated buffer of size `size`; returns -1 if it does not fit. */
static int str__copy(char *dst, size_t size, const char *s, size_t n)
{
	if (n >= size)
		return -1;
	for (size_t i = 0; i < n; i++)
		dst[i] = s[i];
	dst[n] = 0;
	return 0;
}

static const char *str__find(const char *s, char c)
{
	for (; *s; s++)
		if (*s == c)
			return s;
	return NULL;
}

/* Unsigned decimal with an optional K/M/G/T suffix (unit 1024 for sizes, 1000 for counts). */
static int parse__scaled(const char *s, uint64_t unit, int bytes, uint64_t *out)
{
	uint64_t v = 0, mul = 1;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		uint64_t d = (uint64_t)(*s - '0');

		if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
			return -1;
		v = v * 10 + d;
	}
	switch (*s) {
	case 'k': case 'K': mul = unit; s++; break;
	case 'm': case 'M': mul = unit * unit; s++; break;
	case 'g': case 'G': mul = unit * unit * unit; s++; break;
	case 't': case 'T': mul = unit * unit * unit * unit; s++; break;
	default: break;
	}
	if (bytes && mul > 1) {   /* B or iB, any case, as vmcompact's strcasecmp */
		if ((s[0] | 0x20) == 'i' && (s[1] | 0x20) == 'b' && !s[2])
			s += 2;
		else if ((s[0] | 0x20) == 'b' && !s[1])
			s++;
	}
	if (*s || (v && mul > UINT64_MAX / v))
		return -1;
	*out = v * mul;
	return 0;
}

/*
 * Decimal seconds with an optional ms/s/m/min suffix -> ms, rounded half up on the exact
 * decimal (9 fractional digits kept), as vmcompact's strtod-based parser rounds them.
 */
static int parse__duration_ms(const char *s, uint64_t *out)
{
	uint64_t whole = 0, frac = 0, scale = 100000000, ms;   /* frac in 1e-9 of the unit */
	const char *start = s;
	int digits = 0;

	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		if (whole > 1000000000000ull)
			return -1;
		whole = whole * 10 + (uint64_t)(*s - '0');
	}
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++, digits++, scale /= 10)
			frac += (uint64_t)(*s - '0') * scale;
	if (!digits || s - start >= 64)          /* vmcompact's limit on the number's length */
		return -1;
	if (str__eq(s, "ms"))
		ms = whole + (frac >= 500000000);
	else if (!*s || str__eq(s, "s"))
		ms = whole * 1000 + frac / 1000000 + (frac % 1000000 >= 500000);
	else if (str__eq(s, "m") || str__eq(s, "min"))
		ms = whole * 60000 + frac * 6 / 100000 + (frac * 6 % 100000 >= 50000);
	else
		return -1;
	if (ms > 1000000000000000ull)
		return -1;
	*out = ms;
	return 0;
}

static int spec__lookup(const char *name)
{
	for (uint32_t i = 0; i < VMC_WL_COUNT; i++)
		if (str__eq(agent__workload_name(i), name))
			return (int)i;
	return -1;
}

/* One ARG (NUL-terminated, "key=value" or a bare flag) for workload bi->workload. */
static int spec__arg(char *arg, struct vmc_boot_info *bi, struct pvh_opts *o, char *err, size_t errlen)
{
	struct vmc_workload_args *a = &bi->args;
	const char *name = agent__workload_name(bi->workload);
	unsigned ok = allowed[bi->workload];
	char *val = (char *)str__find(arg, '=');
	uint64_t v = 0;
	int rc = 0;

	if (val)
		*val++ = 0;
	if (!val && str__eq(arg, "forever") && (ok & K_FOREVER)) {
		a->flags |= VMC_WL_FOREVER;
		return 0;
	}
	if (!val && str__eq(arg, "page") && (ok & K_PAGE)) {
		a->flags |= VMC_WL_CHASE_PAGE;
		return 0;
	}
	if (!val)
		goto bad_key;
	if (str__eq(arg, "progress_ms")) {
		rc = parse__scaled(val, 1000, 0, &o->progress_ms);
	} else if (str__eq(arg, "tsc_khz")) {
		rc = parse__scaled(val, 1000, 0, &o->tsc_khz);
		rc = rc || o->tsc_khz == 0;
	} else if (str__eq(arg, "passes") && (ok & K_PASSES)) {
		rc = parse__scaled(val, 1000, 0, &v);
		if (!rc && v == 0)
			a->flags |= VMC_WL_FOREVER;
		a->passes = v;
	} else if ((str__eq(arg, "seconds") || str__eq(arg, "time")) && (ok & K_SECONDS)) {
		rc = parse__duration_ms(val, &a->duration_ms);
		rc = rc || a->duration_ms == 0;
	} else if (str__eq(arg, "duration_ms") && (ok & K_SECONDS)) {
		rc = parse__scaled(val, 1000, 0, &a->duration_ms);
		rc = rc || a->duration_ms == 0;
	} else if (str__eq(arg, bi->workload == VMC_WL_CHASE ? "accesses" : "updates") && (ok & K_UPDATES)) {
		rc = parse__scaled(val, 1000, 0, &a->updates);
		rc = rc || a->updates == 0;
	} else if (str__eq(arg, "ws") && (ok & K_WS)) {
		rc = parse__scaled(val, 1024, 1, &a->ws_bytes);
		rc = rc || a->ws_bytes < 4096;
	} else if (str__eq(arg, "seed") && (ok & K_SEED)) {
		rc = parse__scaled(val, 1000, 0, &a->seed);
	} else {
		goto bad_key;
	}
	if (rc) {
		snprintf(err, errlen, "workload %s: bad value '%s' for %s", name, val, arg);
		return -1;
	}
	return 0;
bad_key:
	snprintf(err, errlen, "workload %s: unknown argument '%s'%s", name, arg, ok ? "" : " (it takes none)");
	return -1;
}

/* NAME[:ARG,...] or forever[:W[,ARG...]] into bi->workload and bi->args. */
static int spec__workload(char *tok, struct vmc_boot_info *bi, struct pvh_opts *o, char *err, size_t errlen)
{
	char *rest = (char *)str__find(tok, ':'), *name = tok;
	int forever = 0, id;

	if (rest)
		*rest++ = 0;
	if (str__find(tok, '+')) {
		snprintf(err, errlen, "workload mixes (A+B) need several vCPUs; under QEMU the agent runs one");
		return -1;
	}
	if (str__eq(name, "forever")) {
		forever = 1;
		name = "verify";
		if (rest && *rest) {
			/* A first argument without '=' (other than "forever") names the workload. */
			char *comma = (char *)str__find(rest, ',');
			const char *eq = str__find(rest, '=');

			if (comma)
				*comma = 0;
			if ((!eq || (comma && eq > comma)) && !str__eq(rest, "forever")) {
				name = rest;
				rest = comma ? comma + 1 : NULL;
			} else if (comma) {
				*comma = ',';
			}
		}
	}
	id = spec__lookup(name);
	if (id < 0) {
		snprintf(err, errlen, "unknown workload '%s'", name);
		return -1;
	}
	bi->workload = (uint32_t)id;
	if (id == VMC_WL_FAULT) {
		/* Only ud2 means something under QEMU: the PVH IDT catches it (exit status 12). */
		if (!rest || !str__eq(rest, "triple")) {
			snprintf(err, errlen, "fault: under QEMU only fault:triple (a #UD the PVH IDT reports)");
			return -1;
		}
		bi->args.fault = VMC_FAULT_TRIPLE;
		return 0;
	}
	if (forever && !(allowed[id] & K_FOREVER)) {
		snprintf(err, errlen, "forever: workload '%s' cannot run forever", name);
		return -1;
	}
	if (forever)
		bi->args.flags |= VMC_WL_FOREVER;
	while (rest) {
		char *comma = (char *)str__find(rest, ',');

		if (comma)
			*comma = 0;
		if (!*rest) {
			snprintf(err, errlen, "workload %s: empty argument", name);
			return -1;
		}
		if (spec__arg(rest, bi, o, err, errlen))
			return -1;
		rest = comma ? comma + 1 : NULL;
	}
	return 0;
}

int pvh_spec__parse(const char *cmdline, struct vmc_boot_info *bi, struct pvh_opts *o,
		    char *err, size_t errlen)
{
	const char *s = cmdline ? cmdline : "";
	char tok[128];
	int have_spec = 0;

	o->progress_ms = 1000;
	while (*s) {
		size_t n = 0;

		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		while (s[n] && s[n] != ' ' && s[n] != '\t' && s[n] != '\n')
			n++;
		if (!n)
			break;
		if (str__copy(tok, sizeof(tok), s, n)) {
			snprintf(err, errlen, "command-line token longer than %zu bytes", sizeof(tok) - 1);
			return -1;
		}
		s += n;
		if (!have_spec) {
			str__copy(o->spec, sizeof(o->spec), tok, n);
			if (spec__workload(tok, bi, o, err, errlen))
				return -1;
			have_spec = 1;
			continue;
		}
		{
			const char *dot = str__find(tok, '.'), *eq = str__find(tok, '=');

			if (dot && (!eq || dot < eq)) {
				console__printf("agent: ignoring kernel parameter '%s'\n", tok);
				continue;
			}
		}
		if (spec__arg(tok, bi, o, err, errlen))
			return -1;
	}
	if (!have_spec) {
		snprintf(err, errlen, "no workload on the command line (-append \"gups\", \"verify:passes=3\", "
			 "\"chase:ws=64M\", ...)");
		return -1;
	}
	return 0;
}
