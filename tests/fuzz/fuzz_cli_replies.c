/* fuzz_cli_replies.c: the QMP client and the list/stat/defrag/stop commands reading whatever a
 * (broken or hostile) VM sends: a scripted server answers every connection with the input's bytes. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/control/cli.h"
#include "vmm/control/control.h"

struct script_server {
	int listen_fd;
	char dir[64], path[128];
	pthread_mutex_t lock;
	uint8_t *script;            /* what every connection gets, then EOF (our copy: the input is
				     * freed while the last connection may still be served) */
	size_t len;
};

static struct script_server srv;

/* Accept, send the script, close our sending side, then read until the client is done. */
static void *script__thread(void *arg)
{
	for (;;) {
		int fd = accept(srv.listen_fd, NULL, NULL);
		char sink[4096];
		size_t off = 0;

		if (fd < 0)
			continue;
		pthread_mutex_lock(&srv.lock);
		while (off < srv.len) {
			ssize_t w = send(fd, srv.script + off, srv.len - off, MSG_NOSIGNAL);

			if (w <= 0)
				break;
			off += (size_t)w;
		}
		pthread_mutex_unlock(&srv.lock);
		shutdown(fd, SHUT_WR);
		while (recv(fd, sink, sizeof(sink), 0) > 0)
			;
		close(fd);
	}
	return NULL;
}

/* The fake VM's socket and runtime directory go when the fuzzer ends (normally or by -runs/-max_total_time). */
static void server__cleanup(void)
{
	unlink(srv.path);
	rmdir(srv.dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	pthread_t t;

	fuzz__quiet_stdout();
	/* the commands' own error lines; libFuzzer keeps its stream (it took the old FILE) */
	stderr = fopen("/dev/null", "w");
	if (!stderr)
		abort();
	snprintf(srv.dir, sizeof(srv.dir), "/tmp/vmc-fuzz-cli.XXXXXX");
	if (!mkdtemp(srv.dir))
		abort();
	atexit(server__cleanup);
	setenv(CONTROL_RUNTIME_DIR_ENV, srv.dir, 1);
	snprintf(srv.path, sizeof(srv.path), "%s/f.sock", srv.dir);
	memcpy(sa.sun_path, srv.path, strlen(srv.path) + 1);   /* a short /tmp path */
	srv.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv.listen_fd < 0 || bind(srv.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(srv.listen_fd, 64) || pthread_mutex_init(&srv.lock, NULL) ||
	    pthread_create(&t, NULL, script__thread, NULL))
		abort();
	return 0;
}

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *)))
#define CALL(fn, ...) fn(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

/* The first byte picks the command; the rest is what the "VM" sends on every connection. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int rc = 0;

	if (size < 1 || size > 65536)
		return 0;
	pthread_mutex_lock(&srv.lock);
	free(srv.script);
	srv.script = malloc(size);
	if (!srv.script)
		abort();
	memcpy(srv.script, data + 1, size - 1);
	srv.len = size - 1;
	pthread_mutex_unlock(&srv.lock);
	switch (data[0] % 7) {
	case 0: rc = CALL(cmd_stat, "stat", "f"); break;
	case 1: rc = CALL(cmd_stat, "stat", "--json", "f"); break;
	case 2: rc = CALL(cmd_defrag, "defrag", "f", "--wait"); break;
	case 3: rc = CALL(cmd_defrag, "defrag", "f", "--cancel"); break;
	case 4: rc = CALL(cmd_stop, "stop", "f", "--timeout", "5"); break;
	case 5: rc = CALL(cmd_stop, "stop", "--no-wait", "f"); break;
	case 6: rc = CALL(cmd_list, "list"); break;
	}
	FUZZ_ASSERT(rc >= 0 && rc <= 7, "exit code %d", rc);
	fflush(stdout);
	fflush(stderr);
	return 0;
}
