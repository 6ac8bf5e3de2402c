/* workload.h: parses `--workload NAME[:ARG,...]` into the boot-info workload id and arguments. */
#ifndef VMC_VMM_WORKLOAD_H
#define VMC_VMM_WORKLOAD_H

#include <stddef.h>
#include "vmcompact/abi.h"

struct workload_spec {
	enum vmc_workload id;
	struct vmc_workload_args args;
	char spec[128];          /* the text as given */
};

/* Help text listing workloads and their arguments (for `vmcompact run --help`). */
extern const char workload__help[];

int workload__parse(const char *text, struct workload_spec *ws, char *err, size_t errlen);
const char *workload__name(enum vmc_workload id);
const char *workload__fault_name(enum vmc_fault f);

#endif
