/* test_bench_moves.c: runs `vmcompact bench moves --json` (verify on every vCPU, >= 10^5 page moves) and checks 0 errors. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <json-c/json.h>

#define SKIP 77
#define MOVES 100000

static int failures;

static void expect(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void expect(int cond, const char *fmt, ...)
{
	va_list ap;

	if (cond)
		return;
	failures++;
	fputs("FAIL: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static struct json_object *field(struct json_object *j, const char *key)
{
	struct json_object *v = NULL;

	return j && json_object_object_get_ex(j, key, &v) ? v : NULL;
}

static double num(struct json_object *j, const char *key)
{
	struct json_object *v = field(j, key);

	return v ? json_object_get_double(v) : -1;
}

int main(int argc, char **argv)
{
	char cmd[4096], *out = NULL;
	size_t len = 0, cap = 0, n;
	struct json_object *j, *vcpus;
	int status, exit_code;
	FILE *p;

	if (argc < 2) {
		fprintf(stderr, "usage: %s VMCOMPACT\n", argv[0]);
		return 2;
	}
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("SKIP: /dev/kvm is not usable (%s): this host cannot run KVM guests\n", strerror(errno));
		return getenv("VMC_REQUIRE_KVM") ? 1 : SKIP;
	}
	/* 64 MiB, 2 vCPUs: about 10 rounds of 5000 scattered pages and their defrag. */
	snprintf(cmd, sizeof(cmd), "'%s' bench moves --mem 64M --cpus 2 --moves %d --scatter-per-round 5000 --json",
		 argv[1], MOVES);
	printf("running: %s\n", cmd);
	fflush(stdout);
	p = popen(cmd, "r"); /* the guest console and progress go to our stderr */
	if (!p) {
		perror("popen");
		return 1;
	}
	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? 2 * cap : 1 << 20;
			out = realloc(out, cap + 1);
			if (!out) {
				perror("realloc");
				return 1;
			}
		}
		n = fread(out + len, 1, cap - len, p);
		if (!n)
			break;
		len += n;
	}
	out[len] = 0;
	status = pclose(p);
	exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	printf("%s", out);
	if (strstr(out, "SKIP") && exit_code == SKIP)
		return SKIP;

	j = json_tokener_parse(out);
	expect(j != NULL, "no JSON on stdout");
	expect(exit_code == 0, "exit status %d", exit_code);
	expect(field(j, "ok") && json_object_get_boolean(field(j, "ok")), "ok is not true (error: %s)",
	       field(j, "error") ? json_object_get_string(field(j, "error")) : "none");
	expect(num(j, "moves") >= MOVES, "%.0f moves, want >= %d", num(j, "moves"), MOVES);
	expect(num(j, "moves") == num(j, "moves_scatter") + num(j, "moves_defrag"), "moves %.0f != %.0f + %.0f",
	       num(j, "moves"), num(j, "moves_scatter"), num(j, "moves_defrag"));
	expect(num(j, "moves_scatter") >= 5000 && num(j, "moves_defrag") > 0, "scatter %.0f, defrag %.0f moves",
	       num(j, "moves_scatter"), num(j, "moves_defrag"));
	expect(num(j, "rounds") >= 2, "%.0f rounds", num(j, "rounds"));
	expect(num(j, "verify_errors") == 0, "VERIFY ERRORS: %.0f (stale %.0f)", num(j, "verify_errors"),
	       num(j, "verify_stale_words"));
	expect(num(j, "steps") > 0 && num(j, "steps") == num(j, "engine_steps"), "steps %.0f, engine steps %.0f",
	       num(j, "steps"), num(j, "engine_steps"));
	expect(num(j, "backing_2m_final") == num(j, "backing_2m_achievable") && num(j, "backing_2m_final") > 0,
	       "final backing_2m %.3f, achievable %.3f", num(j, "backing_2m_final"), num(j, "backing_2m_achievable"));
	vcpus = field(j, "vcpus");
	expect(vcpus && json_object_array_length(vcpus) == 2, "want 2 vCPUs in the result");
	for (size_t i = 0; vcpus && i < json_object_array_length(vcpus); i++) {
		struct json_object *v = json_object_array_get_idx(vcpus, i);

		expect(num(v, "passes_during_moves") > 0, "vCPU %zu: no verify pass during the moves", i);
		expect(num(v, "errors") == 0, "vCPU %zu: %.0f verify errors", i, num(v, "errors"));
		expect(num(v, "checked_words") > 0, "vCPU %zu: checked no word", i);
		expect(field(v, "final") && json_object_get_boolean(field(v, "final")), "vCPU %zu: no final report", i);
	}
	if (j)
		json_object_put(j);
	free(out);
	printf("%s\n", failures ? "FAILED" : "ok: bench moves verified with 0 errors");
	return failures ? 1 : 0;
}
