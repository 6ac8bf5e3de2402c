/* fuzz_workload.c: the workload spec parser (vmm/workload.c) behind `run --workload NAME[:k=v,...]`. */
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/workload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz__strdup(data, size), err[256];
	struct workload_spec ws;
	int r;

	memset(&ws, 0xa5, sizeof(ws));
	err[0] = '\0';
	r = workload__parse(s, &ws, err, sizeof(err));
	if (r == 0) {
		FUZZ_ASSERT((unsigned)ws.id < VMC_WL_COUNT, "'%s' -> workload id %u", s, (unsigned)ws.id);
		FUZZ_ASSERT(memchr(ws.spec, '\0', sizeof(ws.spec)), "'%s': spec not terminated", s);
		FUZZ_ASSERT(workload__name(ws.id) != NULL, "'%s': no name", s);
	} else {
		FUZZ_ASSERT(err[0] && memchr(err, '\0', sizeof(err)), "'%s' refused without a message", s);
	}
	free(s);
	return 0;
}
