/* devsrc_internal.h - shared by the device-source library's files. */
#ifndef RN_DEVSRC_INTERNAL_H
#define RN_DEVSRC_INTERNAL_H

#include <stdio.h>

#include "regentra/devsrc.h"

#define DS_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Records an error for rn_devsrc_error and returns err. */
int ds_fail(rn_devsrc_t *ds, int err, const char *fmt, ...) DS_PRINTF(3, 4);

/* Runs one statement. `what` names it in errors ("upsert assets"). *result
 * (optional) is new: free with ds_free_result. */
int ds_exec(rn_devsrc_t *ds, const char *what, const char *sql, int nparams,
            const char *const *params, rn_db_result_t **result);
void ds_free_result(rn_devsrc_t *ds, rn_db_result_t *result);
/* Value of row 0, column 0 (borrowed) or NULL. */
const char *ds_first(rn_devsrc_t *ds, const rn_db_result_t *result);

/* A growable string (libc memory; the library's own temporaries). */
typedef struct ds_buf_s {
  char *data;
  size_t len, cap;
  bool failed;
} ds_buf_t;

void ds_buf_append(ds_buf_t *b, const char *text, size_t len);
void ds_buf_printf(ds_buf_t *b, const char *fmt, ...) DS_PRINTF(2, 3);
void ds_buf_free(ds_buf_t *b);

/* Builds a PostgreSQL array literal of text: {"a","b",NULL}. */
typedef struct ds_array_s {
  ds_buf_t buf;
  size_t count;
} ds_array_t;

void ds_array_add(ds_array_t *a, const char *value); /* NULL = SQL NULL */
const char *ds_array_text(ds_array_t *a);            /* borrowed */
void ds_array_free(ds_array_t *a);

/* Retires the live assets of a source in the MSP org (all of them, or only
 * those of one external organization), then runs dedup again in every
 * company where a row had lost to one of them: those rows come back ACTIVE
 * (or lose to the next-best winner). Counts are optional. */
int ds_assets_retire(rn_devsrc_t *ds, rn_msp_org_t msp, const char *source,
                     const char *external_org_id, const char *reason,
                     int64_t *retired, int64_t *restored);

/* Formats ms since the epoch as a timestamptz literal input (seconds with
 * fraction): "1700000000.123". */
void ds_epoch_text(int64_t ms, char out[32]);
void ds_int_text(int64_t value, char out[24]);

#endif
