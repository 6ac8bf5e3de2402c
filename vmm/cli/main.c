/* main.c: the vmcompact command line: a kvmtool-style table of subcommands. */
#include <stdio.h>
#include <string.h>
#include "vmm/bench/bench.h"
#include "vmm/cli/builtin.h"
#include "vmm/control/cli.h"
#include "vmm/snapshot/cli.h"
#include "vmm/qemu/qemu_cli.h"
#include "vmm/vm.h"

struct vmc_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);   /* argv[0] is the command name */
	const char *help;
};

/* One line per command. */
static const struct vmc_cmd commands[] = {
	{ "run", cmd_run, "boot the built-in guest and run a workload" },
	{ "list", cmd_list, "list running VMs (their control sockets)" },
	{ "stat", cmd_stat, "a VM's memory: buddyinfo, extfrag index, vmstat, backing_2m, KVM pages" },
	{ "defrag", cmd_defrag, "defragment a running VM's guest memory from the host" },
	{ "snapshot", cmd_snapshot, "write a running VM's vCPU state, memory and pool layout to a file" },
	{ "stop", cmd_stop, "stop a running VM gracefully" },
	{ "watch", cmd_watch, "keep a QEMU/libvirt guest's RAM on 2 MiB pages (defragd's policy)" },
	{ "qemu", cmd_qemu, "qemu run|age: the guest agent under QEMU; age a QEMU guest's RAM" },
	{ "demo", cmd_demo, "the main job: an aged guest defragmented live, before/after table" },
	{ "experiment", cmd_experiment, "a matrix of backings x workloads x sizes: results.csv, summary.md, plots" },
	{ "bench", cmd_bench, "benchmarks:" },
};

static void main__usage(FILE *f)
{
	fprintf(f, "Usage: vmcompact COMMAND [OPTIONS]\n"
		   "A minimal KVM VMM that owns guest physical memory and defragments it from the host.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		fprintf(f, "  %-10s %s", commands[i].name, commands[i].help);
		if (commands[i].fn == cmd_bench)
			bench__list(f);   /* the benchmarks' own table names them */
		fputc('\n', f);
	}
	fprintf(f, "\nRun 'vmcompact COMMAND --help' for a command's options.\n"
		   "Options: -h, --help   this text;  --version   print the version\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		main__usage(stderr);
		return VMC_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		main__usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("vmcompact %s (guest ABI %u)\n", VMC_VERSION, VMC_ABI_VERSION);
		return 0;
	}
	/* QEMU/libvirt guests vmcompact did not start: stat/defrag --domain|--qemu|--qmp */
	if (!strcmp(argv[1], "stat") && qemu_cli__wants(argc - 1, argv + 1))
		return cmd_qemu_stat(argc - 1, argv + 1);
	if (!strcmp(argv[1], "defrag") && qemu_cli__wants(argc - 1, argv + 1))
		return cmd_qemu_defrag(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "vmcompact: unknown command '%s'\n\n", argv[1]);
	main__usage(stderr);
	return VMC_EXIT_USAGE;
}
