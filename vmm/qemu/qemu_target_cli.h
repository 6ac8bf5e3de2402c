/* qemu_target_cli.h: what the QEMU commands share: target options, opening a target, RAM coverage reports. */
#ifndef VMC_VMM_QEMU_QEMU_TARGET_CLI_H
#define VMC_VMM_QEMU_QEMU_TARGET_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vmm/qemu/collapse.h"
#include "vmm/qemu/coverage.h"
#include "vmm/qemu/qemu_proc.h"

struct json_object;

struct qemu_target_opts {
	const char *domain, *qmp, *uri;
	long pid;
	unsigned given;              /* how many of --domain/--qemu/--qmp */
};

/* getopt long options every target command takes; values 'D', 'Q', 'S', 'U'. */
#define QEMU_TARGET_LONGOPTS \
	{ "domain", required_argument, NULL, 'D' }, \
	{ "qemu", required_argument, NULL, 'Q' }, \
	{ "qmp", required_argument, NULL, 'S' }, \
	{ "connect", required_argument, NULL, 'U' }
#define QEMU_TARGET_USAGE \
	"  --domain NAME     a libvirt domain (--connect URI; default $LIBVIRT_DEFAULT_URI\n" \
	"                    or qemu:///session)\n" \
	"  --qemu PID        a QEMU process (its QMP socket from its command line)\n" \
	"  --qmp PATH        QEMU's QMP unix socket\n"

/* One of the target options; false when opt is not one (or its value is bad). */
bool qemu_target_opts__take(struct qemu_target_opts *o, int opt, const char *arg, bool *bad);
/* Open the target and find its RAM; prints "vmcompact PROG: ..." and returns an exit code. */
int qemu_target_opts__open(const struct qemu_target_opts *o, const char *prog,
			   struct qemu_target *t);

/* Coverage of every identified block. */
struct qemu_block_cover {
	struct smaps_cover smaps;
	struct region_map map;
	bool have_smaps, have_map;
};
struct qemu_cover {
	struct qemu_block_cover *blocks;
	uint64_t ram, huge;                    /* smaps, identified blocks */
	uint64_t regions, regions_huge, regions_populated;   /* pagemap, collapsible blocks */
	struct qemu_kvm_pages kvm;
};
int qemu_cover__take(struct qemu_target *t, struct qemu_cover *c, char *err, size_t errlen);
void qemu_cover__free(struct qemu_cover *c, size_t nr_blocks);
double qemu_cover__share(const struct qemu_cover *c);
struct json_object *qemu_cover__json(const struct qemu_target *t, const struct qemu_cover *c,
				     bool with_map);
void qemu_cover__print(const struct qemu_target *t, const struct qemu_cover *c, bool with_map,
		       FILE *f);

/* The collapsible blocks as ranges; 0, or -ENODATA with the reasons in err. */
int qemu_target__ranges(const struct qemu_target *t, struct collapse_range **out, size_t *nr,
			char *err, size_t errlen);
struct json_object *collapse_result__json(const struct collapse_result *r);

#endif
