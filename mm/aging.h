/* aging.h: reproducible "long-running host" layouts of guest pages and ballast in the pool. */
#ifndef VMC_MM_AGING_H
#define VMC_MM_AGING_H

#include "mm/buddy.h"
#include "mm/gpamap.h"

struct aging_config {
	double age;              /* fraction of guest 2 MiB regions scattered (0 = linear) */
	uint64_t seed;
	double ballast;          /* fraction of the pool's slack frames held by other tenants */
	double unmovable;        /* fraction of ballast that is unmovable */
	double unmovable_scatter;/* fraction of unmovable frames scattered outside their pageblocks */
};

#define AGING_DEFAULT_BALLAST 0.5
#define AGING_DEFAULT_UNMOVABLE 0.25
#define AGING_DEFAULTS { .age = 0.0, .seed = 1, .ballast = AGING_DEFAULT_BALLAST, \
			 .unmovable = AGING_DEFAULT_UNMOVABLE, \
			 .unmovable_scatter = 0.002 }

/* What aging__place will put where, in frames (see the model in aging.c). */
struct aging_counts {
	uint32_t regions;              /* guest 2 MiB regions */
	uint32_t scattered_regions;    /* round(age * regions) */
	uint64_t ballast;              /* round(ballast * slack frames) */
	uint64_t unmovable;            /* round(unmovable * ballast) */
	uint64_t movable;              /* ballast - unmovable */
	uint64_t unmovable_scattered;  /* single frames outside unmovable pageblocks */
	uint64_t unmovable_grouped;    /* in unmovable pageblocks */
	uint32_t unmovable_blocks;     /* pageblocks marked MIGRATE_UNMOVABLE */
	uint64_t free;                 /* slack - ballast */
};
/* Validate cfg and sizes (multiples of 512 frames) and compute the counts. 0 or -EINVAL. */
int aging__counts(const struct aging_config *cfg, uint32_t nr_gpfns, uint32_t nr_frames,
		  struct aging_counts *c, char *err, size_t errlen);

/*
 * Allocate every guest page and the ballast from the buddy allocator and bind
 * them in the gpamap according to cfg. Deterministic for a given cfg and sizes.
 * Needs a fresh buddy (all free) and gpamap over the same frames; on failure
 * they are left partly filled (throw them away).
 */
int aging__place(struct buddy *b, struct gpamap *m, const struct aging_config *cfg,
		 char *err, size_t errlen);

/* A small deterministic PRNG (splitmix64 seeding xoshiro256**), shared with tests. */
struct rng { uint64_t s[4]; };
void rng__seed(struct rng *r, uint64_t seed);
uint64_t rng__next(struct rng *r);
uint64_t rng__below(struct rng *r, uint64_t n); /* uniform in [0, n) */
double rng__unit(struct rng *r);                /* uniform in [0, 1) */

#endif
