/* fuzz_control.c: the control socket's framing and command table (vmm/control) fed one client's bytes
 * in memory, against a real small guest memory and a fake VM host; every reply must be strict JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/json.h"
#include "vmm/control/control.h"
#include "vmm/control/internal.h"

struct fuzz_vm {
	struct mm mm;
	struct mm_step_ops ops;
	struct vmm_host host;
	struct control_server srv;
	unsigned stops;
};

static struct fuzz_vm *vm;

/* Defrag steps fail at once: jobs start and end without moving guest memory around. */
static int fake__pause(void *ctx)
{
	return -EIO;
}

static void fake__resume(void *ctx)
{
}

static void fake__request_stop(void *ctx)
{
	vm->stops++;
}

static void fake__add_status(void *ctx, struct json_object *o)
{
	json_object_object_add(o, "workload", json_object_new_string("fuzz"));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct mm_config mc = { 0 };
	struct aging_config ac = AGING_DEFAULTS;
	char err[512];

	vm = calloc(1, sizeof(*vm));
	mc.guest_bytes = 16 << 20;
	mc.slack_bytes = 8 << 20;
	mc.prefault = true;
	ac.age = 1.0;
	ac.seed = 3;
	mc.aging = ac;
	if (!vm || mm__create(&vm->mm, &mc, err, sizeof(err))) {
		fprintf(stderr, "fuzz_control: mm__create: %s\n", err);
		abort();
	}
	vm->ops = (struct mm_step_ops){ .pause = fake__pause, .resume = fake__resume, .ctx = vm };
	vm->host.ctx = vm;
	vm->host.mm = &vm->mm;
	vm->host.step_ops = &vm->ops;
	vm->host.nr_vcpus = 1;
	vm->host.request_stop = fake__request_stop;
	vm->host.add_status = fake__add_status;
	if (vmm_host__start_defrag(&vm->host, NULL, err, sizeof(err)) ||
	    control__init_detached(&vm->srv, &vm->host, "fuzz")) {
		fprintf(stderr, "fuzz_control: cannot start: %s\n", err);
		abort();
	}
	return 0;
}

/* Every line the server sends is one strict JSON object of a known kind. */
static void check_output(const char *out, size_t n)
{
	struct json_tokener *tok = json_tokener_new();
	size_t off = 0;

	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	FUZZ_ASSERT(n && out[n - 1] == '\n', "output does not end a line (%zu bytes)", n);
	FUZZ_ASSERT(json__utf8_valid(out, n), "output is not UTF-8: %.*s", (int)n, out);
	while (off < n) {
		const char *nl = memchr(out + off, '\n', n - off);
		size_t len = (size_t)(nl - (out + off));
		struct json_object *o;

		json_tokener_reset(tok);
		o = json_tokener_parse_ex(tok, out + off, (int)len);
		FUZZ_ASSERT(o && json_tokener_get_error(tok) == json_tokener_success &&
			    json_tokener_get_parse_end(tok) == len, "not one strict JSON value: %.*s", (int)len,
			    out + off);
		FUZZ_ASSERT(json_object_is_type(o, json_type_object) &&
			    (json_object_object_get_ex(o, "QMP", NULL) || json_object_object_get_ex(o, "return", NULL) ||
			     json_object_object_get_ex(o, "error", NULL)), "unexpected reply: %.*s", (int)len, out + off);
		json_object_put(o);
		off += len + 1;
	}
	json_tokener_free(tok);
}

/* What one input may have changed, back to the start: no job, default policy, not stopping. */
static void reset(void)
{
	static const struct defragd_policy defaults = DEFRAGD_POLICY_DEFAULTS;
	struct defragd_policy p;
	char err[256];
	uint64_t id;

	if (defrag_job__cancel(&vm->host.job, &id) == 0)
		defrag_job__wait(&vm->host.job, id, NULL);
	defragd__snapshot(&vm->host.defragd, &p, NULL, NULL);
	if (memcmp(&p, &defaults, sizeof(p)) && defragd__set_policy(&vm->host.defragd, &defaults, err, sizeof(err)))
		abort();
	if (defrag_job__cancel(&vm->host.job, &id) == 0)   /* defragd may have started one meanwhile */
		defrag_job__wait(&vm->host.job, id, NULL);
	pthread_mutex_lock(&vm->srv.lock);
	vm->srv.stop_requested = false;
	pthread_mutex_unlock(&vm->srv.lock);
}

/* The first byte picks how the bytes arrive: all at once or in small pieces (split framing). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t chunk = 0, n;
	char *out;

	if (size > CONTROL_MAX_MSG * 2)
		return 0;
	if (size) {
		chunk = data[0] < 0x80 ? 0 : (size_t)(data[0] & 0x3f) + 1;
		data++;
		size--;
	}
	out = control__feed(&vm->srv, data, size, chunk, &n);
	FUZZ_ASSERT(out, "out of memory");
	check_output(out, n);
	free(out);
	reset();
	return 0;
}
