/* test_qemu_parse.c: QEMU/libvirt guest plumbing on canned inputs: maps, memdevs, RAM matching, smaps, pagemap classes, QMP replies, command lines, chunk sizing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "tests/check.h"
#include "vmm/qemu/collapse.h"
#include "vmm/qemu/coverage.h"
#include "vmm/qemu/qemu_proc.h"
#include "vmm/qemu/qmp.h"

#define M2 (2ULL << 20)

static const char canned_maps[] =
	"5586bb7bc000-5586bbbc3000 r--p 00000000 fe:00 10977299 /usr/bin/qemu-system-x86_64\n"
	"7f44effff000-7f44fffff000 rw-s 00000000 00:01 1027 /memfd:memory-backend-memfd (deleted)\n"
	"7f44fffff000-7f4500000000 ---p 00000000 00:00 0\n"
	"7f4500000000-7f453ffff000 rwxp 00000000 00:00 0\n"
	"7ff4efc00000-7ff4efe00000 rw-p 00000000 00:00 0\n"
	"7ff4efe00000-7ff4f7e00000 rw-p 00000000 00:00 0\n"
	"7ff4f7e00000-7ff4ffe00000 rw-p 00000000 00:00 0\n"
	"7fb9d7e00000-7fb9e7e00000 rw-s 00000000 00:1a 2 /dev/shm/vmc-ram (deleted)\n";

static size_t parse_canned(struct maps_entry *m, size_t cap)
{
	char buf[sizeof(canned_maps)], *line, *save = NULL;
	size_t n = 0;

	memcpy(buf, canned_maps, sizeof(buf));
	for (line = strtok_r(buf, "\n", &save); line && n < cap; line = strtok_r(NULL, "\n", &save))
		CHECK(maps_entry__parse(line, &m[n++]) == 0);
	return n;
}

static void test_maps(void)
{
	struct maps_entry m[16], e;
	size_t n;

	tu_case = "maps";
	CHECK(maps_entry__parse("garbage", &e) == -EINVAL);
	CHECK(maps_entry__parse("2000-1000 rw-p 0 00:00 0", &e) == -EINVAL);
	n = parse_canned(m, 16);
	CHECK_EQ(n, 8);
	CHECK_EQ(m[1].start, 0x7f44effff000ULL);
	CHECK(!strcmp(m[1].perms, "rw-s"));
	CHECK(!strcmp(m[1].path, "/memfd:memory-backend-memfd (deleted)"));
	CHECK(m[3].path[0] == '\0' && m[3].inode == 0);
}

static void test_memdev_and_match(void)
{
	const char *reply = "[{\"share\":true,\"prealloc\":true,\"size\":268435456,\"id\":\"m0\"},"
			    "{\"share\":false,\"size\":268435456,\"id\":\"pc.ram\"},"
			    "{\"share\":true,\"size\":268435456,\"id\":\"f0\"},"
			    "{\"size\":8388608,\"id\":\"lost\"}]";
	struct json_object *list = json_tokener_parse(reply);
	struct qemu_memdev *d;
	struct qemu_ramblock b[4];
	struct maps_entry m[16];
	size_t nd, nm;
	char err[128];

	tu_case = "memdev";
	CHECK(qemu_memdev__parse(list, &d, &nd, err, sizeof(err)) == 0);
	CHECK_EQ(nd, 4);
	CHECK(!strcmp(d[0].id, "m0") && d[0].share && d[0].prealloc && d[0].size == 256ULL << 20);
	snprintf(d[0].type, sizeof(d[0].type), "memory-backend-memfd");
	snprintf(d[1].type, sizeof(d[1].type), "memory-backend-ram");
	snprintf(d[2].type, sizeof(d[2].type), "memory-backend-file");
	snprintf(d[2].mem_path, sizeof(d[2].mem_path), "/dev/shm/vmc-ram");
	snprintf(d[3].type, sizeof(d[3].type), "memory-backend-ram");
	nm = parse_canned(m, 16);
	qemu_ram__match(d, nd, m, nm, b);

	tu_case = "match memfd: found, but not 2 MiB-congruent";
	CHECK(b[0].identified && b[0].kind == RAM_SHMEM && !b[0].collapsible);
	CHECK(strstr(b[0].note, "not 2 MiB-congruent"));
	tu_case = "match anonymous RAM by size: two VMAs (split by madvise) after an unrelated "
		  "anonymous one, not the rwx TCG buffer";
	CHECK(b[1].identified && b[1].kind == RAM_ANON && b[1].collapsible);
	CHECK_EQ(b[1].start, 0x7ff4efe00000ULL);
	tu_case = "match file by mem-path";
	CHECK(b[2].identified && b[2].collapsible && b[2].start == 0x7fb9d7e00000ULL);
	tu_case = "no mapping: said clearly";
	CHECK(!b[3].identified && !b[3].collapsible && strstr(b[3].note, "cannot identify"));
	free(d);
	json_object_put(list);

	tu_case = "memdev errors";
	list = json_tokener_parse("{\"x\":1}");
	CHECK(qemu_memdev__parse(list, &d, &nd, err, sizeof(err)) == -EPROTO);
	json_object_put(list);
	list = json_tokener_parse("[{\"id\":\"m0\"}]");
	CHECK(qemu_memdev__parse(list, &d, &nd, err, sizeof(err)) == -EPROTO);
	json_object_put(list);
}

static void test_smaps(void)
{
	static const char text[] =
		"7f0000000000-7f0010000000 rw-p 00000000 00:00 0\n"
		"Size:             262144 kB\n"
		"KernelPageSize:        4 kB\n"
		"Rss:              262144 kB\n"
		"AnonHugePages:    131072 kB\n"
		"ShmemPmdMapped:        0 kB\n"
		"FilePmdMapped:         0 kB\n"
		"Shared_Hugetlb:        0 kB\n"
		"Private_Hugetlb:       0 kB\n"
		"VmFlags: rd wr mr mw me ac hg\n"
		"7f0010000000-7f0018000000 rw-s 00000000 00:01 7 /memfd:x (deleted)\n"
		"Size:             131072 kB\n"
		"Rss:              131072 kB\n"
		"ShmemPmdMapped:    65536 kB\n"
		"7f1000000000-7f1000200000 rw-p 00000000 00:00 0\n"
		"Size:               2048 kB\n"
		"AnonHugePages:      2048 kB\n";
	struct smaps_cover c;
	FILE *f = fmemopen((void *)text, sizeof(text) - 1, "r");

	tu_case = "smaps: two VMAs inside the range, the third outside";
	CHECK(f);
	CHECK(smaps_cover__parse(f, 0x7f0000000000ULL, 0x7f0018000000ULL, &c) == 0);
	fclose(f);
	CHECK_EQ(c.vmas, 2);
	CHECK_EQ(c.size, 384ULL << 20);
	CHECK_EQ(c.huge, 192ULL << 20);
	CHECK_EQ(c.kernel_page_size, 4096);
	CHECK(smaps_cover__share(&c) > 0.49 && smaps_cover__share(&c) < 0.51);
	f = fmemopen((void *)text, sizeof(text) - 1, "r");
	CHECK(smaps_cover__parse(f, 0x1000, 0x2000, &c) == -ENOENT);
	fclose(f);
}

#define PM_PRESENT (1ULL << 63)
#define KPF_HEAD (1ULL << 15)
#define KPF_THP (1ULL << 22)

static void test_classify(void)
{
	static uint64_t pm[REGION_PAGES];
	unsigned present;

	tu_case = "classify: empty";
	memset(pm, 0, sizeof(pm));
	CHECK(region__classify(pm, REGION_PAGES, 0, false, &present) == REGION_EMPTY);
	CHECK_EQ(present, 0);

	tu_case = "classify: aligned contiguous THP";
	for (unsigned i = 0; i < REGION_PAGES; i++)
		pm[i] = PM_PRESENT | (0x40000 + i);
	CHECK(region__classify(pm, REGION_PAGES, KPF_HEAD | KPF_THP, true, &present) == REGION_HUGE);
	CHECK_EQ(present, REGION_PAGES);
	tu_case = "classify: contiguous but not a compound THP (4 KiB pages that happen to line up)";
	CHECK(region__classify(pm, REGION_PAGES, 0, true, &present) == REGION_SMALL);
	tu_case = "classify: flags unreadable";
	CHECK(region__classify(pm, REGION_PAGES, KPF_HEAD | KPF_THP, false, &present) == REGION_SMALL);
	tu_case = "classify: one page elsewhere";
	pm[300] = PM_PRESENT | 0x99999;
	CHECK(region__classify(pm, REGION_PAGES, KPF_HEAD | KPF_THP, true, &present) == REGION_SMALL);
	tu_case = "classify: misaligned PFN run";
	for (unsigned i = 0; i < REGION_PAGES; i++)
		pm[i] = PM_PRESENT | (0x40001 + i);
	CHECK(region__classify(pm, REGION_PAGES, KPF_HEAD | KPF_THP, true, &present) == REGION_SMALL);
	tu_case = "classify: partly populated, first page absent, PFNs visible";
	pm[0] = 0;
	CHECK(region__classify(pm, REGION_PAGES, 0, false, &present) == REGION_SMALL);
	CHECK_EQ(present, REGION_PAGES - 1);
	tu_case = "classify: PFNs hidden (not root)";
	for (unsigned i = 0; i < REGION_PAGES; i++)
		pm[i] = PM_PRESENT;
	CHECK(region__classify(pm, REGION_PAGES, 0, false, &present) == REGION_UNKNOWN);
}

static void test_kvm_stats(void)
{
	const char *reply = "[{\"provider\":\"kvm\",\"target\":\"vm\",\"stats\":["
			    "{\"name\":\"pages_4k\",\"value\":1024},{\"name\":\"pages_2m\",\"value\":511},"
			    "{\"name\":\"pages_1g\",\"value\":0},{\"name\":\"nx_lpage_splits\",\"value\":3}]}]";
	struct json_object *o = json_tokener_parse(reply);
	struct qemu_kvm_pages k;

	tu_case = "query-stats";
	qemu_kvm_pages__parse(o, &k);
	CHECK(k.valid && k.pages_4k == 1024 && k.pages_2m == 511 && k.pages_1g == 0);
	json_object_put(o);
	tu_case = "query-stats under TCG: empty list";
	o = json_tokener_parse("[]");
	qemu_kvm_pages__parse(o, &k);
	CHECK(!k.valid && strstr(k.why, "unavailable"));
	json_object_put(o);
}

static void test_qmp_reply(void)
{
	struct json_object *ret;
	char err[128], *text;

	tu_case = "qmp reply";
	CHECK(qemu_qmp__parse_reply("{\"return\":{\"enabled\":true},\"id\":\"libvirt-12\"}", &ret, err,
				    sizeof(err)) == 0);
	CHECK(json_object_get_boolean(json_object_object_get(ret, "enabled")));
	json_object_put(ret);
	CHECK(qemu_qmp__parse_reply("{\"error\":{\"class\":\"GenericError\",\"desc\":\"no such "
				    "object\"}}", &ret, err, sizeof(err)) == -EREMOTEIO);
	CHECK(strstr(err, "no such object") && !ret);
	CHECK(qemu_qmp__parse_reply("{\"QMP\":{}}", &ret, err, sizeof(err)) == -EPROTO);
	CHECK(qemu_qmp__parse_reply("not json", &ret, err, sizeof(err)) == -EPROTO);
	text = qemu_qmp__command_text("qom-get", json_tokener_parse("{\"path\":\"/objects/m0\"}"));
	CHECK(text && !strcmp(text, "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"/objects/m0\"}}"));
	free(text);
}

static void test_cmdline(void)
{
	static const char a[] = "qemu-system-x86_64\0-m\0256M\0-qmp\0unix:/tmp/a.sock,server=on,wait=off\0"
				"-qmp\0unix:/tmp/b.sock,server=on\0";
	static const char b[] = "qemu-system-x86_64\0-name\0guest=vm1,debug-threads=on\0"
				"-chardev\0socket,id=charmonitor,path=/run/x/monitor.sock,server=on,wait=off\0"
				"-mon\0chardev=charmonitor,id=monitor,mode=control\0"
				"-chardev\0socket,id=other,path=/tmp/serial.sock\0";
	static const char c[] = "qemu-system-x86_64\0-name\0guest=vm2,debug-threads=on\0"
				"-chardev\0socket,id=charmonitor,fd=23,server=on,wait=off\0"
				"-mon\0chardev=charmonitor,id=monitor,mode=control\0";
	char path[108], name[64];

	tu_case = "cmdline -qmp";
	CHECK(qemu_cmdline__qmp_path(a, sizeof(a) - 1, 0, path, sizeof(path)) == 0);
	CHECK(!strcmp(path, "/tmp/a.sock"));
	CHECK(qemu_cmdline__qmp_path(a, sizeof(a) - 1, 1, path, sizeof(path)) == 0);
	CHECK(!strcmp(path, "/tmp/b.sock"));
	CHECK(qemu_cmdline__qmp_path(a, sizeof(a) - 1, 2, path, sizeof(path)) == -ENOENT);
	CHECK(qemu_cmdline__guest_name(a, sizeof(a) - 1, name, sizeof(name)) == -ENOENT);
	tu_case = "cmdline -chardev + -mon mode=control (not the serial chardev)";
	CHECK(qemu_cmdline__qmp_path(b, sizeof(b) - 1, 0, path, sizeof(path)) == 0);
	CHECK(!strcmp(path, "/run/x/monitor.sock"));
	CHECK(qemu_cmdline__qmp_path(b, sizeof(b) - 1, 1, path, sizeof(path)) == -ENOENT);
	CHECK(qemu_cmdline__guest_name(b, sizeof(b) - 1, name, sizeof(name)) == 0);
	CHECK(!strcmp(name, "vm1"));
	tu_case = "cmdline: libvirt passes the monitor as an fd";
	CHECK(qemu_cmdline__qmp_path(c, sizeof(c) - 1, 0, path, sizeof(path)) == -ENOENT);
	CHECK(qemu_cmdline__guest_name(c, sizeof(c) - 1, name, sizeof(name)) == 0);
}

static void test_chunk_and_exit_codes(void)
{
	struct collapse_sizer s = { 0 };
	uint32_t chunk = 1, calls = 0;

	tu_case = "chunk sizing";
	CHECK_EQ(collapse__next_chunk(&s, 1, 500, 5000), 2);      /* grows at most 2x */
	CHECK_EQ(collapse__next_chunk(&s, 8, 4000, 5000), 7);     /* 500 us/region: 3750/500 */
	CHECK_EQ(collapse__next_chunk(&s, 4, 24000, 5000), 1);    /* cold: 6 ms/region */
	/* back to 500 us/region: the cold sighting keeps chunks small for a while, then they grow back */
	CHECK_EQ(collapse__next_chunk(&s, 1, 500, 5000), 1);
	while (chunk < 7 && calls++ < 200)
		chunk = collapse__next_chunk(&s, chunk, 500.0 * chunk, 5000);
	CHECK(calls > 30 && calls < 60);
	CHECK_EQ(chunk, 7);
	s.worst_us = 0;
	CHECK_EQ(collapse__next_chunk(&s, 1000, 100, 5000), COLLAPSE_MAX_IOV);
	CHECK_EQ(collapse__next_chunk(&s, 5, 100, 0), 1);         /* no budget: one region per call */
	tu_case = "exit codes";
	CHECK_EQ(qemu_exit__from_errno(-ESRCH), QEMU_EXIT_NO_TARGET);
	CHECK_EQ(qemu_exit__from_errno(-ENOENT), QEMU_EXIT_NO_TARGET);
	CHECK_EQ(qemu_exit__from_errno(-ENOEXEC), QEMU_EXIT_NOT_QEMU);
	CHECK_EQ(qemu_exit__from_errno(-ENODATA), QEMU_EXIT_NOT_COLLAPSIBLE);
	CHECK_EQ(qemu_exit__from_errno(-EACCES), QEMU_EXIT_DENIED);
	CHECK_EQ(qemu_exit__from_errno(-ENOTSUP), QEMU_EXIT_UNAVAILABLE);
}

int main(void)
{
	test_maps();
	test_memdev_and_match();
	test_smaps();
	test_classify();
	test_kvm_stats();
	test_qmp_reply();
	test_cmdline();
	test_chunk_and_exit_codes();
	printf("ok qemu parsers\n");
	return 0;
}
