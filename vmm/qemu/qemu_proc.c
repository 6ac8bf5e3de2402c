/* qemu_proc.c: find a QEMU guest by PID, QMP socket or libvirt domain, and its RAM blocks in /proc/PID/maps. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vmm/qemu/libvirt.h"
#include "vmm/qemu/qemu_proc.h"
#include "vmm/qemu/qmp.h"

#define HUGE_2M (2ULL << 20)
#define CMDLINE_MAX (256 * 1024)

const char qemu_exit_codes_help[] =
	"Exit status: 0 ok, 1 failed (or regions not collapsed), 2 usage, 3 no such domain/PID/socket,\n"
	"4 stale QMP socket, 5 permission denied, 6 not a QEMU guest, 7 no collapsible guest RAM,\n"
	"8 libvirt or QEMU unavailable.\n";

const char *const ram_kind_names[] = {
	[RAM_ANON] = "anonymous", [RAM_SHMEM] = "shmem", [RAM_FILE] = "file",
	[RAM_HUGETLB] = "hugetlbfs", [RAM_UNKNOWN] = "unknown",
};

int qemu_exit__from_errno(int err)
{
	switch (err) {
	case 0: return QEMU_EXIT_OK;
	case -ENOENT: case -ESRCH: return QEMU_EXIT_NO_TARGET;
	case -ECONNREFUSED: return QEMU_EXIT_STALE;
	case -EACCES: case -EPERM: return QEMU_EXIT_DENIED;
	case -ENOEXEC: case -EPROTO: return QEMU_EXIT_NOT_QEMU;
	case -ENODATA: return QEMU_EXIT_NOT_COLLAPSIBLE;
	case -ENOTSUP: return QEMU_EXIT_UNAVAILABLE;
	case -EINVAL: case -ENAMETOOLONG: return QEMU_EXIT_USAGE;
	default: return QEMU_EXIT_FAILED;
	}
}

/* ------------------------------------------------------------------ */
/* /proc/PID/maps */

int maps_entry__parse(const char *line, struct maps_entry *e)
{
	unsigned long long start, end, off, inode;
	char perms[8], dev[32];
	int n = 0;

	memset(e, 0, sizeof(*e));
	if (sscanf(line, "%llx-%llx %7s %llx %31s %llu %n", &start, &end, perms, &off, dev, &inode,
		   &n) < 6 || end <= start || strlen(perms) != 4)
		return -EINVAL;
	e->start = start;
	e->end = end;
	e->offset = off;
	e->inode = inode;
	memcpy(e->perms, perms, 5);
	if (n > 0) {
		const char *p = line + n;
		size_t len = strcspn(p, "\n");

		while (len && isspace((unsigned char)p[len - 1]))
			len--;
		if (len >= sizeof(e->path))
			len = sizeof(e->path) - 1;
		memcpy(e->path, p, len);
		e->path[len] = '\0';
	}
	return 0;
}

int maps__read(pid_t pid, struct maps_entry **out, size_t *nr, char *err, size_t errlen)
{
	char path[64], line[512];
	struct maps_entry *m = NULL;
	size_t n = 0, cap = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f) {
		int e = errno;

		snprintf(err, errlen, "cannot read %s: %s", path, strerror(e));
		return e == ENOENT ? -ESRCH : -e;
	}
	while (fgets(line, sizeof(line), f)) {
		if (n == cap) {
			struct maps_entry *p = realloc(m, (cap = cap ? 2 * cap : 256) * sizeof(*m));

			if (!p) {
				free(m);
				fclose(f);
				snprintf(err, errlen, "out of memory");
				return -ENOMEM;
			}
			m = p;
		}
		if (maps_entry__parse(line, &m[n]) == 0)
			n++;
	}
	fclose(f);
	*out = m;
	*nr = n;
	return 0;
}

/* ------------------------------------------------------------------ */
/* memdevs and matching */

int qemu_memdev__parse(struct json_object *list, struct qemu_memdev **out, size_t *nr,
		       char *err, size_t errlen)
{
	size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
	struct qemu_memdev *d;

	*out = NULL;
	*nr = 0;
	if (!json_object_is_type(list, json_type_array)) {
		snprintf(err, errlen, "query-memdev: not a list");
		return -EPROTO;
	}
	d = calloc(n ? n : 1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(list, i), *v;

		if (json_object_object_get_ex(o, "id", &v))
			snprintf(d[i].id, sizeof(d[i].id), "%s", json_object_get_string(v));
		else
			snprintf(d[i].id, sizeof(d[i].id), "memdev%zu", i);
		if (!json_object_object_get_ex(o, "size", &v)) {
			snprintf(err, errlen, "query-memdev: entry %zu has no size", i);
			free(d);
			return -EPROTO;
		}
		d[i].size = (uint64_t)json_object_get_int64(v);
		d[i].share = json_object_object_get_ex(o, "share", &v) && json_object_get_boolean(v);
		d[i].prealloc = json_object_object_get_ex(o, "prealloc", &v) &&
				json_object_get_boolean(v);
	}
	*out = d;
	*nr = n;
	return 0;
}

static bool ram__path_matches(const struct qemu_memdev *d, const struct maps_entry *m)
{
	size_t n = strlen(d->mem_path);

	if (!strcmp(d->type, "memory-backend-memfd"))
		return !strncmp(m->path, "/memfd:", 7);
	if (!strcmp(d->type, "memory-backend-file")) {
		size_t k = strcspn(m->path, " ");   /* without " (deleted)" */

		if (n && !strncmp(m->path, d->mem_path, n) &&
		    (m->path[n] == '\0' || m->path[n] == '/' || m->path[n] == ' '))
			return true;
		/* a file on a detached mount shows relative to that mount's root */
		return m->path[0] == '/' && k < n && !strncmp(d->mem_path + n - k, m->path, k);
	}
	/* memory-backend-ram and unknown types: private anonymous memory */
	return m->path[0] == '\0' && m->inode == 0;
}

static void ram__classify(struct qemu_ramblock *b, const struct maps_entry *m)
{
	b->identified = true;
	b->start = m->start;
	b->end = m->end;
	b->file_offset = m->offset;
	snprintf(b->mapping, sizeof(b->mapping), "%s", m->path);
	if (m->path[0] == '\0')
		b->kind = RAM_ANON;
	else if (!strncmp(m->path, "/memfd:", 7) || !strncmp(m->path, "/dev/shm/", 9))
		b->kind = RAM_SHMEM;
	else if (strstr(m->path, "hugepages") || strstr(m->path, "hugetlb"))
		b->kind = RAM_HUGETLB;
	else
		b->kind = RAM_FILE;
	if (b->kind == RAM_HUGETLB) {
		snprintf(b->note, sizeof(b->note), "hugetlbfs: already on huge pages");
		return;
	}
	if (b->kind != RAM_ANON && (b->start - b->file_offset) % HUGE_2M) {
		snprintf(b->note, sizeof(b->note),
			 "mapped at 0x%" PRIx64 " for file offset 0x%" PRIx64 ": not 2 MiB-congruent, "
			 "so the kernel cannot map it with 2 MiB pages (QEMU aligns memfd and files "
			 "without align= to 4 KiB; use memory-backend-file,align=2M)", b->start,
			 b->file_offset);
		return;
	}
	if ((b->end & ~(HUGE_2M - 1)) <= ((b->start + HUGE_2M - 1) & ~(HUGE_2M - 1))) {
		snprintf(b->note, sizeof(b->note), "no whole 2 MiB region inside it");
		return;
	}
	b->collapsible = true;
	snprintf(b->note, sizeof(b->note), "matched by type and size");
}

/*
 * A RAM block may be one VMA, or several contiguous ones (split by madvise or
 * mlock); an anonymous one may also sit right next to another anonymous VMA.
 * So: the run of compatible contiguous VMAs from j whose sizes add up to
 * exactly size, as one entry in *run; false if there is none.
 */
static bool ram__run_at(const struct maps_entry *maps, size_t nr, size_t j, uint64_t size,
			struct maps_entry *run)
{
	*run = maps[j];
	for (size_t k = j + 1; run->end - run->start < size && k < nr; k++) {
		const struct maps_entry *m = &maps[k];

		if (m->start != run->end || strcmp(m->perms, run->perms) || strcmp(m->path, run->path) ||
		    m->inode != run->inode)
			return false;
		run->end = m->end;
	}
	return run->end - run->start == size;
}

void qemu_ram__match(const struct qemu_memdev *devs, size_t nr_dev, struct maps_entry *maps,
		     size_t nr_maps, struct qemu_ramblock *blocks)
{
	uint64_t *used_until = calloc(nr_dev ? nr_dev : 1, sizeof(*used_until));
	uint64_t *used_from = calloc(nr_dev ? nr_dev : 1, sizeof(*used_from));

	for (size_t i = 0; i < nr_dev; i++) {
		struct qemu_ramblock *b = &blocks[i];
		struct maps_entry run, first = { 0 };
		size_t hits = 0;

		memset(b, 0, sizeof(*b));
		b->dev = devs[i];
		b->kind = RAM_UNKNOWN;
		for (size_t j = 0; j < nr_maps; j++) {
			const struct maps_entry *m = &maps[j];
			bool taken = false;

			if (m->perms[0] != 'r' || m->perms[1] != 'w' || !ram__path_matches(&devs[i], m) ||
			    !ram__run_at(maps, nr_maps, j, devs[i].size, &run))
				continue;
			for (size_t k = 0; used_from && k < i; k++)
				taken |= run.start < used_until[k] && run.end > used_from[k];
			if (taken)
				continue;
			if (!hits++)
				first = run;
		}
		if (!hits) {
			snprintf(b->note, sizeof(b->note), "cannot identify: no %s mapping of %" PRIu64
				 " bytes in /proc/PID/maps", devs[i].type[0] ? devs[i].type : "RAM",
				 devs[i].size);
			continue;
		}
		if (used_from) {
			used_from[i] = first.start;
			used_until[i] = first.end;
		}
		ram__classify(b, &first);
		if (hits > 1 && b->collapsible)
			snprintf(b->note, sizeof(b->note), "one of %zu mappings of that type and size "
				 "(taken in address order; QEMU 7.2 reports no host address)", hits);
	}
	free(used_from);
	free(used_until);
}

/* ------------------------------------------------------------------ */
/* the QEMU process */

static ssize_t proc__read_file(pid_t pid, const char *what, char *buf, size_t len)
{
	char path[64];
	ssize_t n, total = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((size_t)total < len && (n = read(fd, buf + total, len - (size_t)total)) > 0)
		total += n;
	close(fd);
	return total;
}

int qemu_proc__check(pid_t pid, char *err, size_t errlen)
{
	char exe[256], link[64], comm[64];
	ssize_t n;

	n = proc__read_file(pid, "comm", comm, sizeof(comm) - 1);
	if (n < 0) {
		snprintf(err, errlen, "no process with PID %d", (int)pid);
		return -ESRCH;
	}
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, exe, sizeof(exe) - 1);
	if (n < 0 && (errno == EACCES || errno == EPERM)) {
		snprintf(err, errlen, "permission denied on process %d (%s): run as its owner or root",
			 (int)pid, comm);
		return -EACCES;
	}
	if (n > 0)
		exe[n] = '\0';
	else
		exe[0] = '\0';
	if (strncmp(comm, "qemu-system", 11) && strncmp(comm, "qemu-kvm", 8) &&
	    !strstr(exe, "/qemu-system-") && !strstr(exe, "/qemu-kvm")) {
		snprintf(err, errlen, "PID %d is not a QEMU process (it is '%s')", (int)pid, comm);
		return -ENOEXEC;
	}
	return 0;
}

/* Value of key= in a comma-separated QEMU option string, up to the next comma. */
static bool opt__value(const char *opts, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	const char *p = opts;

	while (p && *p) {
		if (!strncmp(p, key, klen) && p[klen] == '=') {
			size_t n = strcspn(p + klen + 1, ",");

			if (n >= outlen)
				return false;
			memcpy(out, p + klen + 1, n);
			out[n] = '\0';
			return true;
		}
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return false;
}

/* argv[i] of a NUL-separated command line, or NULL. */
static const char *cmdline__next(const char *cmdline, size_t len, const char *arg)
{
	const char *next = arg + strlen(arg) + 1;

	return next < cmdline + len ? next : NULL;
}

/* Whether chardev ID is a QMP monitor ("-mon chardev=ID,mode=control"). */
static bool cmdline__qmp_chardev(const char *cmdline, size_t len, const char *id)
{
	char chardev[64];

	for (const char *a = cmdline; a; a = cmdline__next(cmdline, len, a)) {
		const char *v = cmdline__next(cmdline, len, a);

		if (v && !strcmp(a, "-mon") && strstr(v, "mode=control") &&
		    opt__value(v, "chardev", chardev, sizeof(chardev)) && !strcmp(chardev, id))
			return true;
	}
	return false;
}

int qemu_cmdline__qmp_path(const char *cmdline, size_t len, unsigned nth, char *path,
			   size_t pathlen)
{
	unsigned seen = 0;
	char id[64];

	for (const char *a = cmdline; a; a = cmdline__next(cmdline, len, a)) {
		const char *v = cmdline__next(cmdline, len, a);
		bool hit = false;

		if (!v)
			break;
		if (!strcmp(a, "-qmp") && !strncmp(v, "unix:", 5)) {
			snprintf(path, pathlen, "%.*s", (int)strcspn(v + 5, ","), v + 5);
			hit = true;
		} else if (!strcmp(a, "-chardev") && !strncmp(v, "socket,", 7) &&
			   opt__value(v, "id", id, sizeof(id)) && opt__value(v, "path", path, pathlen)) {
			hit = cmdline__qmp_chardev(cmdline, len, id);
		}
		if (hit && seen++ == nth)
			return 0;
	}
	return -ENOENT;
}

int qemu_cmdline__guest_name(const char *cmdline, size_t len, char *name, size_t namelen)
{
	for (const char *a = cmdline; a; a = cmdline__next(cmdline, len, a)) {
		const char *v = cmdline__next(cmdline, len, a);

		if (v && !strcmp(a, "-name") && opt__value(v, "guest", name, namelen))
			return 0;
	}
	return -ENOENT;
}

int qemu_proc__find_guest(const char *name, pid_t *pid)
{
	char *buf = malloc(CMDLINE_MAX), found[256];
	DIR *d = opendir("/proc");
	struct dirent *de;
	int r = -ESRCH;

	while (buf && d && (de = readdir(d))) {
		pid_t p = (pid_t)atoi(de->d_name);
		ssize_t n;

		if (p <= 0 || qemu_proc__check(p, found, sizeof(found)))
			continue;
		n = proc__read_file(p, "cmdline", buf, CMDLINE_MAX - 1);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if (!qemu_cmdline__guest_name(buf, (size_t)n, found, sizeof(found)) &&
		    !strcmp(found, name)) {
			*pid = p;
			r = 0;
			break;
		}
	}
	if (d)
		closedir(d);
	free(buf);
	return r;
}

/* ------------------------------------------------------------------ */
/* targets */

static void target__init(struct qemu_target *t)
{
	memset(t, 0, sizeof(*t));
}

static int target__attach_qmp(struct qemu_target *t, const char *path, int timeout_ms, char *err,
			      size_t errlen)
{
	int r;

	t->qmp = calloc(1, sizeof(*t->qmp));
	if (!t->qmp)
		return -ENOMEM;
	r = qemu_qmp__connect(t->qmp, path, timeout_ms, err, errlen);
	if (r < 0) {
		free(t->qmp);
		t->qmp = NULL;
	}
	return r;
}

/* Every QMP socket on the command line in turn: QEMU serves one client per monitor. */
static int target__attach_any_qmp(struct qemu_target *t, const char *cmd, size_t len, char *err,
				  size_t errlen)
{
	char path[108];
	int r = -ENOENT;

	for (unsigned nth = 0; qemu_cmdline__qmp_path(cmd, len, nth, path, sizeof(path)) == 0; nth++) {
		r = target__attach_qmp(t, path, 2000, err, errlen);
		if (r == 0)
			return 0;
	}
	return r;
}

/* What query-kvm says; false when it cannot be asked. */
static void target__query_kvm(struct qemu_target *t)
{
	struct json_object *ret = NULL, *v;
	char err[128];

	if (qemu_target__execute(t, "query-kvm", NULL, &ret, err, sizeof(err)) == 0)
		t->kvm = json_object_object_get_ex(ret, "enabled", &v) && json_object_get_boolean(v);
	json_object_put(ret);
}

int qemu_target__open_pid(struct qemu_target *t, pid_t pid, const char *uri, char *err,
			  size_t errlen)
{
	char *cmd = NULL, path[108], name[256];
	ssize_t n;
	int r;

	target__init(t);
	t->pid = pid;
	snprintf(t->label, sizeof(t->label), "QEMU PID %d", (int)pid);
	r = qemu_proc__check(pid, err, errlen);
	if (r < 0)
		return r;
	cmd = malloc(CMDLINE_MAX);
	if (!cmd)
		return -ENOMEM;
	n = proc__read_file(pid, "cmdline", cmd, CMDLINE_MAX - 1);
	if (n < 0) {
		snprintf(err, errlen, "cannot read PID %d's command line: %s", (int)pid, strerror((int)-n));
		free(cmd);
		return (int)n;
	}
	cmd[n] = '\0';
	if (qemu_cmdline__qmp_path(cmd, (size_t)n, 0, path, sizeof(path)) == 0) {
		r = target__attach_any_qmp(t, cmd, (size_t)n, err, errlen);
	} else if (qemu_cmdline__guest_name(cmd, (size_t)n, name, sizeof(name)) == 0) {
		free(cmd);
		cmd = NULL;
		r = qemu_target__open_domain(t, name, uri, err, errlen);
		if (r == 0 && t->pid != pid) {
			snprintf(err, errlen, "PID %d runs libvirt guest '%s' but libvirt says its PID is "
				 "%d", (int)pid, name, (int)t->pid);
			qemu_target__close(t);
			r = -ESRCH;
		}
	} else {
		snprintf(err, errlen, "QEMU PID %d has no QMP unix socket on its command line (add "
			 "-qmp unix:PATH,server=on,wait=off, or use --qmp/--domain)", (int)pid);
		r = -ENOTSUP;
	}
	free(cmd);
	if (r == 0 && t->qmp)
		target__query_kvm(t);
	return r;
}

int qemu_target__open_qmp(struct qemu_target *t, const char *path, char *err, size_t errlen)
{
	int r;

	target__init(t);
	snprintf(t->label, sizeof(t->label), "QMP %s", path);
	r = target__attach_qmp(t, path, 0, err, errlen);
	if (r < 0)
		return r;
	t->pid = t->qmp->peer_pid;
	if (t->pid <= 0 || qemu_proc__check(t->pid, err, errlen) < 0) {
		if (t->pid <= 0)
			snprintf(err, errlen, "cannot tell which process serves %s", path);
		qemu_target__close(t);
		return -ENOEXEC;
	}
	target__query_kvm(t);
	return 0;
}

int qemu_target__open_domain(struct qemu_target *t, const char *name, const char *uri,
			     char *err, size_t errlen)
{
	int r;

	target__init(t);
	snprintf(t->label, sizeof(t->label), "domain %s", name);
	r = qemu_libvirt__open(&t->lv, name, uri, &t->pid, err, errlen);
	if (r < 0)
		return r;
	r = qemu_proc__check(t->pid, err, errlen);
	if (r < 0) {
		qemu_target__close(t);
		return r;
	}
	target__query_kvm(t);
	return 0;
}

int qemu_target__execute(struct qemu_target *t, const char *command, struct json_object *args,
			 struct json_object **ret, char *err, size_t errlen)
{
	if (t->qmp)
		return qemu_qmp__execute(t->qmp, command, args, ret, err, errlen);
	if (t->lv)
		return qemu_libvirt__execute(t->lv, command, args, ret, err, errlen);
	json_object_put(args);
	*ret = NULL;
	snprintf(err, errlen, "%s: no monitor connection", t->label);
	return -ENOTCONN;
}

/* A string QOM property of /objects/ID, or "" . */
static void target__qom_string(struct qemu_target *t, const char *id, const char *prop, char *out,
			       size_t outlen)
{
	struct json_object *args = json_object_new_object(), *ret = NULL;
	char path[96], err[128];

	out[0] = '\0';
	snprintf(path, sizeof(path), "/objects/%s", id);
	json_object_object_add(args, "path", json_object_new_string(path));
	json_object_object_add(args, "property", json_object_new_string(prop));
	if (qemu_target__execute(t, "qom-get", args, &ret, err, sizeof(err)) == 0 &&
	    json_object_is_type(ret, json_type_string))
		snprintf(out, outlen, "%s", json_object_get_string(ret));
	json_object_put(ret);
}

/* A file mapping's filesystem, through /proc/PID/map_files (it may live in another mount namespace). */
static void ram__refine_kind(pid_t pid, struct qemu_ramblock *b)
{
	char link[96];
	struct statfs sf;

	if (!b->identified || b->kind == RAM_ANON)
		return;
	snprintf(link, sizeof(link), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid, b->start,
		 b->end);
	if (statfs(link, &sf) < 0)
		return;
	if (sf.f_type == 0x958458f6) {            /* HUGETLBFS_MAGIC */
		b->kind = RAM_HUGETLB;
		b->collapsible = false;
		snprintf(b->note, sizeof(b->note), "hugetlbfs: already on huge pages");
	} else if (sf.f_type == 0x01021994) {     /* TMPFS_MAGIC: memfd, /dev/shm, tmpfs files */
		b->kind = RAM_SHMEM;
	}
}

int qemu_target__find_ram(struct qemu_target *t, char *err, size_t errlen)
{
	struct json_object *ret = NULL;
	struct qemu_memdev *devs = NULL;
	struct maps_entry *maps = NULL;
	size_t nr_dev = 0, nr_maps = 0;
	int r;

	r = qemu_target__execute(t, "query-memdev", NULL, &ret, err, errlen);
	if (r == 0)
		r = qemu_memdev__parse(ret, &devs, &nr_dev, err, errlen);
	json_object_put(ret);
	if (r < 0)
		return r;
	if (!nr_dev) {
		snprintf(err, errlen, "%s has no guest RAM backends (query-memdev is empty)", t->label);
		free(devs);
		return -ENODATA;
	}
	for (size_t i = 0; i < nr_dev; i++) {
		target__qom_string(t, devs[i].id, "type", devs[i].type, sizeof(devs[i].type));
		if (!strcmp(devs[i].type, "memory-backend-file"))
			target__qom_string(t, devs[i].id, "mem-path", devs[i].mem_path,
					   sizeof(devs[i].mem_path));
	}
	r = maps__read(t->pid, &maps, &nr_maps, err, errlen);
	if (r == 0) {
		free(t->blocks);
		t->blocks = calloc(nr_dev, sizeof(*t->blocks));
		r = t->blocks ? 0 : -ENOMEM;
	}
	if (r == 0) {
		qemu_ram__match(devs, nr_dev, maps, nr_maps, t->blocks);
		t->nr_blocks = nr_dev;
		for (size_t i = 0; i < nr_dev; i++)
			ram__refine_kind(t->pid, &t->blocks[i]);
	}
	free(maps);
	free(devs);
	return r;
}

void qemu_kvm_pages__parse(struct json_object *stats, struct qemu_kvm_pages *k)
{
	size_t n = json_object_is_type(stats, json_type_array) ? json_object_array_length(stats) : 0;

	memset(k, 0, sizeof(*k));
	for (size_t i = 0; i < n; i++) {
		struct json_object *res = json_object_array_get_idx(stats, i), *list, *v;

		if (!json_object_object_get_ex(res, "provider", &v) ||
		    strcmp(json_object_get_string(v), "kvm") ||
		    !json_object_object_get_ex(res, "stats", &list))
			continue;
		for (size_t j = 0; j < json_object_array_length(list); j++) {
			struct json_object *s = json_object_array_get_idx(list, j), *name, *val;
			const char *nm;

			if (!json_object_object_get_ex(s, "name", &name) ||
			    !json_object_object_get_ex(s, "value", &val))
				continue;
			nm = json_object_get_string(name);
			if (!strcmp(nm, "pages_4k"))
				k->pages_4k = (uint64_t)json_object_get_int64(val), k->valid = true;
			else if (!strcmp(nm, "pages_2m"))
				k->pages_2m = (uint64_t)json_object_get_int64(val), k->valid = true;
			else if (!strcmp(nm, "pages_1g"))
				k->pages_1g = (uint64_t)json_object_get_int64(val), k->valid = true;
		}
	}
	if (!k->valid)
		snprintf(k->why, sizeof(k->why), "unavailable (no kvm pages_* in query-stats)");
}

void qemu_target__kvm_pages(struct qemu_target *t, struct qemu_kvm_pages *k)
{
	struct json_object *args, *prov, *names, *ret = NULL;
	char err[160];

	memset(k, 0, sizeof(*k));
	if (!t->kvm) {
		snprintf(k->why, sizeof(k->why), "unavailable (TCG)");
		return;
	}
	args = json_object_new_object();
	prov = json_object_new_object();
	names = json_object_new_array();
	json_object_array_add(names, json_object_new_string("pages_4k"));
	json_object_array_add(names, json_object_new_string("pages_2m"));
	json_object_array_add(names, json_object_new_string("pages_1g"));
	json_object_object_add(prov, "provider", json_object_new_string("kvm"));
	json_object_object_add(prov, "names", names);
	json_object_object_add(args, "target", json_object_new_string("vm"));
	json_object_object_add(args, "providers", json_object_new_array());
	json_object_array_add(json_object_object_get(args, "providers"), prov);
	if (qemu_target__execute(t, "query-stats", args, &ret, err, sizeof(err)) == 0)
		qemu_kvm_pages__parse(ret, k);
	else
		snprintf(k->why, sizeof(k->why), "unavailable (%.80s)", err);
	json_object_put(ret);
}

void qemu_target__close(struct qemu_target *t)
{
	if (t->qmp) {
		qemu_qmp__close(t->qmp);
		free(t->qmp);
	}
	if (t->lv)
		qemu_libvirt__close(t->lv);
	free(t->blocks);
	t->qmp = NULL;
	t->lv = NULL;
	t->blocks = NULL;
	t->nr_blocks = 0;
}
