/* util.c: small VMM helpers: monotonic time, strict parsers for sizes, counts and durations, byte counts for people. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include "vmm/util.h"

static uint64_t process_start_ns;

uint64_t util__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((constructor)) static void util__record_start(void)
{
	process_start_ns = util__now_ns();
}

uint64_t util__process_start_ns(void)
{
	return process_start_ns;
}

static int util__parse_scaled(const char *s, uint64_t *out, uint64_t unit, bool allow_byte_suffix)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	/* strtoull would skip leading white space and take a sign: digits only */
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': mul = unit; end++; break;
	case 'm': case 'M': mul = unit * unit; end++; break;
	case 'g': case 'G': mul = unit * unit * unit; end++; break;
	case 't': case 'T': mul = unit * unit * unit * unit; end++; break;
	default: break;
	}
	if (allow_byte_suffix && mul > 1 && (!strcasecmp(end, "B") || !strcasecmp(end, "iB")))
		end += strlen(end);
	if (*end)
		return -EINVAL;
	if (v && mul > UINT64_MAX / v)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

int util__parse_size(const char *s, uint64_t *out)
{
	return util__parse_scaled(s, out, 1024, true);
}

int util__parse_count(const char *s, uint64_t *out)
{
	return util__parse_scaled(s, out, 1000, false);
}

int util__parse_duration_ms(const char *s, uint64_t *out_ms)
{
	double v, mul = 1000.0;
	char num[64];
	const char *end;
	size_t n;

	/* plain decimal ("2", "0.5", ".5"): no white space, sign, exponent, hex, inf or nan */
	if (!s)
		return -EINVAL;
	n = strspn(s, "0123456789");
	if (s[n] == '.')
		n += 1 + strspn(s + n + 1, "0123456789");
	if (!n || n >= sizeof(num))
		return -EINVAL;
	if (!isdigit((unsigned char)s[0]) && !(s[0] == '.' && isdigit((unsigned char)s[1])))
		return -EINVAL;
	memcpy(num, s, n);
	num[n] = '\0';
	end = s + n;
	errno = 0;
	v = strtod(num, NULL);
	if (errno)
		return -EINVAL;
	if (!strcmp(end, "ms"))
		mul = 1.0;
	else if (!strcmp(end, "s") || !*end)
		mul = 1000.0;
	else if (!strcmp(end, "m") || !strcmp(end, "min"))
		mul = 60000.0;
	else
		return -EINVAL;
	if (v * mul > 1e15)
		return -ERANGE;
	*out_ms = (uint64_t)(v * mul + 0.5);
	return 0;
}

const char *util__human_bytes(uint64_t b, char *buf, size_t len)
{
	static const char units[] = "BKMGTP";
	double v = (double)b;
	unsigned u = 0;

	while (v >= 1024 && u < sizeof(units) - 2) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%lluB", (unsigned long long)b);
	else
		snprintf(buf, len, v < 10 && v != floor(v) ? "%.1f%c" : "%.0f%c", v, units[u]);
	return buf;
}

int util__send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}
