/* json.c: the VMM's json-c helpers: build objects, read values by a dotted path, frame one JSON line. */
#include "vmm/json.h"
#include "vmm/util.h"

#include <json-c/json.h>
#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <poll.h>
#include <sys/socket.h>
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

char *json__qmp_command(const char *command, struct json_object *args, int64_t id, size_t *len)
{
	struct json_object *req = json_object_new_object();
	char *line;

	json_object_object_add(req, "execute", json_object_new_string(command));
	if (args)
		json_object_object_add(req, "arguments", args);
	if (id >= 0)
		json_object_object_add(req, "id", json_object_new_int64(id));
	line = json__line(req, len);
	json_object_put(req);
	return line;
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

int json_stream__init(struct json_stream *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->tok = json_tokener_new();
	return s->tok ? 0 : -ENOMEM;
}

void json_stream__free(struct json_stream *s)
{
	if (s->tok)
		json_tokener_free(s->tok);
	s->tok = NULL;
}

/* A complete value from what is buffered: 1 (*out), 0 (need more bytes) or -EPROTO. */
static int json_stream__parse(struct json_stream *s, struct json_object **out)
{
	while (s->off < s->len) {
		enum json_tokener_error e;
		struct json_object *o;

		while (s->off < s->len && strchr(" \t\r\n", s->buf[s->off]))
			s->off++;
		if (s->off == s->len)
			break;
		o = json_tokener_parse_ex(s->tok, s->buf + s->off, (int)(s->len - s->off));
		e = json_tokener_get_error(s->tok);
		if (e == json_tokener_continue) {
			s->off = s->len;
			break;
		}
		if (e != json_tokener_success) {
			s->error = json_tokener_error_desc(e);
			return -EPROTO;
		}
		s->off += json_tokener_get_parse_end(s->tok);
		json_tokener_reset(s->tok);
		*out = o;
		return 1;
	}
	s->off = s->len = 0;
	return 0;
}

int json_stream__next(struct json_stream *s, int timeout_ms, struct json_object **out)
{
	uint64_t deadline = timeout_ms < 0 ? 0 : (util__now_ns() / 1000000) + (uint64_t)timeout_ms;

	for (;;) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		int r = json_stream__parse(s, out), wait = -1;
		ssize_t n;

		if (r)
			return r < 0 ? r : 0;
		if (timeout_ms >= 0) {
			uint64_t now = (util__now_ns() / 1000000);

			if (now >= deadline)
				return -ETIMEDOUT;
			wait = (int)(deadline - now);
		}
		r = poll(&p, 1, wait);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		n = recv(s->fd, s->buf, sizeof(s->buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 && errno != ECONNRESET ? -errno : -ECONNRESET;
		s->len = (size_t)n;
	}
}

/* Well-formed UTF-8: no overlong forms, surrogates or code points past U+10FFFF. */
bool json__utf8_valid(const void *s, size_t n)
{
	const unsigned char *p = s;

	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t need;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, cp = c & 0x07;
		else
			return false;
		for (size_t k = 1; k <= need; k++) {
			if (i + k >= n || (p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

/*
 * json-c's own check lets overlong forms and surrogates through; whatever a server echoes back
 * (ids, names, values in errors) must be strictly valid, so every string and key is checked.
 */
bool json__strings_utf8_valid(struct json_object *o)
{
	if (json_object_is_type(o, json_type_string))
		return json__utf8_valid((const unsigned char *)json_object_get_string(o),
				   (size_t)json_object_get_string_len(o));
	if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			if (!json__strings_utf8_valid(json_object_array_get_idx(o, i)))
				return false;
		return true;
	}
	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, key, val)
			if (!json__utf8_valid((const unsigned char *)key, strlen(key)) || !json__strings_utf8_valid(val))
				return false;
	}
	return true;
}
