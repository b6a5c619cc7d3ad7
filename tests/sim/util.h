/* Small shared helpers: checked allocation, string buffer, JSON writer,
 * deterministic random numbers, time parsing. */
#ifndef SIM_UTIL_H
#define SIM_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The simulator is a test tool: running out of memory ends it with a
 * message rather than threading ENOMEM through every renderer. */
void *sim_xmalloc(size_t n);
void *sim_xcalloc(size_t count, size_t size);
void *sim_xrealloc(void *p, size_t n);
char *sim_xstrdup(const char *s);
char *sim_xstrndup(const char *s, size_t n);

/* Growable byte buffer; data is always NUL terminated. */
typedef struct sim_buf {
    char *data;
    size_t len;
    size_t cap;
} sim_buf_t;

void sim_buf_init(sim_buf_t *b, size_t cap);
void sim_buf_free(sim_buf_t *b);
/* Hands the heap block to the caller (free with free()). */
char *sim_buf_steal(sim_buf_t *b, size_t *len);
void sim_buf_reserve(sim_buf_t *b, size_t extra);
void sim_buf_put(sim_buf_t *b, const char *s, size_t n);
void sim_buf_puts(sim_buf_t *b, const char *s);
void sim_buf_putc(sim_buf_t *b, char c);
void sim_buf_printf(sim_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sim_buf_i64(sim_buf_t *b, int64_t v);
/* Epoch milliseconds written as epoch seconds with a fraction, the way
 * NinjaOne prints timestamps (1759136775.9, 1758761443.0). */
void sim_buf_epoch_ms(sim_buf_t *b, int64_t ms);
void sim_buf_json_str(sim_buf_t *b, const char *s);

/* Streaming JSON writer that places commas itself. */
typedef struct sim_json {
    sim_buf_t *b;
    int depth;
    bool after_key;
    bool need_comma[32];
} sim_json_t;

void sj_init(sim_json_t *j, sim_buf_t *b);
void sj_obj(sim_json_t *j);
void sj_arr(sim_json_t *j);
void sj_end_obj(sim_json_t *j);
void sj_end_arr(sim_json_t *j);
void sj_key(sim_json_t *j, const char *key);
/* For keys that come from data and may need escaping. */
void sj_key_escaped(sim_json_t *j, const char *key);
void sj_v_str(sim_json_t *j, const char *s);
void sj_v_i64(sim_json_t *j, int64_t v);
void sj_v_epoch(sim_json_t *j, int64_t ms);
void sj_v_bool(sim_json_t *j, bool v);
void sj_v_raw(sim_json_t *j, const char *raw, size_t n);
/* Keyed helpers; the _opt forms omit the key when there is nothing to
 * say (NULL or "" string, zero timestamp), as NinjaOne omits empty
 * fields. */
void sj_str(sim_json_t *j, const char *key, const char *s);
void sj_str_opt(sim_json_t *j, const char *key, const char *s);
void sj_i64(sim_json_t *j, const char *key, int64_t v);
void sj_epoch_opt(sim_json_t *j, const char *key, int64_t ms);
void sj_bool(sim_json_t *j, const char *key, bool v);

/* splitmix64: tiny, seedable, good enough for fleets and fault rates. */
typedef struct sim_rng {
    uint64_t state;
} sim_rng_t;

static inline uint64_t sim_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t sim_rng_next(sim_rng_t *r)
{
    r->state += 0x9e3779b97f4a7c15ULL;
    return sim_mix64(r->state);
}

static inline double sim_rng_unit(sim_rng_t *r)
{
    return (double)(sim_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline uint32_t sim_rng_below(sim_rng_t *r, uint32_t n)
{
    return n == 0 ? 0 : (uint32_t)(sim_rng_next(r) % n);
}

/* A version-4-shaped UUID that is a pure function of its inputs, so
 * derived ids (device uid, patch id, job id) need no storage. */
void sim_uuid(char out[37], uint64_t seed, uint64_t kind, uint64_t a, uint64_t b);

/* Parses a date/time given as epoch seconds (fractions allowed),
 * yyyyMMdd, yyyy-MM-dd or ISO 8601 (yyyy-MM-ddTHH:mm:ss[.fff][Z]).
 * Returns 0 and epoch milliseconds, or -1. */
int sim_parse_time(const char *s, int64_t *out_ms);

/* Strict decimal parse of the whole string. */
int sim_parse_i64(const char *s, int64_t *out);

bool sim_streq_nocase(const char *a, const char *b);

int64_t sim_monotonic_ms(void);
int64_t sim_wall_ms(void);

#endif
