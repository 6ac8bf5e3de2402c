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

#define AGING_DEFAULTS { .age = 0.0, .seed = 1, .ballast = 0.5, .unmovable = 0.25, \
			 .unmovable_scatter = 0.002 }

/*
 * Allocate every guest page and the ballast from the buddy allocator and bind
 * them in the gpamap according to cfg. Deterministic for a given cfg and sizes.
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
