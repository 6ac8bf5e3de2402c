/* json_path.c: read a value out of a json-c tree by a dotted path ("vcpus.1.updates"). */
#include "vmm/json_path.h"

#include <json-c/json.h>
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

	return v ? json_object_get_string(v) : missing;
}
