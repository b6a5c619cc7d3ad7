/*
 * rows.c - a JSON page read a row at a time (see rk_read_rows in client.h).
 *
 * jansson parses one row; JSON_DISABLE_EOF_CHECK makes it stop at the
 * row's end and say where that is. Only the brackets, commas and colons
 * around the rows are read here, so the page never exists as one tree, and
 * the nodes of one row are reused for the next from the thread's cache.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "kit_internal.h"

typedef struct text_s {
  const rk_rows_reader_t *r;
  const char *start, *p, *end;
  bool *not_json;
  char *msg;
  size_t msglen;
} text_t;

static void skip_space(text_t *t) {
  while (t->p < t->end &&
         (*t->p == ' ' || *t->p == '\t' || *t->p == '\n' || *t->p == '\r'))
    t->p++;
}

static bool eat(text_t *t, char c) {
  skip_space(t);
  if (t->p == t->end || *t->p != c)
    return false;
  t->p++;
  return true;
}

static size_t offset(const text_t *t) { return (size_t)(t->p - t->start); }

static int not_json(text_t *t, const char *what, size_t at) {
  *t->not_json = true;
  snprintf(t->msg, t->msglen,
           "%s: the answer is not valid JSON (%s at byte %zu)", t->r->what,
           what, at);
  return RN_EJSON;
}

/* The next value, or NULL with the page refused as not JSON. */
static json_t *next_value(text_t *t) {
  skip_space(t);
  json_error_t jerr;
  json_t *v = json_loadb(t->p, (size_t)(t->end - t->p),
                         JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK |
                             JSON_REJECT_DUPLICATES,
                         &jerr);
  if (!v) {
    not_json(t, jerr.text, offset(t) + (size_t)jerr.position);
    return NULL;
  }
  t->p += jerr.position;
  return v;
}

const char *rk_json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  default:
    return "null";
  }
}

/* The rows of an array whose '[' has been read. */
static int read_rows(text_t *t) {
  if (eat(t, ']'))
    return 0;
  for (size_t i = 0;; i++) {
    json_t *row = next_value(t);
    if (!row)
      return RN_EJSON;
    int rc = 0;
    if (!json_is_object(row)) {
      snprintf(t->msg, t->msglen, "%s: row %zu is %s, expected an object",
               t->r->what, i + 1, rk_json_type_name(row));
      rc = RN_EJSON;
    } else {
      rc = t->r->row(row, i, t->r->data, t->msg, t->msglen);
    }
    json_decref(row);
    if (rc)
      return rc;
    if (eat(t, ','))
      continue;
    if (eat(t, ']'))
      return 0;
    return not_json(t, "',' or ']' expected", offset(t));
  }
}

/* The members of an object whose '{' has been read. */
static int read_members(text_t *t) {
  json_t *seen = json_object(); /* keys, to refuse one given twice */
  if (!seen)
    return RN_ENOMEM;
  int rc = 0;
  if (eat(t, '}'))
    goto out;
  for (;;) {
    size_t key_at = offset(t);
    json_t *k = next_value(t);
    if (!k) {
      rc = RN_EJSON;
      break;
    }
    const char *key = json_string_value(k);
    if (!key || !eat(t, ':')) {
      json_decref(k);
      rc = not_json(t, "a key and ':' expected", key_at);
      break;
    }
    if (json_object_get(seen, key) ||
        json_object_set_new(seen, key, json_true()) != 0) {
      json_decref(k);
      rc = not_json(t, "duplicate key", key_at);
      break;
    }
    bool rows = strcmp(key, t->r->rows_key) == 0;
    if (rows && eat(t, '[')) {
      rc = read_rows(t);
    } else {
      json_t *v = next_value(t);
      if (!v) {
        rc = RN_EJSON;
      } else if (rows && !json_is_null(v)) {
        snprintf(t->msg, t->msglen, "%s: '%s' is %s, expected an array",
                 t->r->what, key, rk_json_type_name(v));
        rc = RN_EJSON;
      } else if (!rows && t->r->member) {
        rc = t->r->member(key, v, t->r->data, t->msg, t->msglen);
      }
      json_decref(v);
    }
    json_decref(k);
    if (rc)
      break;
    if (eat(t, ','))
      continue;
    if (!eat(t, '}'))
      rc = not_json(t, "',' or '}' expected", offset(t));
    break;
  }
out:
  json_decref(seen);
  return rc;
}

int rk_read_rows(const char *body, size_t len, const rk_rows_reader_t *r,
                 bool *not_json_out, char *msg, size_t msglen) {
  *not_json_out = false;
  if (!r || r->struct_size < offsetof(rk_rows_reader_t, data) + sizeof r->data ||
      !r->row || !r->what) {
    snprintf(msg, msglen, "rk_read_rows: a reader with what and row is "
                          "required");
    return RN_EINVAL;
  }
  text_t t = {.r = r, .start = body, .p = body, .end = body + len,
              .not_json = not_json_out, .msg = msg, .msglen = msglen};
  bool array = !r->rows_key;
  int rc;
  if (array && eat(&t, '[')) {
    rc = read_rows(&t);
  } else if (!array && eat(&t, '{')) {
    rc = read_members(&t);
  } else {
    json_t *v = next_value(&t);
    if (!v)
      return RN_EJSON;
    snprintf(msg, msglen, "%s: the answer is %s, expected %s", r->what,
             rk_json_type_name(v), array ? "an array" : "an object");
    json_decref(v);
    return RN_EJSON;
  }
  if (rc)
    return rc;
  skip_space(&t);
  if (t.p != t.end)
    return not_json(&t, "end of text expected", offset(&t));
  return 0;
}
