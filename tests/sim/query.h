/* The cursor walk shared by /v2/queries/... and /v2/backup/jobs: rows of
 * every visible device matching df, in device id order, paged through a
 * cursor that keeps the first request's filters. */
#ifndef SIM_QUERY_H
#define SIM_QUERY_H

#include "cursor.h"
#include "sim.h"

/* Argument slots every query shares; endpoint filters follow. */
enum { SIM_QARG_DF = 0, SIM_QARG_TS = 1, SIM_QARG_FIRST_OWN = 2 };

typedef struct sim_query_rows {
    char *const *args; /* the cursor's arguments, by slot */
    bool has_ts;
    int64_t ts_ms;     /* rows with timestamp >= ts */
} sim_query_rows_t;

typedef struct sim_query_def {
    const char *endpoint;
    /* Query-string names per slot: [0] "df", [1] "ts", then own filters. */
    const char *arg_names[SIM_CURSOR_ARGS];
    int default_page_size;
    int max_page_size;
    uint32_t (*row_count)(const sim_device_t *dev);
    /* Writes row `row` of dev when it passes the filters; returns true
     * when it wrote one. */
    bool (*emit_row)(sim_json_t *j, const sim_fleet_t *fleet, const sim_device_t *dev,
                     uint32_t row, const sim_query_rows_t *rows);
    /* Optional check of the endpoint's own filters on the first page. */
    int (*validate)(const char *const *args, char *err, size_t errlen);
} sim_query_def_t;

void sim_query_serve(sim_t *sim, sim_request_t *req, sim_response_t *res,
                     const sim_query_def_t *def);

/* Case-insensitive match of value against a filter that is either a bare
 * value, "a,b", or the "<field> = X" / "<field> in (A,B)" form. NULL or
 * empty filter matches everything. */
bool sim_filter_matches(const char *filter, const char *value);

#endif
