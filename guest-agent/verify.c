/* verify.c: the data-integrity oracle: per-word GPA+generation signatures, checked then rewritten each pass. */
#include "agent.h"

/*
 * Every 8-byte word at guest-physical address a holds sig(a, gen) = gen << 40 | a during
 * generation gen. Pass g first checks that each word still holds generation g-1 and then
 * writes generation g; a final sweep checks the last generation. So:
 *   - a lost write (the page moved while being written) shows up as the previous
 *     generation ("stale"),
 *   - a page mapped at the wrong GPA shows up as another GPA in the low 40 bits,
 *   - a page that lost its contents shows up as zero.
 * All 512 words of every page are checked, not a sample.
 */
#define GEN_SHIFT   40
#define GPA_MASK    ((1ull << GEN_SHIFT) - 1)
#define GEN_MASK    0xffffffull
#define MAX_PRINTED 8

static inline uint64_t sig(uint64_t a, uint64_t gen)
{
	return (gen & GEN_MASK) << GEN_SHIFT | a;
}

struct verify {
	const struct vmc_boot_info *bi;
	struct vmc_hc_report *r;
	uint64_t printed;
};

static void verify__mismatch(struct verify *v, uint64_t a, uint64_t want, uint64_t got)
{
	struct vmc_hc_report *r = v->r;
	const char *what;
	int stale = (got & GPA_MASK) == a && got != want;

	if (stale)
		r->stale_words++;
	if (r->errors == 0) {
		r->first_err_gpa = a;
		r->first_err_expected = want;
		r->first_err_got = got;
	}
	r->errors++;
	if (v->printed >= MAX_PRINTED)
		return;
	v->printed++;
	if (got == 0)
		what = "zero: page contents lost";
	else if (stale)
		what = "stale generation: lost write";
	else if ((got & GPA_MASK) != a)
		what = "another GPA's data: page misplaced";
	else
		what = "garbage";
	console__printf("VERIFY MISMATCH vcpu %u gpa 0x%lx expected 0x%016lx got 0x%016lx (gen %lu vs %lu, %s)\n",
			v->bi->vcpu_id, a, want, got, want >> GEN_SHIFT, got >> GEN_SHIFT, what);
}

/* Checks page at gpa for generation `check` (if nonzero) and writes generation `write` (if nonzero). */
static void verify__page(struct verify *v, uint64_t gpa, uint64_t check, uint64_t write)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)gpa;
	uint64_t bad = 0;

	for (uint64_t i = 0; i < VMC_PAGE_SIZE / 8; i++) {
		uint64_t a = gpa + i * 8;

		if (check) {
			uint64_t got = p[i], want = sig(a, check);
			if (__builtin_expect(got != want, 0)) {
				verify__mismatch(v, a, want, got);
				bad++;
			}
		}
		if (write)
			p[i] = sig(a, write);
	}
	if (check)
		v->r->checked_words += VMC_PAGE_SIZE / 8;
	if (bad)
		v->r->bad_pages++;
}

uint32_t wl__verify(const struct vmc_boot_info *bi, struct vmc_hc_report *r)
{
	const struct vmc_workload_args *a = &bi->args;
	struct verify v = { .bi = bi, .r = r };
	struct reporter rp;
	uint64_t npages = (bi->mem_end - bi->mem_start) / VMC_PAGE_SIZE;
	uint64_t max_passes, deadline = UINT64_MAX, t0 = tsc__read();
	uint64_t gen = 0, stopped_at = npages;  /* pages [0, stopped_at) hold gen, the rest gen-1 */
	int forever = a->flags & VMC_WL_FOREVER;

	if (forever)
		max_passes = UINT64_MAX;
	else if (a->passes)
		max_passes = a->passes;
	else
		max_passes = a->duration_ms ? UINT64_MAX : 3;
	if (a->duration_ms && !forever)
		deadline = t0 + tsc__from_ms(bi, a->duration_ms);

	r->pages = npages;
	reporter__init(&rp, bi);
	while (r->passes < max_passes && tsc__read() < deadline && !agent__stop_requested(bi)) {
		gen++;
		for (uint64_t i = 0; i < npages; i++) {
			verify__page(&v, bi->mem_start + i * VMC_PAGE_SIZE, gen - 1, gen);
			if ((i & 511) == 511 && agent__stop_requested(bi)) {
				stopped_at = i + 1;
				break;
			}
		}
		if (stopped_at < npages)
			break;
		r->passes++;
		r->tsc_cycles = tsc__read() - t0;
		reporter__maybe(&rp, r);
	}
	/* Final sweep: check the last generation written everywhere. */
	for (uint64_t i = 0; gen && i < npages; i++)
		verify__page(&v, bi->mem_start + i * VMC_PAGE_SIZE, i < stopped_at ? gen : gen - 1, 0);
	r->tsc_cycles = tsc__read() - t0;

	if (r->errors) {
		console__printf("VERIFY FAILED vcpu %u: %lu bad words in %lu pages (%lu stale = lost writes), "
				"%lu words checked, first at gpa 0x%lx\n", bi->vcpu_id, r->errors, r->bad_pages,
				r->stale_words, r->checked_words, r->first_err_gpa);
		return VMC_GUEST_INTEGRITY;
	}
	return VMC_GUEST_OK;
}
