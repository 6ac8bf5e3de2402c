/* cli.c: `vmcompact snapshot NAME FILE [--live] [--no-layout] [--json]`: ask a running VM to write its snapshot. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vmm/control/client.h"
#include "vmm/snapshot/cli.h"

static void snapshot__usage(FILE *f)
{
	fprintf(f, "Usage: vmcompact snapshot NAME FILE [--live] [--no-layout] [--json]\n"
		   "Write the running VM NAME to FILE: vCPU state, guest memory (pages that are not all zero,\n"
		   "2 MiB records by guest-physical address) and the pool layout. The vCPUs are paused while\n"
		   "memory is written; restore with `vmcompact run --restore FILE`.\n\n"
		   "  --live        write memory while the guest runs, then pause only to rewrite what\n"
		   "                KVM's dirty log says changed meanwhile\n"
		   "  --no-layout   leave out the pool layout (then --restore-layout is not possible)\n"
		   "  --json        print the VM's answer as JSON\n"
		   "  --timeout S   wait at most S seconds for the answer (default 600)\n"
		   "Exit status: 0 written; 1 the VM could not write it; 2 usage; 3 no such VM; 4 stale socket;\n"
		   "5 permission denied.\n");
}

/* FILE relative to our working directory, made absolute for the VMM process. */
static int snapshot__abs_path(const char *file, char *out, size_t len)
{
	char dir[PATH_MAX], copy[PATH_MAX], real[PATH_MAX], base_copy[PATH_MAX];

	if (strlen(file) >= sizeof(copy))
		return -ENAMETOOLONG;
	strcpy(copy, file);
	strcpy(base_copy, file);
	snprintf(dir, sizeof(dir), "%s", dirname(copy));
	if (!realpath(dir, real))
		return -errno;
	return (size_t)snprintf(out, len, "%s/%s", real, basename(base_copy)) >= len ? -ENAMETOOLONG : 0;
}

static int snapshot__run(const char *vm, const char *path, bool live, bool layout, bool json, int timeout_s)
{
	struct json_object *args = json_object_new_object(), *ret = NULL;
	struct qmp_client c;
	char err[1024];
	int r;

	r = qmp_client__connect(&c, vm, 5000, err, sizeof(err));
	if (r < 0) {
		json_object_put(args);
		fprintf(stderr, "vmcompact snapshot: %s\n", err);
		return cli__exit_code(r);
	}
	c.timeout_ms = timeout_s * 1000;
	json_object_object_add(args, "file", json_object_new_string(path));
	json_object_object_add(args, "live", json_object_new_boolean(live));
	json_object_object_add(args, "layout", json_object_new_boolean(layout));
	r = qmp_client__execute(&c, "snapshot", args, &ret, err, sizeof(err));
	qmp_client__close(&c);
	if (r < 0) {
		fprintf(stderr, "vmcompact snapshot: %s\n", err);
		return CLI_FAILED;
	}
	if (json)
		printf("%s\n", json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	else
		printf("%s: %s written, %.1f MiB of memory in %.0f ms, vCPUs paused %.1f ms\n", vm, path,
		       json_object_get_uint64(json_object_object_get(ret, "data_bytes")) / 1048576.0,
		       json_object_get_double(json_object_object_get(ret, "total_ms")),
		       json_object_get_double(json_object_object_get(ret, "pause_ms")));
	json_object_put(ret);
	return CLI_OK;
}

int cmd_snapshot(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "live", no_argument, NULL, 'l' },
		{ "no-layout", no_argument, NULL, 'L' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	bool live = false, layout = true, json = false;
	char path[PATH_MAX], *end;
	long timeout_s = 600;
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l': live = true; break;
		case 'L': layout = false; break;
		case 'j': json = true; break;
		case 't':
			timeout_s = strtol(optarg, &end, 10);
			if (*end || timeout_s < 1 || timeout_s > 86400) {
				fprintf(stderr, "vmcompact snapshot: --timeout '%s': need 1..86400 seconds\n", optarg);
				return CLI_USAGE;
			}
			break;
		case 'h': snapshot__usage(stdout); return CLI_OK;
		default: snapshot__usage(stderr); return CLI_USAGE;
		}
	}
	if (optind != argc - 2) {
		snapshot__usage(stderr);
		return CLI_USAGE;
	}
	r = snapshot__abs_path(argv[optind + 1], path, sizeof(path));
	if (r) {
		fprintf(stderr, "vmcompact snapshot: %s: %s\n", argv[optind + 1], strerror(-r));
		return CLI_USAGE;
	}
	return snapshot__run(argv[optind], path, live, layout, json, (int)timeout_s);
}
