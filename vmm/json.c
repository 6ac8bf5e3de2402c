/* json.c: the VMM's json-c helpers: build objects, read values by a dotted path, frame one JSON line. */
#include "vmm/json.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct json_object *json_path(struct json_object *o, const char *path)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *tok = strtok_r(buf, ".", &save); o && tok; tok = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(o, json_type_array))
			o = json_object_array_get_idx(o, (size_t)strtoul(tok, NULL, 10));
		else if (!json_object_object_get_ex(o, tok, &o))
			o = NULL;
	}
	return o;
}

double json_path_double(struct json_object *o, const char *path, double missing)
{
	struct json_object *v = json_path(o, path);

	return v ? json_object_get_double(v) : missing;
}

uint64_t json_path_u64(struct json_object *o, const char *path)
{
	struct json_object *v = json_path(o, path);

	return v ? json_object_get_uint64(v) : 0;
}

const char *json_path_string(struct json_object *o, const char *path, const char *missing)
{
	struct json_object *v = json_path(o, path);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : missing;
}

void json__add(struct json_object *o, const char *key, struct json_object *v)
{
	json_object_object_add(o, key, v);
}

void json__add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

void json__add_str(struct json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v));
}

struct json_object *json__fixed(double v, int decimals)
{
	char buf[64];

	if (!isfinite(v))
		return NULL;
	snprintf(buf, sizeof(buf), "%.*f", decimals, v);
	return json_object_new_double_s(v, buf);
}

char *json__line(struct json_object *o, size_t *len)
{
	const char *txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t n = strlen(txt);
	char *line = malloc(n + 2);

	if (!line)
		return NULL;
	memcpy(line, txt, n);
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}
