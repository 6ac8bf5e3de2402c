/* path.c: where control sockets live: the runtime directory, VM names, name -> socket path. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "vmm/control/control.h"

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
