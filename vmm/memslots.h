/* memslots.h: guest RAM as KVM memslots: one slot over the window, or one per 2 MiB region so a region in order is served straight from the pool's direct map (promote path "memslot"). */
#ifndef VMC_VMM_MEMSLOTS_H
#define VMC_VMM_MEMSLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>
#include "mm/view.h"

enum promote_path {
	PROMOTE_PATH_REMAP,   /* one memslot over the window; promotion remaps the window 2 MiB
			       * (0: a VM whose owner attaches no mm view gets this) */
	PROMOTE_PATH_AUTO,    /* memslot where the kernel can drop one slot's entries alone, else remap */
	PROMOTE_PATH_MEMSLOT, /* one memslot per region, even where a switch zaps every shadow page */
};
#define PROMOTE_PATH_COUNT (PROMOTE_PATH_MEMSLOT + 1)
const char *promote_path__name(enum promote_path p);
int promote_path__parse(const char *s);   /* -1 if unknown */

/* How many memslots a VM of ram_bytes needs per region (and the one spare the check keeps). */
#define MEMSLOTS_SPARE 1

struct memslots {
	int vm_fd;
	uint8_t *ram;              /* the window: host VA of GPA 0 */
	uint64_t ram_bytes;
	uint32_t flags;            /* KVM_MEM_* of every slot */
	uint32_t nr_regions;
	enum promote_path path;    /* MEMSLOT or REMAP: what runs */
	bool zap_all_quirk_off;    /* KVM_X86_QUIRK_SLOT_ZAP_ALL disabled: a switch zaps one slot */
	char why[200];             /* why this path (the CLI prints it, stat and --json show it) */
	uint8_t **hva;             /* per region (MEMSLOT): where its slot points, NULL: no slot yet */
	uint8_t *dirty_lost;       /* per region: switched since the last dirty-log read */
	uint64_t switches;
	struct mm_view_ops view;   /* hand to mm__view_attach (MEMSLOT only) */
	/* the ioctl (tests replace it to run without KVM) */
	int (*ioctl_fn)(int fd, unsigned long req, void *arg);
};

/* What the kernel offers, read from the VM fd: slots per VM and the quirks it can disable. */
struct memslot_caps {
	int nr_memslots;           /* KVM_CAP_NR_MEMSLOTS */
	uint64_t quirks2;          /* KVM_CAP_DISABLE_QUIRKS2: mask of disableable quirks, 0 if none */
};
void memslot_caps__read(struct memslot_caps *c, int vm_fd);

/*
 * Choose the path for `want` given caps (keep_zap_quirk: leave the quirk on, as a kernel
 * without it would; the fallback test uses it), disable the quirk if chosen, and create the
 * single slot (REMAP); with MEMSLOT the slots are created by mm__view_attach(ms->view).
 * 0 or -errno with a message.
 */
int memslots__init(struct memslots *ms, int vm_fd, uint8_t *ram, uint64_t ram_bytes, uint32_t flags,
		   enum promote_path want, const struct memslot_caps *caps, bool keep_zap_quirk,
		   char *err, size_t errlen);
void memslots__destroy(struct memslots *ms);

/* Point region r's slot at hva (delete + create; the vCPUs must be paused). 0 or -errno. */
int memslots__serve(struct memslots *ms, uint32_t r, void *hva);

/* The host address guest RAM [gpa, gpa+len) is seen at, or NULL if outside RAM or (MEMSLOT)
 * it spans regions served from places that are not side by side. */
void *memslots__gpa_ptr(const struct memslots *ms, uint64_t gpa, uint64_t len);
/* Copy to/from guest RAM as the guest sees it, across region boundaries. 0 or -EFAULT. */
int memslots__read(const struct memslots *ms, uint64_t gpa, void *buf, uint64_t len);
int memslots__write(const struct memslots *ms, uint64_t gpa, const void *buf, uint64_t len);

/* Set every slot's flags (e.g. KVM_MEM_LOG_DIRTY_PAGES on or off). 0 or -errno. */
int memslots__set_flags(struct memslots *ms, uint32_t flags, char *err, size_t errlen);
/* The dirty bitmap of all guest RAM (one bit per 4 KiB page, read and cleared); a region whose
 * slot was switched since the last read counts as all dirty. 0 or -errno. */
int memslots__get_dirty(struct memslots *ms, uint64_t *bitmap, char *err, size_t errlen);

#endif
