/* run_glue.h: snapshot and restore of a VM run by vmm/run.c, through its struct run_snapshot_ops hook. */
#ifndef VMC_SNAPSHOT_RUN_GLUE_H
#define VMC_SNAPSHOT_RUN_GLUE_H

#include <stddef.h>
#include "vmm/run.h"

extern const struct run_snapshot_ops snapshot_run_ops;

/* Check a file for `run --restore` before anything starts (the caller exits 2 on failure):
 * header, sections, layout, region table, and that it holds vCPU state. 0 or -errno, err set. */
int snapshot__check_restore(const char *path, bool use_layout, char *err, size_t errlen);

#endif
