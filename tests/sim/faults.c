#define _POSIX_C_SOURCE 200809L
#include "faults.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rule {
    int id;
    char endpoint[128]; /* "*" matches every endpoint */
    int region;         /* -1: any */
    sim_fault_t fault;
    int64_t nth;        /* > 0: fire from the Nth match on */
    double rate;        /* > 0: fire with this probability */
    int64_t count;      /* fires allowed; 0 = unlimited (rate rules) */
    int64_t matched;
    int64_t fired;
    sim_rng_t rng;
} rule_t;

struct sim_faults {
    pthread_mutex_t lock;
    uint64_t seed;
    int next_id;
    rule_t *rules;
    size_t n, cap;
};

static const struct { const char *name; sim_fault_kind_t kind; } kinds[] = {
    {"http500", SIM_FAULT_HTTP500},
    {"slow", SIM_FAULT_SLOW},
    {"drop", SIM_FAULT_DROP},
    {"truncate", SIM_FAULT_TRUNCATE},
    {"malformed", SIM_FAULT_MALFORMED},
    {"revoke_token", SIM_FAULT_REVOKE_TOKEN},
    {"cursor_expired", SIM_FAULT_CURSOR_EXPIRED},
    {"html_throttle", SIM_FAULT_HTML_THROTTLE},
    {"http429", SIM_FAULT_HTTP429},
};

static const char *kind_name(sim_fault_kind_t kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].kind == kind)
            return kinds[i].name;
    return "none";
}

sim_faults_t *sim_faults_new(uint64_t seed)
{
    sim_faults_t *f = sim_xcalloc(1, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    f->seed = seed;
    f->next_id = 1;
    return f;
}

void sim_faults_free(sim_faults_t *faults)
{
    if (!faults)
        return;
    free(faults->rules);
    pthread_mutex_destroy(&faults->lock);
    free(faults);
}

int sim_faults_add(sim_faults_t *faults, json_t *obj, char *err, size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "fault must be a JSON object");
        return -1;
    }
    rule_t r;
    memset(&r, 0, sizeof r);
    r.region = -1;
    const char *endpoint = json_string_value(json_object_get(obj, "endpoint"));
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    if (!kind) {
        snprintf(err, errlen, "\"kind\" is required");
        return -1;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].name, kind) == 0)
            r.fault.kind = kinds[i].kind;
    if (r.fault.kind == SIM_FAULT_NONE) {
        snprintf(err, errlen, "unknown fault kind \"%s\"", kind);
        return -1;
    }
    /* Accept "/api/v2/x" and "/v2/x" alike. */
    if (endpoint && strncmp(endpoint, "/api/v2/", 8) == 0)
        endpoint += 4;
    snprintf(r.endpoint, sizeof r.endpoint, "%s", endpoint && *endpoint ? endpoint : "*");
    const char *region = json_string_value(json_object_get(obj, "region"));
    if (region) {
        r.region = sim_region_parse(region, strlen(region));
        if (r.region < 0) {
            snprintf(err, errlen, "unknown region \"%s\"", region);
            return -1;
        }
    }
    json_t *nth = json_object_get(obj, "nth");
    json_t *rate = json_object_get(obj, "rate");
    json_t *count = json_object_get(obj, "count");
    if (nth && (!json_is_integer(nth) || json_integer_value(nth) < 1)) {
        snprintf(err, errlen, "\"nth\" must be an integer >= 1");
        return -1;
    }
    if (rate && (!json_is_number(rate) || json_number_value(rate) <= 0 ||
                 json_number_value(rate) > 1)) {
        snprintf(err, errlen, "\"rate\" must be a number in (0, 1]");
        return -1;
    }
    if (count && (!json_is_integer(count) || json_integer_value(count) < 0)) {
        snprintf(err, errlen, "\"count\" must be an integer >= 0");
        return -1;
    }
    r.nth = nth ? json_integer_value(nth) : 0;
    r.rate = rate ? json_number_value(rate) : 0;
    if (!r.nth && r.rate == 0)
        r.nth = 1; /* neither given: the next matching request */
    r.count = count ? json_integer_value(count) : (r.rate > 0 && !r.nth ? 0 : 1);
    json_t *delay = json_object_get(obj, "delayMs");
    r.fault.delay_ms = json_is_integer(delay) ? (int)json_integer_value(delay) : 2000;
    json_t *retry = json_object_get(obj, "retryAfter");
    r.fault.retry_after_s = json_is_integer(retry) ? (int)json_integer_value(retry) : 1;

    pthread_mutex_lock(&faults->lock);
    r.id = faults->next_id++;
    /* Each rule draws from its own stream, so rules never disturb each
     * other's sequence. */
    r.rng.state = sim_mix64(faults->seed + 0x51ed270b27a1ULL * (uint64_t)r.id);
    if (faults->n == faults->cap) {
        faults->cap = faults->cap ? faults->cap * 2 : 8;
        faults->rules = sim_xrealloc(faults->rules, faults->cap * sizeof *faults->rules);
    }
    faults->rules[faults->n++] = r;
    pthread_mutex_unlock(&faults->lock);
    return r.id;
}

void sim_faults_clear(sim_faults_t *faults)
{
    pthread_mutex_lock(&faults->lock);
    faults->n = 0;
    pthread_mutex_unlock(&faults->lock);
}

sim_fault_t sim_faults_pick(sim_faults_t *faults, const char *endpoint, int region)
{
    sim_fault_t chosen = {.kind = SIM_FAULT_NONE};
    pthread_mutex_lock(&faults->lock);
    for (size_t i = 0; i < faults->n; i++) {
        rule_t *r = &faults->rules[i];
        if (strcmp(r->endpoint, "*") != 0 && strcmp(r->endpoint, endpoint) != 0)
            continue;
        if (r->region >= 0 && r->region != region)
            continue;
        r->matched++;
        if (r->count && r->fired >= r->count)
            continue;
        bool fire;
        if (r->nth)
            fire = r->matched >= r->nth;
        else
            fire = sim_rng_unit(&r->rng) < r->rate;
        if (fire && chosen.kind == SIM_FAULT_NONE) {
            r->fired++;
            chosen = r->fault;
        }
    }
    pthread_mutex_unlock(&faults->lock);
    return chosen;
}

void sim_faults_render(sim_faults_t *faults, sim_buf_t *out)
{
    sim_json_t j;
    sj_init(&j, out);
    pthread_mutex_lock(&faults->lock);
    sj_arr(&j);
    for (size_t i = 0; i < faults->n; i++) {
        const rule_t *r = &faults->rules[i];
        sj_obj(&j);
        sj_i64(&j, "id", r->id);
        sj_str(&j, "endpoint", r->endpoint);
        sj_str(&j, "kind", kind_name(r->fault.kind));
        if (r->region >= 0)
            sj_str(&j, "region", sim_region_name(r->region));
        if (r->nth)
            sj_i64(&j, "nth", r->nth);
        if (r->rate > 0) {
            sj_key(&j, "rate");
            char tmp[32];
            int n = snprintf(tmp, sizeof tmp, "%g", r->rate);
            sj_v_raw(&j, tmp, (size_t)n);
        }
        sj_i64(&j, "count", r->count);
        sj_i64(&j, "matched", r->matched);
        sj_i64(&j, "fired", r->fired);
        sj_end_obj(&j);
    }
    sj_end_arr(&j);
    pthread_mutex_unlock(&faults->lock);
}
