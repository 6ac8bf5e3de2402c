/* fuzz_loader.c: the ELF loader behind `run --agent PATH` (vmm/loader.c): any file, checked before it is loaded. */
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/loader.h"

#define FUZZ_RAM (4ull << 20)   /* covers [VMC_GPA_AGENT, VMC_GPA_AGENT_END) and a little more */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *ram = calloc(1, FUZZ_RAM + 4096);
	uint64_t entry = 0;
	char err[256] = "";
	int r;

	FUZZ_ASSERT(ram, "out of memory");
	memset(ram + FUZZ_RAM, 0x5a, 4096);   /* a guard page right past "RAM" */
	r = loader__load_elf(data, size, ram, FUZZ_RAM, &entry, err, sizeof(err));
	if (r == 0)
		FUZZ_ASSERT(entry >= VMC_GPA_AGENT && entry < VMC_GPA_AGENT_END, "entry 0x%llx outside the agent area",
			    (unsigned long long)entry);
	else
		FUZZ_ASSERT(err[0] && memchr(err, '\0', sizeof(err)), "refused without a message");
	for (size_t i = 0; i < 4096; i++)
		FUZZ_ASSERT(ram[FUZZ_RAM + i] == 0x5a, "the loader wrote past RAM at +%zu", i);
	for (size_t i = 0; i < VMC_GPA_AGENT && r == 0; i += 4096)
		FUZZ_ASSERT(!ram[i], "the loader wrote below the agent area at 0x%zx", i);
	free(ram);
	return 0;
}
