/* host.h: a running VM as its defragmenters and the control plane see it: memory, vCPU pause hooks, defrag job, defragd. */
#ifndef VMC_VMM_HOST_H
#define VMC_VMM_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "mm/defrag.h"
#include "mm/mm.h"
#include "vmm/defrag_job.h"
#include "vmm/defragd.h"
#include "vmm/kvm_stats.h"

struct json_object;

/*
 * Filled by the VM's owner (run.c; tests fill it with fakes). Optional hooks may be
 * NULL. Hooks are called from the control thread, the defrag job thread or defragd,
 * never with mm->lock held. The VM owns its defrag job and defragd (one request at a
 * time, manual or background); the control server only gets a pointer to the host.
 */
struct vmm_host {
	void *ctx;
	const char *name;                       /* shown by list / query-status; NULL: config name */
	struct mm *mm;                          /* guest memory */
	const struct mm_step_ops *step_ops;     /* pause/resume vCPUs around defrag steps; NULL: none */
	unsigned nr_vcpus;
	/* "running", "paused", "shutdown"; NULL hook: "running" */
	const char *(*status)(void *ctx);
	/* KVM binary stats of the VM; <0 or NULL hook: not available */
	int (*kvm_stats)(void *ctx, struct kvm_pages *out);
	/* Ask the VMM to stop gracefully. Must only ask (set a flag, kick vCPUs): the
	 * VMM later tears down from its own thread. NULL: `stop` refused. */
	void (*request_stop)(void *ctx);
	/* Add fields to the query-status return (guest workload progress, ...); also called
	 * by control__destroy for SHUTDOWN's "guest" (then with exit_status, forced). */
	void (*add_status)(void *ctx, struct json_object *status);
	/* Write a snapshot of the VM to path (pauses the vCPUs itself); the result object on
	 * success. NULL: `snapshot` refused. */
	int (*snapshot)(void *ctx, const char *path, bool live, bool layout, struct json_object **result,
			char *err, size_t errlen);

	/* Owned, set up by vmm_host__start_defrag. */
	struct defrag_job job;
	struct defragd defragd;
	bool defrag_started;
};

/* Start the VM's defrag job runner and defragd with policy p (NULL: defaults). 0 or -errno + err. */
int vmm_host__start_defrag(struct vmm_host *h, const struct defragd_policy *p, char *err, size_t errlen);
/* Cancel running defrag work and wait for it (the host stays usable for a restart). */
void vmm_host__cancel_defrag(struct vmm_host *h);
/* Cancel, join and free what start took; a no-op if it never started. */
void vmm_host__stop_defrag(struct vmm_host *h);
/* "running" unless the status hook says otherwise. */
const char *vmm_host__status(const struct vmm_host *h);

#endif
