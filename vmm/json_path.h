/* json_path.h: read a value out of a json-c tree by a dotted path ("vcpus.1.updates"). */
#ifndef VMC_VMM_JSON_PATH_H
#define VMC_VMM_JSON_PATH_H

#include <stdint.h>

struct json_object;

/* Object keys and array indices separated by dots; NULL if any step is missing. */
struct json_object *json_path(struct json_object *o, const char *path);
double json_path_double(struct json_object *o, const char *path, double missing);
uint64_t json_path_u64(struct json_object *o, const char *path);      /* 0 if missing */
const char *json_path_string(struct json_object *o, const char *path, const char *missing);

#endif
