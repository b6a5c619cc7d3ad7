#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void out_of_memory(void)
{
    fputs("ninjaone-sim: out of memory\n", stderr);
    abort();
}

void *sim_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        out_of_memory();
    return p;
}

void *sim_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        out_of_memory();
    return p;
}

void *sim_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        out_of_memory();
    return q;
}

char *sim_xstrdup(const char *s)
{
    return sim_xstrndup(s, strlen(s));
}

char *sim_xstrndup(const char *s, size_t n)
{
    char *p = sim_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void sim_buf_init(sim_buf_t *b, size_t cap)
{
    b->cap = cap < 64 ? 64 : cap;
    b->data = sim_xmalloc(b->cap);
    b->len = 0;
    b->data[0] = '\0';
}

void sim_buf_free(sim_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *sim_buf_steal(sim_buf_t *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void sim_buf_reserve(sim_buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (b->len + extra + 1 > cap)
        cap *= 2;
    b->data = sim_xrealloc(b->data, cap);
    b->cap = cap;
}

void sim_buf_put(sim_buf_t *b, const char *s, size_t n)
{
    sim_buf_reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sim_buf_puts(sim_buf_t *b, const char *s)
{
    sim_buf_put(b, s, strlen(s));
}

void sim_buf_putc(sim_buf_t *b, char c)
{
    sim_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void sim_buf_printf(sim_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    if ((size_t)n + 1 > b->cap - b->len) {
        sim_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
    }
    va_end(ap2);
    b->len += (size_t)n;
}

void sim_buf_i64(sim_buf_t *b, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    sim_buf_put(b, p, (size_t)(tmp + sizeof tmp - p));
}

void sim_buf_epoch_ms(sim_buf_t *b, int64_t ms)
{
    int64_t sec = ms / 1000;
    int64_t frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        sec -= 1;
    }
    sim_buf_i64(b, sec);
    char tmp[5] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                   (char)('0' + frac % 10), 0};
    size_t n = 4;
    while (n > 2 && tmp[n - 1] == '0')
        n--;
    sim_buf_put(b, tmp, n);
}

void sim_buf_json_str(sim_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s);
    sim_buf_reserve(b, n + 2);
    b->data[b->len++] = '"';
    const char *run = s;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sim_buf_put(b, run, (size_t)(p - run));
        run = p + 1;
        switch (c) {
        case '"': sim_buf_put(b, "\\\"", 2); break;
        case '\\': sim_buf_put(b, "\\\\", 2); break;
        case '\n': sim_buf_put(b, "\\n", 2); break;
        case '\r': sim_buf_put(b, "\\r", 2); break;
        case '\t': sim_buf_put(b, "\\t", 2); break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sim_buf_put(b, esc, 6);
        }
        }
    }
    sim_buf_put(b, run, strlen(run));
    sim_buf_putc(b, '"');
}

void sj_init(sim_json_t *j, sim_buf_t *b)
{
    memset(j, 0, sizeof *j);
    j->b = b;
}

static void sj_sep(sim_json_t *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->need_comma[j->depth])
        sim_buf_putc(j->b, ',');
    j->need_comma[j->depth] = true;
}

static void sj_open(sim_json_t *j, char c)
{
    sj_sep(j);
    sim_buf_putc(j->b, c);
    if (j->depth < 31)
        j->depth++;
    j->need_comma[j->depth] = false;
}

void sj_obj(sim_json_t *j) { sj_open(j, '{'); }
void sj_arr(sim_json_t *j) { sj_open(j, '['); }

void sj_end_obj(sim_json_t *j)
{
    j->depth--;
    sim_buf_putc(j->b, '}');
}

void sj_end_arr(sim_json_t *j)
{
    j->depth--;
    sim_buf_putc(j->b, ']');
}

void sj_key(sim_json_t *j, const char *key)
{
    sj_sep(j);
    size_t n = strlen(key);
    sim_buf_reserve(j->b, n + 3);
    sim_buf_putc(j->b, '"');
    sim_buf_put(j->b, key, n);
    sim_buf_put(j->b, "\":", 2);
    j->after_key = true;
}

void sj_key_escaped(sim_json_t *j, const char *key)
{
    sj_sep(j);
    sim_buf_json_str(j->b, key);
    sim_buf_putc(j->b, ':');
    j->after_key = true;
}

void sj_v_str(sim_json_t *j, const char *s)
{
    sj_sep(j);
    sim_buf_json_str(j->b, s ? s : "");
}

void sj_v_i64(sim_json_t *j, int64_t v)
{
    sj_sep(j);
    sim_buf_i64(j->b, v);
}

void sj_v_epoch(sim_json_t *j, int64_t ms)
{
    sj_sep(j);
    sim_buf_epoch_ms(j->b, ms);
}

void sj_v_bool(sim_json_t *j, bool v)
{
    sj_sep(j);
    sim_buf_puts(j->b, v ? "true" : "false");
}

void sj_v_raw(sim_json_t *j, const char *raw, size_t n)
{
    sj_sep(j);
    sim_buf_put(j->b, raw, n);
}

void sj_str(sim_json_t *j, const char *key, const char *s)
{
    sj_key(j, key);
    sj_v_str(j, s);
}

void sj_str_opt(sim_json_t *j, const char *key, const char *s)
{
    if (s && *s)
        sj_str(j, key, s);
}

void sj_i64(sim_json_t *j, const char *key, int64_t v)
{
    sj_key(j, key);
    sj_v_i64(j, v);
}

void sj_epoch_opt(sim_json_t *j, const char *key, int64_t ms)
{
    if (ms == 0)
        return;
    sj_key(j, key);
    sj_v_epoch(j, ms);
}

void sj_bool(sim_json_t *j, const char *key, bool v)
{
    sj_key(j, key);
    sj_v_bool(j, v);
}

void sim_uuid(char out[37], uint64_t seed, uint64_t kind, uint64_t a, uint64_t b)
{
    uint64_t hi = sim_mix64(seed ^ sim_mix64(kind * 0x100000001b3ULL + a));
    uint64_t lo = sim_mix64(hi ^ sim_mix64(b + 0x9e3779b97f4a7c15ULL * (kind + 1)));
    hi = (hi & ~0xf000ULL) | 0x4000ULL;                       /* version 4 */
    lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL; /* variant */
    snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(hi >> 32),
             (unsigned)((hi >> 16) & 0xffff), (unsigned)(hi & 0xffff),
             (unsigned)(lo >> 48), (unsigned long long)(lo & 0xffffffffffffULL));
}

int sim_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int sim_parse_time(const char *s, int64_t *out_ms)
{
    if (!s || !*s)
        return -1;
    size_t n = strlen(s);
    /* yyyyMMdd is all digits too, so check it before epoch seconds. */
    if (n == 8 && all_digits(s, 8)) {
        int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
        int m = (s[4] - '0') * 10 + (s[5] - '0');
        int d = (s[6] - '0') * 10 + (s[7] - '0');
        if (m < 1 || m > 12 || d < 1 || d > 31)
            return -1;
        *out_ms = days_from_civil(y, (unsigned)m, (unsigned)d) * 86400000LL;
        return 0;
    }
    if (n >= 10 && s[4] == '-' && s[7] == '-' && all_digits(s, 4) &&
        all_digits(s + 5, 2) && all_digits(s + 8, 2)) {
        int y = atoi(s);
        int m = atoi(s + 5);
        int d = atoi(s + 8);
        if (m < 1 || m > 12 || d < 1 || d > 31)
            return -1;
        int64_t ms = days_from_civil(y, (unsigned)m, (unsigned)d) * 86400000LL;
        const char *p = s + 10;
        if (*p == 'T' || *p == ' ') {
            int hh = 0, mm = 0, ss = 0, used = 0;
            if (sscanf(p + 1, "%2d:%2d:%2d%n", &hh, &mm, &ss, &used) < 3)
                return -1;
            p += 1 + used;
            ms += ((int64_t)hh * 3600 + mm * 60 + ss) * 1000;
            if (*p == '.') {
                int64_t scale = 100;
                for (p++; isdigit((unsigned char)*p); p++) {
                    ms += (*p - '0') * scale;
                    scale /= 10;
                }
            }
            if (*p == 'Z')
                p++;
            else if (*p == '+' || *p == '-') {
                int oh = 0, om = 0;
                if (sscanf(p + 1, "%2d:%2d", &oh, &om) < 1)
                    return -1;
                int64_t off = ((int64_t)oh * 3600 + om * 60) * 1000;
                ms += *p == '+' ? -off : off;
                p += strlen(p);
            }
        }
        if (*p != '\0')
            return -1;
        *out_ms = ms;
        return 0;
    }
    char *end = NULL;
    double v = strtod(s, &end);
    if (*end != '\0' || v < 0)
        return -1;
    *out_ms = (int64_t)(v * 1000.0 + 0.5);
    return 0;
}

bool sim_streq_nocase(const char *a, const char *b)
{
    return a && b && strcasecmp(a, b) == 0;
}

int64_t sim_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sim_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
