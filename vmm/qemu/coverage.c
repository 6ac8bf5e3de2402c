/* coverage.c: 2 MiB coverage of a foreign process's memory from /proc/PID/smaps, /proc/PID/pagemap and /proc/kpageflags. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/qemu/coverage.h"

#define PM_PRESENT (1ULL << 63)
#define PM_PFN_MASK ((1ULL << 55) - 1)
#define KPF_COMPOUND_HEAD 15
#define KPF_COMPOUND_TAIL 16
#define KPF_HUGE 17
#define KPF_THP 22

const char region_state_chars[] = ".4HU";

int smaps_cover__parse(FILE *smaps, uint64_t start, uint64_t end, struct smaps_cover *c)
{
	char line[512];
	bool inside = false;

	memset(c, 0, sizeof(*c));
	while (fgets(line, sizeof(line), smaps)) {
		unsigned long long a, b, kb;
		char key[64];

		if (sscanf(line, "%llx-%llx ", &a, &b) == 2 && strchr(line, ' ') &&
		    strchr(line, '-') < strchr(line, ' ')) {
			inside = a >= start && b <= end;
			if (inside) {
				c->vmas++;
				c->size += b - a;
			}
			continue;
		}
		if (!inside || sscanf(line, "%63[^:]: %llu kB", key, &kb) != 2)
			continue;
		if (!strcmp(key, "Rss"))
			c->rss += kb << 10;
		else if (!strcmp(key, "AnonHugePages") || !strcmp(key, "ShmemPmdMapped") ||
			 !strcmp(key, "FilePmdMapped"))
			c->huge += kb << 10;
		else if (!strcmp(key, "Shared_Hugetlb") || !strcmp(key, "Private_Hugetlb"))
			c->hugetlb += kb << 10;
		else if (!strcmp(key, "KernelPageSize"))
			c->kernel_page_size = kb << 10;
	}
	c->huge += c->hugetlb;
	return c->vmas ? 0 : -ENOENT;
}

int smaps_cover__read(pid_t pid, uint64_t start, uint64_t end, struct smaps_cover *c,
		      char *err, size_t errlen)
{
	char path[64];
	FILE *f;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return r == -ENOENT ? -ESRCH : r;
	}
	r = smaps_cover__parse(f, start, end, c);
	fclose(f);
	if (r < 0)
		snprintf(err, errlen, "no mapping at 0x%" PRIx64 "-0x%" PRIx64 " in %s any more",
			 start, end, path);
	return r;
}

double smaps_cover__share(const struct smaps_cover *c)
{
	return c->size ? (double)c->huge / (double)c->size : 0.0;
}

enum region_state region__classify(const uint64_t *pagemap, unsigned n, uint64_t first_flags,
				   bool flags_valid, unsigned *present)
{
	uint64_t pfn0 = pagemap[0] & PM_PFN_MASK, first_pfn = 0;
	bool contiguous = (pagemap[0] & PM_PRESENT) != 0;
	unsigned p = 0;

	for (unsigned i = 0; i < n; i++) {
		if (!(pagemap[i] & PM_PRESENT)) {
			contiguous = false;
			continue;
		}
		if (!p++)
			first_pfn = pagemap[i] & PM_PFN_MASK;
		if ((pagemap[i] & PM_PFN_MASK) != pfn0 + i)
			contiguous = false;
	}
	*present = p;
	if (!p)
		return REGION_EMPTY;
	if (!first_pfn)
		return REGION_UNKNOWN;
	if (n == REGION_PAGES && contiguous && pfn0 % REGION_PAGES == 0 && flags_valid &&
	    (first_flags & ((1ULL << KPF_THP) | (1ULL << KPF_HUGE))) &&
	    (first_flags & ((1ULL << KPF_COMPOUND_HEAD) | (1ULL << KPF_COMPOUND_TAIL))))
		return REGION_HUGE;
	return REGION_SMALL;
}

int page_scanner__open(struct page_scanner *s, pid_t pid, char *err, size_t errlen)
{
	char path[64];

	s->kpageflags_fd = -1;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	s->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->pagemap_fd < 0) {
		int r = -errno;

		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return r == -ENOENT ? -ESRCH : r;
	}
	s->kpageflags_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	s->pfns_visible = false;
	return 0;
}

int page_scanner__region(struct page_scanner *s, uint64_t va, enum region_state *state,
			 unsigned *present)
{
	ssize_t n = pread(s->pagemap_fd, s->buf, sizeof(s->buf), (off_t)(va / 4096 * 8));
	uint64_t flags = 0, pfn0;
	bool flags_valid = false;

	if (n != (ssize_t)sizeof(s->buf))
		return n < 0 ? -errno : -EIO;
	pfn0 = s->buf[0] & PM_PFN_MASK;
	if (pfn0 && (s->buf[0] & PM_PRESENT)) {
		s->pfns_visible = true;
		flags_valid = s->kpageflags_fd >= 0 &&
			      pread(s->kpageflags_fd, &flags, 8, (off_t)(pfn0 * 8)) == 8;
	}
	*state = region__classify(s->buf, REGION_PAGES, flags, flags_valid, present);
	return 0;
}

void page_scanner__close(struct page_scanner *s)
{
	if (s->pagemap_fd >= 0)
		close(s->pagemap_fd);
	if (s->kpageflags_fd >= 0)
		close(s->kpageflags_fd);
	s->pagemap_fd = s->kpageflags_fd = -1;
}

int region_map__scan(pid_t pid, uint64_t start, uint64_t end, struct region_map *m,
		     char *err, size_t errlen)
{
	struct page_scanner s;
	uint64_t first = (start + REGION_2M - 1) & ~(REGION_2M - 1);
	uint64_t last = end & ~(REGION_2M - 1);
	int r;

	memset(m, 0, sizeof(*m));
	m->first = first;
	m->nr = last > first ? (last - first) / REGION_2M : 0;
	m->state = calloc(m->nr ? m->nr : 1, 1);
	m->present = calloc(m->nr ? m->nr : 1, sizeof(*m->present));
	if (!m->state || !m->present) {
		region_map__free(m);
		return -ENOMEM;
	}
	r = page_scanner__open(&s, pid, err, errlen);
	if (r < 0) {
		region_map__free(m);
		return r;
	}
	for (size_t i = 0; i < m->nr; i++) {
		enum region_state st;
		unsigned present;

		r = page_scanner__region(&s, first + i * REGION_2M, &st, &present);
		if (r < 0) {
			snprintf(err, errlen, "cannot read PID %d's pagemap: %s", (int)pid, strerror(-r));
			break;
		}
		m->state[i] = (uint8_t)st;
		m->present[i] = (uint16_t)present;
		m->count[st]++;
	}
	m->pfns_visible = s.pfns_visible;
	page_scanner__close(&s);
	if (r < 0)
		region_map__free(m);
	return r;
}

void region_map__print(const struct region_map *m, FILE *f, unsigned width)
{
	for (size_t i = 0; i < m->nr; i++) {
		fputc(region_state_chars[m->state[i]], f);
		if ((i + 1) % width == 0 || i + 1 == m->nr)
			fputc('\n', f);
	}
}

void region_map__free(struct region_map *m)
{
	free(m->state);
	free(m->present);
	m->state = NULL;
	m->present = NULL;
	m->nr = 0;
}
