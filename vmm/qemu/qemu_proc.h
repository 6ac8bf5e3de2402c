/* qemu_proc.h: a running QEMU guest seen from outside: its PID, its monitor (QMP socket or libvirt) and its RAM blocks. */
#ifndef VMC_VMM_QEMU_QEMU_PROC_H
#define VMC_VMM_QEMU_QEMU_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct json_object;
struct qemu_qmp;
struct qemu_libvirt;

/*
 * Exit codes of `vmcompact stat|defrag|watch --domain|--qemu|--qmp` and
 * `vmcompact qemu run` (the first six match the control commands').
 */
enum {
	QEMU_EXIT_OK = 0,
	QEMU_EXIT_FAILED = 1,          /* error, or regions that could not be collapsed */
	QEMU_EXIT_USAGE = 2,
	QEMU_EXIT_NO_TARGET = 3,       /* no such domain, PID or QMP socket */
	QEMU_EXIT_STALE = 4,           /* QMP socket with nobody listening */
	QEMU_EXIT_DENIED = 5,          /* permission denied */
	QEMU_EXIT_NOT_QEMU = 6,        /* the PID or socket is not a QEMU guest */
	QEMU_EXIT_NOT_COLLAPSIBLE = 7, /* no guest RAM that MADV_COLLAPSE can put on 2 MiB pages */
	QEMU_EXIT_UNAVAILABLE = 8,     /* libvirt (or QEMU) not installed or not reachable */
};
extern const char qemu_exit_codes_help[];
/* A negative errno from this module to an exit code above. */
int qemu_exit__from_errno(int err);

/* One line of /proc/PID/maps. */
struct maps_entry {
	uint64_t start, end, offset;
	char perms[5];
	uint64_t inode;
	char path[256];
};
/* 0, or -EINVAL for a line that is not a maps line. */
int maps_entry__parse(const char *line, struct maps_entry *e);
/* All of /proc/PID/maps. */
int maps__read(pid_t pid, struct maps_entry **out, size_t *nr, char *err, size_t errlen);

/* One entry of QMP query-memdev, with its QOM type and mem-path. */
struct qemu_memdev {
	char id[64];
	char type[48];            /* memory-backend-ram, -memfd, -file, ... */
	uint64_t size;
	bool share, prealloc;
	char mem_path[256];       /* memory-backend-file only */
};
/* The query-memdev return value; types/mem-paths are filled in by the caller. */
int qemu_memdev__parse(struct json_object *list, struct qemu_memdev **out, size_t *nr,
		       char *err, size_t errlen);

enum ram_kind { RAM_ANON, RAM_SHMEM, RAM_FILE, RAM_HUGETLB, RAM_UNKNOWN };
extern const char *const ram_kind_names[];

struct qemu_ramblock {
	struct qemu_memdev dev;
	bool identified;          /* a mapping was found for it */
	uint64_t start, end;      /* host virtual range in QEMU */
	uint64_t file_offset;
	char mapping[256];        /* the maps path, "" for anonymous */
	enum ram_kind kind;
	bool collapsible;         /* MADV_COLLAPSE can give it PMD mappings */
	char note[256];           /* how it was matched, or why it is not collapsible */
};

/*
 * Match memdevs to mappings: memfd to "/memfd:" shared mappings, files to their
 * mem-path, RAM to private anonymous mappings, each by exact size (one VMA or
 * a run of contiguous ones); ties in address order (QEMU 7.2 reports no host
 * address). Fills blocks[nr_dev].
 */
void qemu_ram__match(const struct qemu_memdev *devs, size_t nr_dev, struct maps_entry *maps,
		     size_t nr_maps, struct qemu_ramblock *blocks);

struct qemu_target {
	pid_t pid;
	char label[160];             /* "domain NAME", "QEMU PID 123", ... */
	struct qemu_qmp *qmp;        /* one of these two, or neither */
	struct qemu_libvirt *lv;
	struct qemu_ramblock *blocks;
	size_t nr_blocks;
	bool kvm;                    /* QEMU runs with KVM (query-kvm) */
};

/* A libvirt guest's QEMU (no QMP socket of its own) is reached through libvirt at uri. */
int qemu_target__open_pid(struct qemu_target *t, pid_t pid, const char *uri, char *err,
			  size_t errlen);
int qemu_target__open_qmp(struct qemu_target *t, const char *path, char *err, size_t errlen);
/* uri NULL: $LIBVIRT_DEFAULT_URI, else qemu:///session. */
int qemu_target__open_domain(struct qemu_target *t, const char *name, const char *uri,
			     char *err, size_t errlen);
int qemu_target__execute(struct qemu_target *t, const char *command, struct json_object *args,
			 struct json_object **ret, char *err, size_t errlen);
/* Query memdevs and match them to /proc/PID/maps; -ENODATA if there are none. */
int qemu_target__find_ram(struct qemu_target *t, char *err, size_t errlen);
void qemu_target__close(struct qemu_target *t);

/* KVM's page-size counters through QMP query-stats. */
struct qemu_kvm_pages {
	bool valid;
	uint64_t pages_4k, pages_2m, pages_1g;
	char why[96];                /* when not valid: "unavailable (TCG)", ... */
};
void qemu_target__kvm_pages(struct qemu_target *t, struct qemu_kvm_pages *k);
/* The query-stats return value (target vm, provider kvm) to counters. */
void qemu_kvm_pages__parse(struct json_object *stats, struct qemu_kvm_pages *k);

/* Whether /proc/PID is a qemu-system-* process: 0, -ESRCH, -EACCES, -ENOEXEC. */
int qemu_proc__check(pid_t pid, char *err, size_t errlen);
/* The nth QMP unix socket path on QEMU's command line (-qmp unix:P / -chardev socket,path=P + -mon). */
int qemu_cmdline__qmp_path(const char *cmdline, size_t len, unsigned nth, char *path,
			   size_t pathlen);
/* libvirt's guest name ("-name guest=NAME,...") from the command line. */
int qemu_cmdline__guest_name(const char *cmdline, size_t len, char *name, size_t namelen);
/* PID of the QEMU that runs libvirt guest NAME (scans /proc); -ESRCH if none. */
int qemu_proc__find_guest(const char *name, pid_t *pid);

#endif
