/* test_units.c: unit tests of the VMM core's pure pieces (no KVM): parsers, workload specs, ELF loader, page tables. */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vmm/loader.h"
#include "vmm/util.h"
#include "vmm/vm.h"
#include "vmm/json.h"
#include "vmm/workload.h"
#include "tests/check.h"


static void test_sizes(void)
{
	uint64_t v = 0;

	CHECK(!util__parse_size("64M", &v) && v == 64ull << 20);
	CHECK(!util__parse_size("1G", &v) && v == 1ull << 30);
	CHECK(!util__parse_size("2g", &v) && v == 2ull << 30);
	CHECK(!util__parse_size("512MiB", &v) && v == 512ull << 20);
	CHECK(!util__parse_size("4k", &v) && v == 4096);
	CHECK(!util__parse_size("4096", &v) && v == 4096);
	CHECK(util__parse_size("", &v));
	CHECK(util__parse_size("-1G", &v));
	CHECK(util__parse_size("1X", &v));
	CHECK(util__parse_size("1GG", &v));
	CHECK(util__parse_size("G", &v));
	CHECK(util__parse_size("99999999999T", &v));
	CHECK(!util__parse_count("10M", &v) && v == 10000000);
	CHECK(!util__parse_count("7", &v) && v == 7);
	CHECK(util__parse_count("1.5", &v));
	CHECK(!util__parse_duration_ms("2", &v) && v == 2000);
	CHECK(!util__parse_duration_ms("0.5", &v) && v == 500);
	CHECK(!util__parse_duration_ms("250ms", &v) && v == 250);
	CHECK(!util__parse_duration_ms("1m", &v) && v == 60000);
	CHECK(util__parse_duration_ms("abc", &v));
	CHECK(util__parse_duration_ms("-3", &v));
	CHECK(util__parse_duration_ms("3h", &v));
	/* found by fuzzing (issue 13): white space, signs and non-decimal numbers are refused */
	CHECK(util__parse_size("\t3M", &v) && util__parse_size("\n7", &v) && util__parse_count(" 7", &v));
	CHECK(util__parse_count("\v1", &v) && util__parse_size("+1", &v));
	CHECK(util__parse_duration_ms("\t2", &v) && util__parse_duration_ms("inf", &v));
	CHECK(util__parse_duration_ms("nan", &v) && util__parse_duration_ms("0x10", &v));
	CHECK(util__parse_duration_ms("1e3", &v) && util__parse_duration_ms(".", &v));
	CHECK(!util__parse_duration_ms(".5", &v) && v == 500);
	CHECK(!util__parse_duration_ms("1.", &v) && v == 1000);
}

static void test_workloads(void)
{
	struct workload_spec w;
	char err[256];

	CHECK(!workload__parse("touch", &w, err, sizeof(err)) && w.id == VMC_WL_TOUCH);
	CHECK(!workload__parse("verify", &w, err, sizeof(err)) && w.id == VMC_WL_VERIFY && !w.args.flags);
	CHECK(!workload__parse("verify:passes=5", &w, err, sizeof(err)) && w.args.passes == 5);
	CHECK(!workload__parse("verify:passes=0", &w, err, sizeof(err)) && (w.args.flags & VMC_WL_FOREVER));
	CHECK(!workload__parse("verify:forever", &w, err, sizeof(err)) && (w.args.flags & VMC_WL_FOREVER));
	CHECK(!workload__parse("verify:seconds=1.5", &w, err, sizeof(err)) && w.args.duration_ms == 1500);
	CHECK(!workload__parse("gups:ws=64M,updates=1M,seed=7", &w, err, sizeof(err)) &&
	      w.id == VMC_WL_GUPS && w.args.ws_bytes == 64ull << 20 && w.args.updates == 1000000 && w.args.seed == 7);
	CHECK(!workload__parse("stream:passes=2,ws=16M", &w, err, sizeof(err)) && w.args.passes == 2);
	CHECK(!workload__parse("chase:ws=64M,accesses=2M,seed=3,page", &w, err, sizeof(err)) &&
	      w.id == VMC_WL_CHASE && w.args.ws_bytes == 64ull << 20 && w.args.updates == 2000000 &&
	      w.args.seed == 3 && (w.args.flags & VMC_WL_CHASE_PAGE));
	CHECK(workload__parse("chase:updates=5", &w, err, sizeof(err)));   /* chase counts accesses */
	CHECK(workload__parse("gups:page", &w, err, sizeof(err)));
	CHECK(!workload__parse("forever", &w, err, sizeof(err)) && w.id == VMC_WL_VERIFY &&
	      (w.args.flags & VMC_WL_FOREVER));
	CHECK(!workload__parse("forever:gups", &w, err, sizeof(err)) && w.id == VMC_WL_GUPS &&
	      (w.args.flags & VMC_WL_FOREVER));
	CHECK(!workload__parse("forever:gups,ws=8M", &w, err, sizeof(err)) && w.id == VMC_WL_GUPS &&
	      w.args.ws_bytes == 8ull << 20 && (w.args.flags & VMC_WL_FOREVER));
	CHECK(workload__parse("forever:ws=8M", &w, err, sizeof(err)));   /* verify takes no ws */
	CHECK(!workload__parse("idle", &w, err, sizeof(err)) && w.id == VMC_WL_IDLE);
	CHECK(!workload__parse("noop", &w, err, sizeof(err)) && w.id == VMC_WL_NOOP);
	CHECK(!workload__parse("fault:badptr", &w, err, sizeof(err)) && w.id == VMC_WL_FAULT &&
	      w.args.fault == VMC_FAULT_BADPTR);
	CHECK(!workload__parse("fault:triple", &w, err, sizeof(err)) && w.args.fault == VMC_FAULT_TRIPLE);
	/* errors */
	CHECK(workload__parse("nosuch", &w, err, sizeof(err)));
	CHECK(workload__parse("fault", &w, err, sizeof(err)));
	CHECK(workload__parse("fault:nosuch", &w, err, sizeof(err)));
	CHECK(workload__parse("touch:passes=2", &w, err, sizeof(err)));
	CHECK(workload__parse("idle:forever", &w, err, sizeof(err)));
	CHECK(workload__parse("verify:ws=1M", &w, err, sizeof(err)));
	CHECK(workload__parse("gups:updates=0", &w, err, sizeof(err)));
	CHECK(workload__parse("gups:ws=12", &w, err, sizeof(err)));
	CHECK(workload__parse("gups:ws", &w, err, sizeof(err)));
	CHECK(workload__parse("verify:", &w, err, sizeof(err)));
	CHECK(workload__parse("verify:passes=1,,", &w, err, sizeof(err)));
	CHECK(workload__parse("forever:idle", &w, err, sizeof(err)));
	CHECK(workload__parse("forever:touch", &w, err, sizeof(err)));
	CHECK(workload__parse("", &w, err, sizeof(err)));
	CHECK(workload__parse("verify:bogus=1", &w, err, sizeof(err)) && strstr(err, "bogus"));
}

/* A minimal valid ELF image: one PT_LOAD of 16 bytes code at VMC_GPA_AGENT, 64 bytes memsz. */
struct tiny_elf {
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	uint8_t code[16];
};

static void tiny_elf__init(struct tiny_elf *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->eh.e_ident, ELFMAG, SELFMAG);
	e->eh.e_ident[EI_CLASS] = ELFCLASS64;
	e->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	e->eh.e_ident[EI_VERSION] = EV_CURRENT;
	e->eh.e_type = ET_EXEC;
	e->eh.e_machine = EM_X86_64;
	e->eh.e_version = EV_CURRENT;
	e->eh.e_entry = VMC_GPA_AGENT;
	e->eh.e_phoff = offsetof(struct tiny_elf, ph);
	e->eh.e_ehsize = sizeof(Elf64_Ehdr);
	e->eh.e_phentsize = sizeof(Elf64_Phdr);
	e->eh.e_phnum = 1;
	e->ph.p_type = PT_LOAD;
	e->ph.p_flags = PF_R | PF_X;
	e->ph.p_offset = offsetof(struct tiny_elf, code);
	e->ph.p_vaddr = e->ph.p_paddr = VMC_GPA_AGENT;
	e->ph.p_filesz = sizeof(e->code);
	e->ph.p_memsz = 64;
	memset(e->code, 0xcc, sizeof(e->code));
}

static void test_loader(const char *agent_path)
{
	uint64_t ram_bytes = 8ull << 20, entry = 0;
	uint8_t *ram = calloc(1, ram_bytes);
	struct tiny_elf e;
	char err[256];

	tiny_elf__init(&e);
	memset(ram + VMC_GPA_AGENT, 0x55, 4096);
	CHECK(!loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)));
	CHECK(entry == VMC_GPA_AGENT);
	CHECK(ram[VMC_GPA_AGENT] == 0xcc && ram[VMC_GPA_AGENT + 15] == 0xcc);
	CHECK(ram[VMC_GPA_AGENT + 16] == 0 && ram[VMC_GPA_AGENT + 63] == 0);   /* bss zeroed */
	CHECK(ram[VMC_GPA_AGENT + 64] == 0x55);                                /* untouched */

	tiny_elf__init(&e); e.eh.e_ident[3] = 'X';
	CHECK(loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)));
	tiny_elf__init(&e); e.eh.e_ident[EI_CLASS] = ELFCLASS32;
	CHECK(loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)));
	tiny_elf__init(&e); e.eh.e_machine = EM_AARCH64;
	CHECK(loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)));
	tiny_elf__init(&e); e.eh.e_type = ET_DYN;
	CHECK(loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)) && strstr(err, "ET_EXEC"));
	tiny_elf__init(&e); e.eh.e_phoff = 1 << 20;
	CHECK(loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)));
	tiny_elf__init(&e); e.eh.e_phnum = 0;
	CHECK(loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)));
	tiny_elf__init(&e); e.ph.p_paddr = e.ph.p_vaddr = 0x1000;           /* over page tables */
	CHECK(loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)));
	tiny_elf__init(&e); e.ph.p_memsz = 2u << 20;                         /* past agent area */
	CHECK(loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)));
	tiny_elf__init(&e); e.ph.p_paddr = e.ph.p_vaddr = ~0ull - 8;          /* wraps */
	CHECK(loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)));
	tiny_elf__init(&e); e.ph.p_filesz = 128;                             /* filesz > memsz */
	CHECK(loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)));
	tiny_elf__init(&e); e.ph.p_offset = 1 << 20;                         /* past file end */
	CHECK(loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)));
	tiny_elf__init(&e); e.eh.e_entry = VMC_GPA_AGENT + 0x1000;           /* entry outside */
	CHECK(loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)) && strstr(err, "entry"));
	tiny_elf__init(&e); e.ph.p_flags = PF_R;                             /* entry not exec */
	CHECK(loader__load_elf(&e, sizeof(e), ram, ram_bytes, &entry, err, sizeof(err)));
	tiny_elf__init(&e);
	CHECK(loader__load_elf(&e, 40, ram, ram_bytes, &entry, err, sizeof(err)));   /* truncated */

	if (agent_path) {   /* the real agent loads */
		void *img;
		size_t len;

		CHECK(!loader__read_file(agent_path, &img, &len, err, sizeof(err)));
		{
			CHECK(!loader__load_elf(img, len, ram, ram_bytes, &entry, err, sizeof(err)));
			CHECK(entry >= VMC_GPA_AGENT && entry < VMC_GPA_AGENT_END);
			free(img);
		}
	}
	CHECK(loader__read_file("/nonexistent/agent", &(void *){ NULL }, &(size_t){ 0 }, err, sizeof(err)));
	free(ram);
}

static void test_page_tables(void)
{
	uint64_t ram_bytes = 1ull << 30;  /* 1 GiB + hole page: needs 2 PDs */
	uint8_t *ram = calloc(1, 8ull << 20);
	uint64_t *pml4 = (uint64_t *)(ram + VMC_GPA_PML4), *pdpt = (uint64_t *)(ram + VMC_GPA_PDPT);
	uint64_t *pd = (uint64_t *)(ram + VMC_GPA_PD);
	char err[256];

	CHECK(!loader__setup_page_tables(ram, ram_bytes, err, sizeof(err)));
	CHECK((pml4[0] & ~0xfffull) == VMC_GPA_PDPT && (pml4[0] & 7) == 7);
	CHECK((pdpt[0] & ~0xfffull) == VMC_GPA_PD && (pdpt[1] & ~0xfffull) == VMC_GPA_PD + 4096 && pdpt[2] == 0);
	CHECK((pd[0] & 0x87) == 0x87 && (pd[0] & ~0x1fffffull) == 0);
	CHECK((pd[511] & ~0x1fffffull) == (511ull << 21));
	CHECK((pd[512] & ~0x1fffffull) == (1ull << 30) && (pd[512] & 0x87) == 0x87);   /* hole */
	CHECK(pd[513] == 0);
	CHECK(loader__setup_page_tables(ram, (1ull << 30) + 4096, err, sizeof(err)));
	CHECK(loader__setup_page_tables(ram, 4ull << 20, err, sizeof(err)));
	CHECK(loader__setup_page_tables(ram, VMC_MAX_RAM + (2ull << 20), err, sizeof(err)));
	/* The biggest RAM's tables stay below the boot info pages. */
	CHECK(VMC_GPA_PD + ((VMC_MAX_RAM + (2ull << 20) + (1ull << 30) - 1) >> 30) * 4096 <= VMC_GPA_BOOT_INFO);
	CHECK(VMC_BOOT_INFO_GPA(VMC_MAX_VCPUS) <= VMC_GPA_AGENT);
	CHECK(VMC_STACK_TOP(VMC_MAX_VCPUS - 1) <= VMC_GPA_WORKLOAD);
	CHECK(sizeof(struct vmc_boot_info) <= VMC_PAGE_SIZE);
	free(ram);
}

static void test_slices(void)
{
	uint64_t s, e, prev_end = VMC_GPA_WORKLOAD;

	for (uint32_t i = 0; i < 3; i++) {
		CHECK(!loader__slice(256ull << 20, 3, i, &s, &e));
		CHECK(s == prev_end && s % VMC_HUGE_SIZE == 0 && e % VMC_HUGE_SIZE == 0 && e > s);
		prev_end = e;
	}
	CHECK(prev_end == 256ull << 20);
	CHECK(!loader__slice(8ull << 20, 2, 1, &s, &e) && s == 6ull << 20 && e == 8ull << 20);
	CHECK(loader__slice(8ull << 20, 3, 0, &s, &e));
	CHECK(loader__slice(256ull << 20, 2, 2, &s, &e));
}

/* The checked accessors for guest memory, one memslot over RAM. */
static void test_guest_access(void)
{
	static uint8_t buf[64];
	uint8_t out[64];
	struct vm vm;

	memset(&vm, 0, sizeof(vm));
	vm.ram = buf;
	vm.ram_bytes = sizeof(buf);
	vm.slots.ram = buf;  /* one memslot over RAM, as vm__create makes with promote path remap */
	vm.slots.ram_bytes = sizeof(buf);
	memset(buf, 7, sizeof(buf));
	CHECK(vm__read_guest(&vm, 0, out, 64) == 0 && out[63] == 7);
	CHECK(vm__write_guest(&vm, 48, "0123456789abcdef", 16) == 0 && buf[48] == '0' && buf[63] == 'f');
	CHECK(vm__read_guest(&vm, 64, out, 0) == 0);
	CHECK(vm__read_guest(&vm, 49, out, 16) == -EFAULT);
	CHECK(vm__write_guest(&vm, 1, out, 64) == -EFAULT);
	CHECK(vm__read_guest(&vm, 65, out, 0) == -EFAULT);
	CHECK(vm__read_guest(&vm, UINT64_MAX - 4, out, 16) == -EFAULT);
	CHECK(vm__read_guest(&vm, 8, out, UINT64_MAX) == -EFAULT);
}

/* A fake KVM for the per-region memslots: slots by id, overlaps refused as KVM does. */
#define FAKE_SLOTS 8
static struct kvm_userspace_memory_region fake_slot[FAKE_SLOTS];
static uint64_t fake_quirks_disabled, fake_dirty_calls;
static int fake_fail_create;   /* non-zero: the next create fails with -ENOMEM */

static int fake_kvm_ioctl(int fd, unsigned long req, void *arg)
{
	if (req == KVM_SET_USER_MEMORY_REGION) {
		struct kvm_userspace_memory_region *r = arg;

		if (r->slot >= FAKE_SLOTS)
			return -EINVAL;
		if (r->memory_size && fake_fail_create) {
			fake_fail_create = 0;
			return -ENOMEM;
		}
		for (int i = 0; r->memory_size && i < FAKE_SLOTS; i++)
			if (i != (int)r->slot && fake_slot[i].memory_size &&
			    r->guest_phys_addr < fake_slot[i].guest_phys_addr + fake_slot[i].memory_size &&
			    fake_slot[i].guest_phys_addr < r->guest_phys_addr + r->memory_size)
				return -EEXIST;
		/* KVM: a live slot's address cannot change, only its flags */
		if (r->memory_size && fake_slot[r->slot].memory_size &&
		    fake_slot[r->slot].userspace_addr != r->userspace_addr)
			return -EINVAL;
		fake_slot[r->slot] = *r;
		return 0;
	}
	if (req == KVM_ENABLE_CAP) {
		fake_quirks_disabled |= ((struct kvm_enable_cap *)arg)->args[0];
		return 0;
	}
	if (req == KVM_GET_DIRTY_LOG) {
		struct kvm_dirty_log *l = arg;

		fake_dirty_calls++;
		memset(l->dirty_bitmap, 0, 512 / 8);
		((uint64_t *)l->dirty_bitmap)[0] = 1;  /* page 0 of each slot written */
		return 0;
	}
	return -ENOTTY;
}

static void memslots_init(struct memslots *ms, uint8_t *ram, uint64_t bytes, enum promote_path want,
			  int nr_memslots, uint64_t quirks2, bool keep_quirk, int expect_rc)
{
	struct memslot_caps caps = { .nr_memslots = nr_memslots, .quirks2 = quirks2 };
	char err[256] = "";
	int rc;

	memset(fake_slot, 0, sizeof(fake_slot));
	fake_quirks_disabled = 0;
	memset(ms, 0, sizeof(*ms));
	ms->ioctl_fn = fake_kvm_ioctl;
	rc = memslots__init(ms, 3, ram, bytes, 0, want, &caps, keep_quirk, err, sizeof(err));
	CHECKF(rc == expect_rc, "memslots__init: %d (%s), want %d", rc, err, expect_rc);
	if (rc)
		CHECKF(strstr(err, "memslots") != NULL, "error '%s'", err);
}

/* issue 9: per-region memslots: which path runs and why, switches, accessors across regions,
 * dirty logs of switched regions. */
static void test_memslots(void)
{
	enum { R = 2u << 20 };
	uint8_t *ram = aligned_alloc(R, 2 * R), *direct = aligned_alloc(R, R);
	uint8_t out[32];
	uint64_t bitmap[2 * 8];
	struct memslots ms;
	char err[256];

	CHECK(ram && direct);
	memset(ram, 'w', 2 * R);
	memset(direct, 'd', R);

	/* Which path runs: */
	memslots_init(&ms, ram, 2 * R, PROMOTE_PATH_AUTO, 509, 0x5ff, false, 0);
	CHECK(ms.path == PROMOTE_PATH_MEMSLOT && ms.zap_all_quirk_off && fake_quirks_disabled == (1u << 7));
	CHECK(strstr(ms.why, "disabled") != NULL);
	memslots__destroy(&ms);
	memslots_init(&ms, ram, 2 * R, PROMOTE_PATH_AUTO, 509, 0x7f, false, 0);   /* kernel < 6.12 */
	CHECK(ms.path == PROMOTE_PATH_REMAP && strstr(ms.why, "cannot disable") && fake_slot[0].memory_size == 2 * R);
	memslots__destroy(&ms);
	memslots_init(&ms, ram, 2 * R, PROMOTE_PATH_AUTO, 509, 0x5ff, true, 0);    /* simulated */
	CHECK(ms.path == PROMOTE_PATH_REMAP && strstr(ms.why, "kept on") && !fake_quirks_disabled);
	memslots__destroy(&ms);
	memslots_init(&ms, ram, 2 * R, PROMOTE_PATH_AUTO, 2, 0x5ff, false, 0);      /* too few slots */
	CHECK(ms.path == PROMOTE_PATH_REMAP && strstr(ms.why, "more memslots"));
	memslots__destroy(&ms);
	memslots_init(&ms, ram, 2 * R, PROMOTE_PATH_MEMSLOT, 2, 0x5ff, false, -EINVAL);
	memslots_init(&ms, ram, 2 * R, PROMOTE_PATH_MEMSLOT, 509, 0, false, 0);      /* forced, zap-all */
	CHECK(ms.path == PROMOTE_PATH_MEMSLOT && !ms.zap_all_quirk_off && strstr(ms.why, "zaps every"));
	memslots__destroy(&ms);
	CHECK(promote_path__parse("memslot") == PROMOTE_PATH_MEMSLOT && promote_path__parse("x") == -1);

	/* Switches: region 0 on the window, region 1 on its "block"; back and forth. */
	memslots_init(&ms, ram, 2 * R, PROMOTE_PATH_MEMSLOT, 509, 0x5ff, false, 0);
	CHECK(memslots__serve(&ms, 0, ram) == 0 && memslots__serve(&ms, 1, ram + R) == 0);
	CHECK(fake_slot[1].userspace_addr == (uintptr_t)(ram + R) && fake_slot[1].guest_phys_addr == R);
	CHECK(memslots__serve(&ms, 1, direct) == 0 && fake_slot[1].userspace_addr == (uintptr_t)direct);
	CHECK(memslots__gpa_ptr(&ms, R + 5, 8) == direct + 5);
	CHECK(memslots__gpa_ptr(&ms, R - 4, 8) == NULL);          /* window | block: not side by side */
	CHECK(memslots__read(&ms, R - 4, out, 8) == 0 && !memcmp(out, "wwwwdddd", 8));
	CHECK(memslots__write(&ms, R - 2, "ABCD", 4) == 0 && ram[R - 1] == 'B' && direct[0] == 'C' &&
	      direct[1] == 'D' && ram[R] == 'w');
	CHECK(memslots__read(&ms, 2 * R - 4, out, 8) == -EFAULT);
	/* A failed create puts the old slot back. */
	fake_fail_create = 1;
	CHECK(memslots__serve(&ms, 1, ram + R) == -ENOMEM);
	CHECK(ms.hva[1] == direct && fake_slot[1].userspace_addr == (uintptr_t)direct && fake_slot[1].memory_size == R);
	/* Dirty logs: a switched region counts as all dirty once, then KVM's log again. */
	CHECK(memslots__set_flags(&ms, KVM_MEM_LOG_DIRTY_PAGES, err, sizeof(err)) == 0);
	CHECK(fake_slot[0].flags == KVM_MEM_LOG_DIRTY_PAGES && fake_slot[1].flags == KVM_MEM_LOG_DIRTY_PAGES);
	CHECK(memslots__serve(&ms, 1, ram + R) == 0 && fake_slot[1].flags == KVM_MEM_LOG_DIRTY_PAGES);
	CHECK(memslots__get_dirty(&ms, bitmap, err, sizeof(err)) == 0 && fake_dirty_calls == 2);
	CHECK(bitmap[0] == 1 && bitmap[7] == 0 && bitmap[8] == UINT64_MAX && bitmap[15] == UINT64_MAX);
	CHECK(memslots__get_dirty(&ms, bitmap, err, sizeof(err)) == 0 && bitmap[8] == 1 && bitmap[15] == 0);
	memslots__destroy(&ms);
	free(ram);
	free(direct);
}

/* issue 13: the pause statistics keep stop latency and held time apart (no vCPUs: no KVM needed) */
static void test_pause_stats(void)
{
	struct vm vm;

	memset(&vm, 0, sizeof(vm));
	CHECK(pthread_mutex_init(&vm.lock, NULL) == 0);
	CHECK(pthread_cond_init(&vm.parked_cond, NULL) == 0 && pthread_cond_init(&vm.wake_cond, NULL) == 0);
	vm__pause(&vm);
	usleep(3000);
	vm__pause(&vm);      /* nested: still one held period */
	vm__resume(&vm);
	usleep(1000);
	vm__resume(&vm);
	CHECK_EQ(vm.pause.count, 2);
	CHECKF(vm.pause.held_max_ns >= 4000000, "held %llu ns", (unsigned long long)vm.pause.held_max_ns);
	CHECK(vm.pause.held_total_ns == vm.pause.held_max_ns);
	CHECK(vm.pause.max_ns < vm.pause.held_max_ns);   /* stopping 0 vCPUs is quick */
	pthread_cond_destroy(&vm.parked_cond);
	pthread_cond_destroy(&vm.wake_cond);
	pthread_mutex_destroy(&vm.lock);
}

/* The UTF-8 check the control server and its tests rely on, against known vectors. */
static void test_utf8(void)
{
	static const struct { const char *s; bool ok; } v[] = {
		{ "plain", true }, { "caf\xc3\xa9", true }, { "\xe2\x82\xac", true }, { "\xf0\x9f\x98\x80", true },
		{ "\xc0\xaf", false },            /* overlong '/' */
		{ "\xe0\x80\xaf", false },        /* overlong, 3 bytes */
		{ "\xed\xa0\x80", false },        /* surrogate U+D800 */
		{ "\xf4\x90\x80\x80", false },    /* past U+10FFFF */
		{ "\xc3", false },                /* cut short */
		{ "\x80", false },                /* lone continuation byte */
		{ "\xfe", false },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		CHECKF(json__utf8_valid(v[i].s, strlen(v[i].s)) == v[i].ok, "vector %zu", i);
}

int main(int argc, char **argv)
{
	test_guest_access();
	test_memslots();
	test_utf8();
	test_sizes();
	test_workloads();
	test_loader(argc > 1 ? argv[1] : NULL);
	test_page_tables();
	test_slices();
	test_pause_stats();
	printf("vmm units: all checks passed\n");
	return 0;
}
