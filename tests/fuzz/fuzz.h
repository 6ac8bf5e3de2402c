/* fuzz.h: what every fuzz target defines (libFuzzer's entry points) and the checks they share. */
#ifndef VMC_TESTS_FUZZ_H
#define VMC_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Abort (a finding) with a message when cond is false: libFuzzer keeps the input. */
#define FUZZ_ASSERT(cond, ...)                                             \
	do {                                                               \
		if (!(cond))                                               \
			fuzz__abort(__FILE__, __LINE__, #cond, __VA_ARGS__); \
	} while (0)

void fuzz__abort(const char *file, int line, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 4, 5), noreturn));
/* A NUL-terminated copy of data (malloc'd). */
char *fuzz__strdup(const uint8_t *data, size_t size);
/* Send stdout to /dev/null (the code under test prints; libFuzzer reports on stderr). */
void fuzz__quiet_stdout(void);

#endif
