/* fuzz_util.c: the strict size, count and duration parsers (vmm/util.c) every CLI flag goes through. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz__strdup(data, size);
	uint64_t v = 0;

	if (util__parse_size(s, &v) == 0) {
		/* accepted: digits first, and a plain number means itself */
		FUZZ_ASSERT(isdigit((unsigned char)s[0]), "size '%s' accepted", s);
		if (strspn(s, "0123456789") == strlen(s) && strlen(s) < 20)
			FUZZ_ASSERT(v == strtoull(s, NULL, 10), "size '%s' -> %llu", s, (unsigned long long)v);
	}
	if (util__parse_count(s, &v) == 0)
		FUZZ_ASSERT(isdigit((unsigned char)s[0]), "count '%s' accepted", s);
	if (util__parse_duration_ms(s, &v) == 0)
		FUZZ_ASSERT(v <= 1000000000000000ull + 1, "duration '%s' -> %llu ms", s, (unsigned long long)v);
	free(s);
	return 0;
}
