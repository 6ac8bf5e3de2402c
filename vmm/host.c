/* host.c: the VM's defrag job runner and background defragmenter, started and stopped with the VM. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/host.h"

int vmm_host__start_defrag(struct vmm_host *h, const struct defragd_policy *p, char *err, size_t errlen)
{
	static const struct defragd_policy defaults = DEFRAGD_POLICY_DEFAULTS;
	int r;

	if (!h->mm) {
		snprintf(err, errlen, "defrag: no guest memory");
		return -EINVAL;
	}
	if (!p)
		p = &defaults;
	r = defragd__check_policy(p, err, errlen);
	if (r)
		return r;
	r = defrag_job__init(&h->job, h->mm, h->step_ops, NULL);
	if (r) {
		snprintf(err, errlen, "defrag job: %s", strerror(-r));
		return r;
	}
	r = defragd__init(&h->defragd, &h->job);
	if (r) {
		snprintf(err, errlen, "defragd: %s", strerror(-r));
		goto err_job;
	}
	r = defragd__start(&h->defragd, h->mm, h->status, h->ctx, p);
	if (r) {
		snprintf(err, errlen, "cannot start defragd: %s", strerror(-r));
		goto err_defragd;
	}
	h->defrag_started = true;
	return 0;

err_defragd:
	defragd__exit(&h->defragd);
err_job:
	defrag_job__exit(&h->job);
	return r;
}

void vmm_host__cancel_defrag(struct vmm_host *h)
{
	uint64_t id;

	if (!h->defrag_started)
		return;
	defragd__stop(&h->defragd);
	if (defrag_job__cancel(&h->job, &id) == 0)
		defrag_job__wait(&h->job, id, NULL);
}

void vmm_host__stop_defrag(struct vmm_host *h)
{
	if (!h->defrag_started)
		return;
	vmm_host__cancel_defrag(h);
	defragd__exit(&h->defragd);
	defrag_job__exit(&h->job);
	h->defrag_started = false;
}

const char *vmm_host__status(const struct vmm_host *h)
{
	return h->status ? h->status(h->ctx) : "running";
}
