/* path.c: where control sockets live: the runtime directory, VM names, name -> socket path. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/control/control.h"
#include "vmm/control/internal.h"

const char *control__runtime_dir(void)
{
	const char *d = getenv(CONTROL_RUNTIME_DIR_ENV);

	return d && *d ? d : CONTROL_RUNTIME_DIR;
}

bool control__valid_name(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > CONTROL_NAME_MAX || !isalnum((unsigned char)name[0]))
		return false;
	for (i = 1; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-')
			return false;
	}
	return true;
}

int control__check_name(const char *name, char *err, size_t errlen)
{
	size_t n = strlen(name);

	if (n > CONTROL_NAME_MAX) {
		snprintf(err, errlen, "VM name '%.*s...' is %zu characters long; at most %d are allowed",
			 24, name, n, CONTROL_NAME_MAX);
		return -ENAMETOOLONG;
	}
	if (!control__valid_name(name)) {
		snprintf(err, errlen, "invalid VM name '%s': use up to %d letters, digits, "
			 "'.', '_' or '-', starting with a letter or digit", name, CONTROL_NAME_MAX);
		return -EINVAL;
	}
	return 0;
}

int control__socket_path(const char *name_or_path, char *out, size_t outlen,
			 char *err, size_t errlen)
{
	size_t max = outlen < sizeof(((struct sockaddr_un *)0)->sun_path) ?
		     outlen : sizeof(((struct sockaddr_un *)0)->sun_path);
	int n;

	if (strchr(name_or_path, '/')) {
		n = snprintf(out, max, "%s", name_or_path);
	} else {
		int r = control__check_name(name_or_path, err, errlen);

		if (r < 0)
			return r;
		n = snprintf(out, max, "%s/%s.sock", control__runtime_dir(), name_or_path);
	}
	if (n < 0 || (size_t)n >= max) {
		snprintf(err, errlen, "socket path for '%s' is longer than %zu bytes",
			 name_or_path, max - 1);
		return -ENAMETOOLONG;
	}
	return 0;
}

int control__ensure_runtime_dir(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct stat sb;
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno != EEXIST) {
		snprintf(err, errlen, "cannot create runtime directory %s: %s", dir, strerror(errno));
		return -errno;
	}
	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "runtime directory %s is not a directory", dir);
		return -ENOTDIR;
	}
	/* The sockets' names and the VMs behind them are private: 0700, ours (README). */
	if (sb.st_uid != geteuid() || (sb.st_mode & 077)) {
		snprintf(err, errlen, "runtime directory %s has mode %04o and owner uid %u; it must be "
			 "private (mode 0700, owner uid %u): chmod 700 it, or point $%s elsewhere", dir,
			 (unsigned)(sb.st_mode & 07777), (unsigned)sb.st_uid, (unsigned)geteuid(),
			 CONTROL_RUNTIME_DIR_ENV);
		return -EPERM;
	}
	return 0;
}

/* A socket file exists at path: is a VM listening on it? */
int control__claim_path(struct control_server *s, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd, r;

	if (lstat(s->path, &sb) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(sb.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket; not replacing it", s->path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	r = r < 0 ? -errno : 0;
	close(fd);
	if (r == 0 || r == -EAGAIN) {
		snprintf(err, errlen, "a VM named %s is already running (socket %s)", s->name, s->path);
		return -EADDRINUSE;
	}
	if (r != -ECONNREFUSED && r != -ENOENT) {
		snprintf(err, errlen, "cannot check existing socket %s: %s", s->path, strerror(-r));
		return r;
	}
	if (unlink(s->path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale socket %s: %s", s->path, strerror(errno));
		return -errno;
	}
	snprintf(s->note, sizeof(s->note), "replaced stale socket %s (nobody was listening)", s->path);
	return 0;
}
