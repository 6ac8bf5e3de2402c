/* libvirt.c: reach a libvirt domain's QEMU: connect, look the domain up, QMP through virDomainQemuMonitorCommand. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "vmm/qemu/libvirt.h"
#include "vmm/qemu/qemu_proc.h"
#include "vmm/qemu/qmp.h"

#ifdef HAVE_LIBVIRT
#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#define LIBVIRT_DEFAULT_URI "qemu:///session"

struct qemu_libvirt {
	virConnectPtr conn;
	virDomainPtr dom;
	char name[256];
};

bool qemu_libvirt__built_in(void)
{
	return true;
}

/* libvirt prints every error to stderr by default; we report our own one line. */
static void libvirt__quiet(void *data, virErrorPtr error)
{
}

static const char *libvirt__last_error(void)
{
	virErrorPtr e = virGetLastError();

	return e && e->message ? e->message : "unknown libvirt error";
}

int qemu_libvirt__open(struct qemu_libvirt **out, const char *name, const char *uri, pid_t *pid,
		       char *err, size_t errlen)
{
	struct qemu_libvirt *lv = calloc(1, sizeof(*lv));
	virErrorPtr e;
	int r;

	*out = NULL;
	if (!lv)
		return -ENOMEM;
	snprintf(lv->name, sizeof(lv->name), "%s", name);
	if (!uri)
		uri = getenv("LIBVIRT_DEFAULT_URI");
	if (!uri || !*uri)
		uri = LIBVIRT_DEFAULT_URI;
	virSetErrorFunc(NULL, libvirt__quiet);
	lv->conn = virConnectOpen(uri);
	if (!lv->conn) {
		snprintf(err, errlen, "cannot connect to libvirt at %s: %s (start a private daemon "
			 "with scripts/libvirt-session.sh start, then --connect URI)", uri,
			 libvirt__last_error());
		r = -ENOTSUP;
		goto fail;
	}
	lv->dom = virDomainLookupByName(lv->conn, name);
	if (!lv->dom) {
		e = virGetLastError();
		if (e && e->code == VIR_ERR_NO_DOMAIN) {
			snprintf(err, errlen, "no libvirt domain named '%s' at %s", name, uri);
			r = -ENOENT;
		} else {
			snprintf(err, errlen, "libvirt: %s", libvirt__last_error());
			r = -EIO;
		}
		goto fail;
	}
	if (virDomainIsActive(lv->dom) != 1) {
		snprintf(err, errlen, "libvirt domain '%s' is not running", name);
		r = -ESRCH;
		goto fail;
	}
	if (qemu_proc__find_guest(name, pid) < 0) {
		snprintf(err, errlen, "libvirt domain '%s' runs, but no QEMU process with -name "
			 "guest=%s is visible here", name, name);
		r = -ESRCH;
		goto fail;
	}
	*out = lv;
	return 0;
fail:
	qemu_libvirt__close(lv);
	return r;
}

int qemu_libvirt__execute(struct qemu_libvirt *lv, const char *command, struct json_object *args,
			  struct json_object **ret, char *err, size_t errlen)
{
	char *cmd = qemu_qmp__command_text(command, args), *reply = NULL;
	int r;

	*ret = NULL;
	if (!cmd)
		return -ENOMEM;
	if (virDomainQemuMonitorCommand(lv->dom, cmd, &reply, 0) < 0) {
		snprintf(err, errlen, "libvirt monitor command %s on '%s': %s", command, lv->name,
			 libvirt__last_error());
		free(cmd);
		return -EIO;
	}
	free(cmd);
	r = qemu_qmp__parse_reply(reply, ret, err, errlen);
	free(reply);
	return r;
}

void qemu_libvirt__close(struct qemu_libvirt *lv)
{
	if (!lv)
		return;
	if (lv->dom)
		virDomainFree(lv->dom);
	if (lv->conn)
		virConnectClose(lv->conn);
	free(lv);
}

#else /* !HAVE_LIBVIRT */

bool qemu_libvirt__built_in(void)
{
	return false;
}

int qemu_libvirt__open(struct qemu_libvirt **out, const char *name, const char *uri, pid_t *pid,
		       char *err, size_t errlen)
{
	*out = NULL;
	snprintf(err, errlen, "this vmcompact was built without libvirt (install libvirt-dev and "
		 "rebuild) so --domain %s cannot be used", name);
	return -ENOTSUP;
}

int qemu_libvirt__execute(struct qemu_libvirt *lv, const char *command, struct json_object *args,
			  struct json_object **ret, char *err, size_t errlen)
{
	json_object_put(args);
	*ret = NULL;
	snprintf(err, errlen, "built without libvirt");
	return -ENOTSUP;
}

void qemu_libvirt__close(struct qemu_libvirt *lv)
{
}

#endif
