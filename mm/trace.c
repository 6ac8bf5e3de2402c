/* trace.c: the trace-file sink behind mm/trace.h's events: one timestamped line per event. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "mm/trace.h"
#include "mm/util.h"

void mm_trace__init(struct mm_trace *t, FILE *file)
{
	memset(t, 0, sizeof(*t));
	t->file = file;
	t->t0_ns = mm__now_ns();
}

int mm_trace__open(struct mm_trace *t, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "we");

	if (!f) {
		int e = errno;

		mm__set_msg(err, errlen, "cannot create trace file %s: %s", path, strerror(e));
		return -e;
	}
	mm_trace__init(t, f);
	fprintf(f, "%s\n", MM_TRACE_HEADER);
	return 0;
}

int mm_trace__close(struct mm_trace *t)
{
	int ret = 0;

	if (!t || !t->file)
		return 0;
	if (fclose(t->file))
		ret = -errno;
	t->file = NULL;
	return ret;
}

void mm_trace__emit(struct mm_trace *t, const char *event, const char *fmt, ...)
{
	char line[320];
	uint64_t ns = mm__now_ns() - t->t0_ns;
	va_list ap;
	int n, m;

	n = snprintf(line, sizeof(line), "%llu.%09llu %s: ", (unsigned long long)(ns / 1000000000ULL),
		     (unsigned long long)(ns % 1000000000ULL), event);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	n = m < 0 ? n : (n + m < (int)sizeof(line) ? n + m : (int)sizeof(line) - 1);
	__atomic_add_fetch(&t->lines, 1, __ATOMIC_RELAXED);
	if (t->write) {
		t->write(t, line, (size_t)n);
		return;
	}
	if (!t->file)
		return;
	flockfile(t->file);
	fwrite_unlocked(line, 1, (size_t)n, t->file);
	putc_unlocked('\n', t->file);
	funlockfile(t->file);
}
