/* json.h: the VMM's json-c helpers: build objects, read values by a dotted path, frame one JSON line. */
#ifndef VMC_VMM_JSON_H
#define VMC_VMM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

/* --- building --- */
void json__add(struct json_object *o, const char *key, struct json_object *v);
void json__add_u64(struct json_object *o, const char *key, uint64_t v);
void json__add_str(struct json_object *o, const char *key, const char *v);
/* A double printed with a fixed number of decimals (json-c keeps the text); NULL if not finite. */
struct json_object *json__fixed(double v, int decimals);
/* The object as one compact line ending in '\n' (malloc'd; *len without the NUL). NULL: no memory. */
char *json__line(struct json_object *o, size_t *len);

/* A QMP command line: {"execute":command, "arguments":args, "id":id} and '\n' (args is taken,
 * may be NULL; id < 0: no id). malloc'd, *len without the NUL; NULL: no memory. */
char *json__qmp_command(const char *command, struct json_object *args, int64_t id, size_t *len);

/* n bytes of well-formed UTF-8: no overlong forms, surrogates or code points past U+10FFFF. */
bool json__utf8_valid(const void *s, size_t n);
/* Every string and key in o is well-formed UTF-8 (no overlong forms, surrogates, > U+10FFFF). */
bool json__strings_utf8_valid(struct json_object *o);

/* --- reading: object keys and array indices separated by dots ("vcpus.1.updates") --- */
/* NULL if any step is missing. */
struct json_object *json_path(struct json_object *o, const char *path);
double json_path_double(struct json_object *o, const char *path, double missing);
uint64_t json_path_u64(struct json_object *o, const char *path);      /* 0 if missing */
/* The string at path; missing if absent or not a string. */
const char *json_path_string(struct json_object *o, const char *path, const char *missing);

/* --- reading a stream of JSON values from a socket (QMP's framing: values back to back) --- */
struct json_tokener;
struct json_stream {
	int fd;
	struct json_tokener *tok;
	char buf[16384];             /* received, not yet parsed */
	size_t off, len;
	const char *error;           /* after -EPROTO: json-c's description */
};

/* 0 or -ENOMEM. Does not own fd. */
int json_stream__init(struct json_stream *s, int fd);
void json_stream__free(struct json_stream *s);
/* The next complete value (caller puts it). timeout_ms < 0 waits forever. 0, -ETIMEDOUT,
 * -ECONNRESET (the peer closed), -EPROTO (not JSON: s->error says why) or -errno. */
int json_stream__next(struct json_stream *s, int timeout_ms, struct json_object **out);

#endif
