/* fuzz_run_args.c: `vmcompact run`'s option table (run__parse_args) and the --name check, argv from NUL-split input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/control/control.h"
#include "vmm/run.h"

#define FUZZ_MAX_ARGS 48

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz__quiet_stdout();   /* --help prints the usage */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz__strdup(data, size), *argv[FUZZ_MAX_ARGS + 2], err[256];
	struct run_options o;
	int argc = 0, r;
	size_t off = 0;

	argv[argc++] = "run";
	while (off <= size && argc <= FUZZ_MAX_ARGS) {
		argv[argc++] = buf + off;
		off += strlen(buf + off) + 1;
	}
	argv[argc] = NULL;
	run__default_options(&o);
	err[0] = '\0';
	r = run__parse_args(argc, argv, &o, err, sizeof(err));
	if (r == 0) {
		FUZZ_ASSERT(o.cpus >= 1 && o.cpus <= VMC_MAX_VCPUS, "cpus %u", o.cpus);
		FUZZ_ASSERT(o.mem_bytes % VMC_HUGE_SIZE == 0 && o.mem_bytes >= VMC_MIN_RAM &&
			    o.mem_bytes <= VMC_MAX_RAM, "mem %llu", (unsigned long long)o.mem_bytes);
		FUZZ_ASSERT(o.nr_workloads >= 1 && o.nr_workloads <= RUN_MAX_WORKLOADS, "%u workloads",
			    o.nr_workloads);
		FUZZ_ASSERT(o.aging.age >= 0 && o.aging.age <= 1, "age %g", o.aging.age);
		run__slack_bytes(&o);
		if (o.name)
			control__check_name(o.name, err, sizeof(err));
	} else if (r < 0) {
		FUZZ_ASSERT(err[0], "refused without a message");
	}
	free(buf);
	return 0;
}
