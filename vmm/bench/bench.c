/* bench.c: `vmcompact bench SUBCOMMAND`: a table of benchmarks. */
#include <stdio.h>
#include <string.h>
#include "vmm/bench/bench.h"
#include "vmm/snapshot/cli.h"
#include "vmm/qemu/qemu_cli.h"
#include "vmm/vm.h"

struct bench_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

/* One line per benchmark. */
static const struct bench_cmd benches[] = {
	{ "startup", bench_startup__cmd, "time from exec to the guest's first hypercall" },
	{ "gups", bench_gups__cmd, "guest GUPS on a linear vs an aged pool; mm/ metadata share" },
	{ "defrag", bench_defrag__cmd, "defrag a live aged guest: time, copies, pauses, GUPS; vs memcpy and MADV_COLLAPSE" },
	{ "moves", bench_moves__cmd, ">= 10^6 page moves (re-aging + defrag rounds) under verify on every vCPU: 0 errors" },
	{ "mm", bench_mm__cmd, "no KVM: the defrag engine and host-thread workloads on one layout (experiment's mm level)" },
	{ "snapshot", bench_snapshot__cmd, "snapshot write and eager restore vs plain O_DIRECT I/O, pool prefault, file read (no KVM)" },
	{ "defragd", bench_defragd__cmd, "the background defragmenter's cost to a running guest: GUPS with defragd off vs auto" },
	{ "qemu-collapse", cmd_bench_qemu_collapse, "collapse 4 KiB-backed QEMU-style RAM from outside: chunked vs one process_madvise call" },
};

void bench__list(FILE *f)
{
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
		fprintf(f, "%s %s", i ? "," : "", benches[i].name);
}

static void bench__usage(FILE *f)
{
	fprintf(f, "Usage: vmcompact bench BENCHMARK [OPTIONS]\n\nBenchmarks:\n");
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
		fprintf(f, "  %-10s %s\n", benches[i].name, benches[i].help);
	fprintf(f, "\nRun 'vmcompact bench BENCHMARK --help' for its options.\n");
}

int cmd_bench(int argc, char **argv)
{
	if (argc < 2) {
		bench__usage(stderr);
		return VMC_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		bench__usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
		if (!strcmp(argv[1], benches[i].name))
			return benches[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "vmcompact bench: unknown benchmark '%s'\n\n", argv[1]);
	bench__usage(stderr);
	return VMC_EXIT_USAGE;
}
