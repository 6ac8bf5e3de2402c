/* test_pvh_spec.c: the guest's -append parser (guest-agent/pvh_spec.c) reads every spec exactly as vmcompact's --workload parser does. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "tests/check.h"
#include "vmm/workload.h"
#include "guest-agent/pvh.h"

/* What pvh_spec.c needs from the rest of the agent, on the host. */
const char *agent__workload_name(uint32_t id)
{
	return workload__name((enum vmc_workload)id);
}

static int ignored_params;

void console__printf(const char *fmt, ...)
{
	(void)fmt;
	ignored_params++;   /* pvh_spec.c prints only when it ignores a kernel-style parameter */
}

static int guest_parse(const char *cmdline, struct vmc_boot_info *bi, struct pvh_opts *o, char *err, size_t len)
{
	memset(bi, 0, sizeof(*bi));
	memset(o, 0, sizeof(*o));
	return pvh_spec__parse(cmdline, bi, o, err, len);
}

/* Both parsers accept it or both refuse it; when they accept, same workload and arguments. */
static void same(const char *spec)
{
	struct workload_spec w;
	struct vmc_boot_info bi;
	struct pvh_opts o;
	char err_host[256], err_guest[256];
	int host, guest;

	tu_case = spec;
	host = workload__parse(spec, &w, err_host, sizeof(err_host));
	guest = guest_parse(spec, &bi, &o, err_guest, sizeof(err_guest));
	CHECKF(!host == !guest, "vmcompact %s ('%s'), guest %s ('%s')", host ? "refuses" : "accepts",
	       host ? err_host : "", guest ? "refuses" : "accepts", guest ? err_guest : "");
	if (host)
		return;
	CHECK_EQ(bi.workload, w.id);
	CHECK_EQ(bi.args.passes, w.args.passes);
	CHECK_EQ(bi.args.duration_ms, w.args.duration_ms);
	CHECK_EQ(bi.args.updates, w.args.updates);
	CHECK_EQ(bi.args.ws_bytes, w.args.ws_bytes);
	CHECK_EQ(bi.args.seed, w.args.seed);
	CHECK_EQ(bi.args.flags, w.args.flags);
	CHECK_EQ(bi.args.fault, w.args.fault);
	CHECK(!strcmp(o.spec, spec));
}

static const char *const corpus[] = {
	"noop", "touch", "idle", "verify", "verify:passes=3", "verify:passes=0", "verify:forever",
	"verify:seconds=1.5", "verify:seconds=250ms", "verify:time=2s", "verify:seconds=1m",
	"gups", "gups:ws=64M", "gups:ws=64MiB,updates=1M,seed=7", "gups:ws=1G,seconds=0.3",
	"gups:updates=2k", "gups:ws=4096", "gups:ws=4095", "gups:updates=0", "gups:seconds=0",
	"gups:seed=18446744073709551615", "gups:seed=18446744073709551616", "gups:forever,ws=8M",
	"stream", "stream:passes=2,ws=16M", "stream:seconds=3", "chase", "chase:ws=64M",
	"chase:ws=64M,accesses=2M,seed=3,page", "chase:page", "chase:updates=5", "chase:accesses=0",
	"chase:forever", "forever", "forever:gups", "forever:gups,ws=8M", "forever:ws=8M",
	"forever:stream,passes=2", "forever:chase,page", "forever:forever", "forever:idle",
	"fault:triple", "gups:nosuch=1", "gups:page", "verify:ws=8M", "nosuch", "gups:", "gups:,",
	"gups:ws=", "gups:ws=8X", "verify:passes=-1", "noop:passes=1", "touch:forever",
	"gups:ws=8M,,seed=1", "verify:seconds=0.0005", "verify:seconds=0.0004", "verify:seconds=.5",
	"verify:seconds=1.2345678", "verify:seconds=1.5ms", "verify:seconds=0.01m", "verify:seconds=2min",
	"verify:seconds=3h", "verify:seconds=.", "verify:seconds=1.", "verify:seconds=99999999999999",
	"gups:ws=2k", "gups:ws=1T", "gups:ws=8Mb", "gups:ws=8MB", "gups:ws=8MIB", "gups:ws=8mib", "gups:ws=8Mx", "gups:ws=8B",
	"gups:ws=8MiBB", "gups:updates=1.5M", "gups:updates=2KB", "verify:seconds= 1", "verify:seconds=1e3",
	"verify:seconds=0x10", "verify:seconds=inf", "verify:seconds=+1", "gups:ws= 8M", "gups:seed=-1",
	"verify:seconds=0.000000000000000000000000000000000000000000000000000000000000000000001",
	"verify:seconds=0.00000000000000000000000000000000000000000000000000000000001",
};

static void test_same_as_vmcompact(void)
{
	for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++)
		same(corpus[i]);
}

/* Space-separated tokens after the spec are the same arguments, plus the PVH-only ones. */
static void test_tokens(void)
{
	struct vmc_boot_info bi;
	struct pvh_opts o;
	char err[256];

	tu_case = "tokens";
	CHECK(!guest_parse("chase ws=64M seed=5 page", &bi, &o, err, sizeof(err)));
	CHECK(bi.workload == VMC_WL_CHASE && bi.args.ws_bytes == 64ull << 20 && bi.args.seed == 5 &&
	      (bi.args.flags & VMC_WL_CHASE_PAGE));
	CHECK(!strcmp(o.spec, "chase") && o.progress_ms == 1000 && o.tsc_khz == 0);
	CHECK(!guest_parse("gups:ws=8M duration_ms=300 progress_ms=0 tsc_khz=2096000", &bi, &o, err, sizeof(err)));
	CHECK(bi.args.duration_ms == 300 && o.progress_ms == 0 && o.tsc_khz == 2096000);
	CHECK(!guest_parse("  verify:passes=2   virtio_mmio.device=512@0xfeb00e00:12 ", &bi, &o, err, sizeof(err)));
	CHECK(bi.workload == VMC_WL_VERIFY && bi.args.passes == 2 && ignored_params == 1);
	/* refused, with a reason */
	CHECK(guest_parse("", &bi, &o, err, sizeof(err)) && strstr(err, "no workload"));
	CHECK(guest_parse("gups seed=1 bogus=2", &bi, &o, err, sizeof(err)) && strstr(err, "bogus"));
	CHECK(guest_parse("verify console=ttyS0", &bi, &o, err, sizeof(err)) && strstr(err, "console"));
	CHECK(guest_parse("gups tsc_khz=0", &bi, &o, err, sizeof(err)));
	CHECK(guest_parse("gups+verify", &bi, &o, err, sizeof(err)) && strstr(err, "mixes"));
	CHECK(guest_parse("fault:mmio", &bi, &o, err, sizeof(err)) && strstr(err, "triple"));
	CHECK(guest_parse("verify seed=1", &bi, &o, err, sizeof(err)));   /* verify takes no seed */
}

int main(void)
{
	test_same_as_vmcompact();
	test_tokens();
	printf("pvh spec parser: %zu specs read as vmcompact reads them, tokens ok\n",
	       sizeof(corpus) / sizeof(corpus[0]));
	return 0;
}
