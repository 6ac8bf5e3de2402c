/* libvirt.h: a libvirt domain's QEMU monitor through libvirt's C API (QMP passthrough). */
#ifndef VMC_VMM_QEMU_LIBVIRT_H
#define VMC_VMM_QEMU_LIBVIRT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct json_object;
struct qemu_libvirt;

/* False when vmcompact was built without libvirt-dev. */
bool qemu_libvirt__built_in(void);
/*
 * Connect (uri NULL: $LIBVIRT_DEFAULT_URI, else qemu:///session), look the
 * domain up and find its QEMU PID. -ENOTSUP: libvirt missing or unreachable;
 * -ENOENT: no such domain; -ESRCH: the domain is not running.
 */
int qemu_libvirt__open(struct qemu_libvirt **out, const char *name, const char *uri, pid_t *pid,
		       char *err, size_t errlen);
/* QMP through virDomainQemuMonitorCommand; args consumed; as qemu_qmp__execute. */
int qemu_libvirt__execute(struct qemu_libvirt *lv, const char *command, struct json_object *args,
			  struct json_object **ret, char *err, size_t errlen);
void qemu_libvirt__close(struct qemu_libvirt *lv);

#endif
