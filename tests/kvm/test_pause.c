/* test_pause.c: drives struct vm directly: pause/resume blocks every vCPU, and the verify oracle catches host-side corruption. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "vmm/loader.h"
#include "vmm/util.h"
#include "vmm/vm.h"
#include "tests/check.h"

#define SKIP 77
#define RAM  (64ull << 20)

static int failures;


static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

struct guest {
	uint8_t *ram;
	struct vm vm;
};

static int guest__boot(struct guest *g, const char *agent, uint32_t cpus, uint32_t wl,
		       const struct vmc_workload_args *args)
{
	struct vm_config cfg = { 0 };
	struct vm_workload w = { .id = wl, .args = *args };
	char err[512];
	void *elf;
	size_t len;

	g->ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->ram == MAP_FAILED)
		return -errno;
	cfg.ram = g->ram;
	cfg.ram_bytes = RAM;
	cfg.nr_vcpus = cpus;
	cfg.console = stderr;
	if (loader__read_file(agent, &elf, &len, err, sizeof(err)) ||
	    vm__create(&g->vm, &cfg, err, sizeof(err)) ||
	    vm__setup_guest(&g->vm, elf, len, &w, 1, err, sizeof(err)) ||
	    vm__start(&g->vm, err, sizeof(err))) {
		fprintf(stderr, "boot: %s\n", err);
		return -1;
	}
	free(elf);
	return 0;
}

static void guest__end(struct guest *g)
{
	vm__destroy(&g->vm);
	munmap(g->ram, RAM);
}

static uint64_t guest__checksum(struct guest *g, uint64_t start, uint64_t len)
{
	uint64_t sum = 0;

	for (uint64_t i = 0; i < len; i += 8)
		sum = sum * 31 + *(volatile uint64_t *)(g->ram + start + i);
	return sum;
}

static void wait_reports(struct guest *g, uint32_t id, uint64_t n)
{
	for (int i = 0; i < 1000; i++) {
		struct vmc_hc_report r;
		uint64_t nr;

		vcpu__get_report(&g->vm.vcpus[id], &r, &nr);
		if (nr >= n)
			return;
		sleep_ms(10);
	}
}

/* While paused, no vCPU is running guest code: guest memory must not change. */
static void test_pause_freezes(const char *agent)
{
	struct vmc_workload_args args = { .flags = VMC_WL_FOREVER };
	struct guest g;
	uint64_t s, e;

	if (guest__boot(&g, agent, 2, VMC_WL_VERIFY, &args)) {
		failures++;
		return;
	}
	loader__slice(RAM, 2, 0, &s, &e);
	wait_reports(&g, 0, 1);
	for (int i = 0; i < 200; i++) {
		uint64_t a, b;

		vm__pause(&g.vm);
		CHECKF(g.vm.nr_parked + g.vm.nr_exited == 2, "parked %u exited %u", g.vm.nr_parked, g.vm.nr_exited);
		CHECKF(g.vm.vcpus[0].state == VCPU_PARKED && g.vm.vcpus[1].state == VCPU_PARKED, "not parked");
		a = guest__checksum(&g, s, 256 << 10);
		if (i % 20 == 0)
			sleep_ms(5);
		b = guest__checksum(&g, s, 256 << 10);
		CHECKF(a == b, "guest memory changed while paused (iteration %d)", i);
		vm__resume(&g.vm);
		usleep(500);
	}
	/* Nested pause. */
	vm__pause(&g.vm);
	vm__pause(&g.vm);
	vm__resume(&g.vm);
	CHECKF(g.vm.pause_req, "inner resume unpaused the VM");
	vm__resume(&g.vm);
	CHECKF(!g.vm.pause_req, "outer resume left the VM paused");

	vm__request_stop(&g.vm);
	for (int i = 0; i < 500 && !vm__all_exited(&g.vm); i++)
		sleep_ms(10);
	CHECKF(vm__all_exited(&g.vm), "guest did not stop");
	vm__join(&g.vm);
	CHECKF(vm__exit_code(&g.vm) == 0, "exit code %d", vm__exit_code(&g.vm));
	CHECKF(g.vm.vcpus[0].report.errors == 0 && g.vm.vcpus[0].report.passes > 0, "errors %llu passes %llu",
	      (unsigned long long)g.vm.vcpus[0].report.errors, (unsigned long long)g.vm.vcpus[0].report.passes);
	printf("pause: %llu pauses of 2 running vCPUs, avg %.1f us, max %.1f us\n",
	       (unsigned long long)g.vm.pause.count, (double)g.vm.pause.total_ns / (double)g.vm.pause.count / 1e3,
	       (double)g.vm.pause.max_ns / 1e3);
	guest__end(&g);
}

/* A sleeping vCPU counts as parked: pause returns without waiting for its sleep to end. */
static void test_pause_idle(const char *agent)
{
	struct vmc_workload_args args = { 0 };
	struct guest g;
	uint64_t t0;

	if (guest__boot(&g, agent, 1, VMC_WL_IDLE, &args)) {
		failures++;
		return;
	}
	sleep_ms(50);
	t0 = util__now_ns();
	vm__pause(&g.vm);
	CHECKF(util__now_ns() - t0 < 100000000ull, "pause of a sleeping vCPU took %llu ns",
	      (unsigned long long)(util__now_ns() - t0));
	/* A stop while paused is only acted on after resume. */
	vm__request_stop(&g.vm);
	sleep_ms(20);
	CHECKF(!vm__all_exited(&g.vm), "vCPU ran while paused");
	vm__resume(&g.vm);
	for (int i = 0; i < 300 && !vm__all_exited(&g.vm); i++)
		sleep_ms(10);
	CHECKF(vm__all_exited(&g.vm), "idle guest did not stop");
	vm__join(&g.vm);
	CHECKF(vm__exit_code(&g.vm) == 0, "exit code %d", vm__exit_code(&g.vm));
	guest__end(&g);
}

/* The oracle must catch a lost write: put a page's previous generation back while paused. */
static void test_oracle_catches_stale(const char *agent)
{
	struct vmc_workload_args args = { .flags = VMC_WL_FOREVER };
	uint8_t saved[4096];
	struct vmc_hc_report r;
	struct guest g;
	uint64_t s, e, victim;

	if (guest__boot(&g, agent, 1, VMC_WL_VERIFY, &args)) {
		failures++;
		return;
	}
	loader__slice(RAM, 1, 0, &s, &e);
	victim = s + (1ull << 20) + 5 * 4096;
	wait_reports(&g, 0, 1);
	vm__pause(&g.vm);
	memcpy(saved, g.ram + victim, sizeof(saved));
	vm__resume(&g.vm);
	sleep_ms(300);                      /* several passes: the page moves on */
	vm__pause(&g.vm);
	CHECKF(memcmp(saved, g.ram + victim, sizeof(saved)), "page did not change in 300 ms");
	memcpy(g.ram + victim, saved, sizeof(saved));   /* "lost writes": old generation */
	*(uint64_t *)(g.ram + victim + 8) ^= 1ull << 12; /* and one misplaced word */
	vm__resume(&g.vm);
	sleep_ms(100);
	vm__request_stop(&g.vm);
	for (int i = 0; i < 500 && !vm__all_exited(&g.vm); i++)
		sleep_ms(10);
	vm__join(&g.vm);
	vcpu__get_report(&g.vm.vcpus[0], &r, NULL);
	CHECKF(r.errors == 512, "errors %llu, want 512", (unsigned long long)r.errors);
	CHECKF(r.stale_words == 511, "stale %llu, want 511", (unsigned long long)r.stale_words);
	CHECKF(r.bad_pages == 1, "bad pages %llu", (unsigned long long)r.bad_pages);
	CHECKF(r.first_err_gpa == victim, "first error at 0x%llx, want 0x%llx",
	      (unsigned long long)r.first_err_gpa, (unsigned long long)victim);
	CHECKF(vm__exit_code(&g.vm) == VMC_GUEST_INTEGRITY, "exit code %d, want %u", vm__exit_code(&g.vm),
	      VMC_GUEST_INTEGRITY);
	guest__end(&g);
}

/* A guest access to a PROT_NONE page of guest RAM: KVM_RUN fails with EFAULT and the VM
 * stops with a clear error naming the vCPU and RIP. */
static void test_efault(const char *agent)
{
	struct vmc_workload_args args = { .flags = VMC_WL_FOREVER };
	struct guest g;
	uint8_t *page;
	uint64_t s, e;

	if (guest__boot(&g, agent, 1, VMC_WL_VERIFY, &args)) {
		failures++;
		return;
	}
	loader__slice(RAM, 1, 0, &s, &e);
	wait_reports(&g, 0, 1);
	vm__pause(&g.vm);
	page = g.ram + s + (3ull << 20);
	/* Drop the old mapping's KVM entries too: the page must be faulted in again. */
	CHECKF(!mprotect(page, 4096, PROT_NONE), "mprotect: %s", strerror(errno));
	vm__resume(&g.vm);
	for (int i = 0; i < 300 && !vm__all_exited(&g.vm); i++)
		sleep_ms(10);
	CHECKF(vm__all_exited(&g.vm), "guest still running");
	vm__join(&g.vm);
	CHECKF(vm__exit_code(&g.vm) == VMC_EXIT_GUEST_FAULT, "exit code %d", vm__exit_code(&g.vm));
	CHECKF(strstr(g.vm.fail_msg, "EFAULT") && strstr(g.vm.fail_msg, "rip 0x"), "message: %s", g.vm.fail_msg);
	mprotect(page, 4096, PROT_READ | PROT_WRITE);
	guest__end(&g);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s AGENT\n", argv[0]);
		return 2;
	}
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("SKIP: /dev/kvm is not usable (%s)\n", strerror(errno));
		return getenv("VMC_REQUIRE_KVM") ? 1 : SKIP;
	}
	test_pause_freezes(argv[1]);
	test_pause_idle(argv[1]);
	test_oracle_catches_stale(argv[1]);
	test_efault(argv[1]);
	if (failures) {
		fprintf(stderr, "%d checks failed\n", failures);
		return 1;
	}
	printf("pause/oracle: all checks passed\n");
	return 0;
}
