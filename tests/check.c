/* check.c: the failure report behind CHECK, the tests' clock. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "tests/check.h"

uint64_t tu_seed;
const char *tu_case = "";
int tu_fail_fd = 2;

void tu_fail(const char *file, int line, const char *what, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	int n;

	fflush(stdout);
	n = snprintf(msg, sizeof(msg), "%s:%d: CHECK failed: %s", file, line, what);
	if (tu_case[0] && n < (int)sizeof(msg))
		n += snprintf(msg + n, sizeof(msg) - (size_t)n, " (case %s, seed 0x%016" PRIx64 ")", tu_case, tu_seed);
	if (fmt && *fmt && n < (int)sizeof(msg) - 2) {
		n += snprintf(msg + n, sizeof(msg) - (size_t)n, ": ");
		va_start(ap, fmt);
		n += vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	if (n > (int)sizeof(msg) - 2)
		n = (int)sizeof(msg) - 2;
	msg[n++] = '\n';
	if (write(tu_fail_fd, msg, (size_t)n) < 0)
		exit(2);
	exit(1);
}

double tu_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
