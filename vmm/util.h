/* util.h: small VMM helpers: monotonic time and strict parsers for sizes, counts and durations. */
#ifndef VMC_VMM_UTIL_H
#define VMC_VMM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A macro's value as a string literal: usage texts print defaults from the one constant. */
#define VMC_STR_(x) #x
#define VMC_STR(x) VMC_STR_(x)

uint64_t util__now_ns(void);             /* CLOCK_MONOTONIC */
uint64_t util__process_start_ns(void);   /* CLOCK_MONOTONIC taken before main() */

/* "64M", "1G", "4096", "2k": K/M/G/T suffixes (powers of 1024, optional trailing B/iB). */
/* Send all of buf on a socket (EINTR retried, no SIGPIPE). 0 or -errno. */
int util__send_all(int fd, const void *buf, size_t len);
int util__parse_size(const char *s, uint64_t *out);
/* Decimal unsigned integer, optional K/M/G suffix (powers of 1000). */
int util__parse_count(const char *s, uint64_t *out);
/* Seconds with optional fraction ("2", "0.5") or with a unit suffix ms/s/m; result in ms. */
int util__parse_duration_ms(const char *s, uint64_t *out_ms);

/* 1536 -> "1.5K", 3 << 30 -> "3G" (powers of 1024), into buf. */
const char *util__human_bytes(uint64_t b, char *buf, size_t len);

#endif
