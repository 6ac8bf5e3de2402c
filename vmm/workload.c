/* workload.c: parses `--workload NAME[:ARG,...]` into the boot-info workload id and arguments. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "vmm/util.h"
#include "vmm/workload.h"

const char workload__help[] =
"Workloads (--workload NAME[:ARG,...]; every vCPU runs it over its own slice of RAM):\n"
"  touch                 write a signature on every page of the slice once\n"
"  verify[:ARGS]         integrity oracle: each pass checks every word of every page for\n"
"                        GPA+generation and rewrites it with the next generation\n"
"                        ARGS: passes=N (default 3; 0 = until stopped), seconds=S, forever\n"
"  gups[:ARGS]           random read-modify-write (xorshift) over a working set\n"
"                        ARGS: ws=SIZE (default: whole slice), updates=N (default 4 per\n"
"                        8-byte word), seconds=S, seed=N, forever\n"
"  stream[:ARGS]         sequential copy + triad bandwidth\n"
"                        ARGS: ws=SIZE, passes=N (default 4), seconds=S, forever\n"
"  chase[:ARGS]          pointer chase: dependent random loads through one random cycle\n"
"                        over the working set, one element per 64 B line; reports ns/access\n"
"                        ARGS: ws=SIZE (default: whole slice), accesses=N (default 4 per\n"
"                        element, at least 2^20), seconds=S, seed=N, page (one element per\n"
"                        4 KiB page), forever\n"
"  idle                  sleep in the host (vCPU thread blocked) until stopped\n"
"  forever[:W[,ARGS]]    run W (verify, gups, stream or chase; default verify) until stopped;\n"
"                        same as W:ARGS,forever\n"
"  noop                  report and exit at once (start-up benchmark)\n"
"  fault:KIND            test only, must fail: badptr, badlen, badport, badcall, mmio, triple\n"
"Mixes: A+B (up to 4) gives vCPU i workload number i % n, e.g. --cpus 2 --workload\n"
"  gups:forever+verify:forever runs GUPS on vCPU 0 and the integrity oracle on vCPU 1.\n"
"Stopping: Ctrl-C, SIGTERM or --timeout ask the guest to stop; it finishes its current\n"
"2 MiB step, reports and exits with status 0.\n";

static const char *const names[VMC_WL_COUNT] = {
	[VMC_WL_NOOP] = "noop", [VMC_WL_TOUCH] = "touch", [VMC_WL_VERIFY] = "verify",
	[VMC_WL_GUPS] = "gups", [VMC_WL_STREAM] = "stream", [VMC_WL_IDLE] = "idle",
	[VMC_WL_FAULT] = "fault", [VMC_WL_CHASE] = "chase",
};

static const char *const fault_names[VMC_FAULT_COUNT] = {
	[VMC_FAULT_BADPTR] = "badptr", [VMC_FAULT_BADLEN] = "badlen",
	[VMC_FAULT_BADPORT] = "badport", [VMC_FAULT_BADCALL] = "badcall",
	[VMC_FAULT_MMIO] = "mmio", [VMC_FAULT_TRIPLE] = "triple",
};

/* Which keys each workload takes. */
enum { K_PASSES = 1, K_SECONDS = 2, K_UPDATES = 4, K_WS = 8, K_SEED = 16, K_FOREVER = 32, K_PAGE = 64 };
static const unsigned allowed[VMC_WL_COUNT] = {
	[VMC_WL_VERIFY] = K_PASSES | K_SECONDS | K_FOREVER,
	[VMC_WL_GUPS] = K_WS | K_UPDATES | K_SECONDS | K_SEED | K_FOREVER,
	[VMC_WL_STREAM] = K_WS | K_PASSES | K_SECONDS | K_FOREVER,
	[VMC_WL_CHASE] = K_WS | K_UPDATES | K_SECONDS | K_SEED | K_FOREVER | K_PAGE,
};

const char *workload__name(enum vmc_workload id)
{
	return (unsigned)id < VMC_WL_COUNT ? names[id] : "?";
}

const char *workload__fault_name(enum vmc_fault f)
{
	return (unsigned)f < VMC_FAULT_COUNT && fault_names[f] ? fault_names[f] : "?";
}

static int workload__lookup(const char *name)
{
	for (int i = 0; i < VMC_WL_COUNT; i++)
		if (names[i] && !strcmp(names[i], name))
			return i;
	return -1;
}

static int workload__arg(struct workload_spec *ws, char *arg, char *err, size_t errlen)
{
	char *val = strchr(arg, '=');
	unsigned ok = allowed[ws->id];
	uint64_t v;
	int rc = 0;

	if (val)
		*val++ = 0;
	if (!strcmp(arg, "forever") && !val && (ok & K_FOREVER)) {
		ws->args.flags |= VMC_WL_FOREVER;
		return 0;
	}
	if (!strcmp(arg, "page") && !val && (ok & K_PAGE)) {
		ws->args.flags |= VMC_WL_CHASE_PAGE;
		return 0;
	}
	if (!val)
		goto bad_key;
	if (!strcmp(arg, "passes") && (ok & K_PASSES)) {
		rc = util__parse_count(val, &v);
		if (!rc && v == 0)
			ws->args.flags |= VMC_WL_FOREVER;
		ws->args.passes = v;
	} else if ((!strcmp(arg, "seconds") || !strcmp(arg, "time")) && (ok & K_SECONDS)) {
		rc = util__parse_duration_ms(val, &v);
		if (!rc && v == 0)
			rc = -EINVAL;
		ws->args.duration_ms = v;
	} else if (!strcmp(arg, ws->id == VMC_WL_CHASE ? "accesses" : "updates") && (ok & K_UPDATES)) {
		rc = util__parse_count(val, &v);
		if (!rc && v == 0)
			rc = -EINVAL;
		ws->args.updates = v;
	} else if (!strcmp(arg, "ws") && (ok & K_WS)) {
		rc = util__parse_size(val, &v);
		if (!rc && v < 4096)
			rc = -EINVAL;
		ws->args.ws_bytes = v;
	} else if (!strcmp(arg, "seed") && (ok & K_SEED)) {
		rc = util__parse_count(val, &v);
		ws->args.seed = v;
	} else {
		goto bad_key;
	}
	if (rc) {
		snprintf(err, errlen, "workload %s: bad value '%s' for %s", names[ws->id], val, arg);
		return -EINVAL;
	}
	return 0;
bad_key:
	snprintf(err, errlen, "workload %s: unknown argument '%s'%s", names[ws->id], arg,
		 ok ? "" : " (it takes none)");
	return -EINVAL;
}

int workload__parse(const char *text, struct workload_spec *ws, char *err, size_t errlen)
{
	char buf[sizeof(ws->spec)];
	char *name, *rest, *arg;
	bool forever = false;
	int id;

	memset(ws, 0, sizeof(*ws));
	if (!text || !*text || strlen(text) >= sizeof(buf)) {
		snprintf(err, errlen, "workload spec is empty or too long");
		return -EINVAL;
	}
	strcpy(ws->spec, text);
	strcpy(buf, text);
	name = buf;
	rest = strchr(buf, ':');
	if (rest)
		*rest++ = 0;

	if (!strcmp(name, "forever")) {
		/* forever[:W[,ARGS]]: a first argument without '=' names the workload. */
		forever = true;
		name = "verify";
		if (rest && *rest) {
			char *comma = strchr(rest, ',');
			size_t len = comma ? (size_t)(comma - rest) : strlen(rest);

			if (!memchr(rest, '=', len) && strncmp(rest, "forever", len)) {
				name = rest;
				rest = comma ? comma + 1 : NULL;
				if (comma)
					*comma = 0;
			}
		}
	}
	id = workload__lookup(name);
	if (id < 0) {
		snprintf(err, errlen, "unknown workload '%s' (see vmcompact run --help)", name);
		return -EINVAL;
	}
	ws->id = (enum vmc_workload)id;
	if (forever && !(allowed[id] & K_FOREVER)) {
		snprintf(err, errlen, "forever: workload '%s' cannot run forever (verify, gups, stream, chase)", name);
		return -EINVAL;
	}
	if (id == VMC_WL_FAULT) {
		for (int f = 1; f < VMC_FAULT_COUNT; f++)
			if (rest && !strcmp(rest, fault_names[f]))
				ws->args.fault = (uint32_t)f;
		if (!ws->args.fault) {
			snprintf(err, errlen, "fault: need one of badptr, badlen, badport, badcall, mmio, triple");
			return -EINVAL;
		}
		return 0;
	}
	if (forever)
		ws->args.flags |= VMC_WL_FOREVER;
	if (rest && !*rest) {
		snprintf(err, errlen, "workload %s: empty argument list after ':'", names[id]);
		return -EINVAL;
	}
	while (rest && (arg = strsep(&rest, ","))) {
		if (!*arg) {
			snprintf(err, errlen, "workload %s: empty argument", names[id]);
			return -EINVAL;
		}
		if (workload__arg(ws, arg, err, errlen))
			return -EINVAL;
	}
	return 0;
}
