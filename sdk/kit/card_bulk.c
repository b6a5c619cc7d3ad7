/* card_bulk.c - many mapping decisions at once, for MSPs with hundreds of
 * organizations: `map --accept-suggestions` takes every PENDING
 * organization's unique suggestion, `map --from-file F` takes
 * org,action[,company] rows. Both run the single-map actions row by row in
 * one transaction, each row audited like a single map. Without --apply the
 * transaction is rolled back: the preview is the real run, undone. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "card_internal.h"

#define MAX_FILE_BYTES (4 << 20)
#define MAX_ERRORS_SHOWN 50

typedef enum action_e { ACT_USE_EXISTING, ACT_CREATE_NEW, ACT_IGNORE } action_t;

static const char *const action_names[] = {"use-existing", "create-new",
                                           "ignore"};

typedef struct row_s {
  int line; /* in the file; 0 for suggestions */
  char org[128];
  action_t action;
  int64_t company_id; /* use-existing */
} row_t;

typedef struct bulk_s {
  const char *file; /* borrowed from op->params; NULL = suggestions */
  bool apply;
  bool from_ignored;
  const char *actor;
  row_t *rows;
  size_t nrows;
  json_t *errors;  /* ["F:3: ..."] */
  json_t *changes; /* one object per row */
  size_t changed, unchanged;
} bulk_t;

static void row_error(bulk_t *b, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void row_error(bulk_t *b, int line, const char *fmt, ...) {
  char text[1024];
  int n = line ? snprintf(text, sizeof text, "%s:%d: ", b->file, line) : 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text + n, sizeof text - (size_t)n, fmt, ap);
  va_end(ap);
  json_array_append_new(b->errors, json_string(text));
}

/* ------------------------------------------------------------ the file */

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  char *end = s + strlen(s);
  while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
    *--end = '\0';
  return s;
}

static bool all_digits(const char *s, size_t max) {
  size_t n = strspn(s, "0123456789");
  return n > 0 && n <= max && !s[n];
}

static int add_row(bulk_t *b, const row_t *row) {
  row_t *grown = realloc(b->rows, (b->nrows + 1) * sizeof *grown);
  if (!grown)
    return RN_ENOMEM;
  b->rows = grown;
  b->rows[b->nrows++] = *row;
  return 0;
}

/* One line: org,action[,company]. Problems go to b->errors. */
static int parse_line(bulk_t *b, int line, char *text) {
  char *fields[4] = {0};
  int n = 0;
  for (char *p = text; n < 4;) {
    fields[n++] = p;
    char *comma = strchr(p, ',');
    if (!comma)
      break;
    *comma = '\0';
    p = comma + 1;
  }
  for (int i = 0; i < n; i++)
    fields[i] = trim(fields[i]);
  if (n > 3 || n < 2) {
    row_error(b, line, "expected org,action[,company], found %d field(s)",
              n > 3 ? 4 : n);
    return 0;
  }
  row_t row = {.line = line};
  bool id_ok = *fields[0] && strlen(fields[0]) < sizeof row.org &&
               (!P.org_id_valid || P.org_id_valid(fields[0]));
  if (!id_ok) {
    row_error(b, line, "\"%s\" is not %s %s organization id%s%s%s", fields[0],
              rk__article(P.display_name), P.display_name,
              P.org_id_form ? " (" : "", P.org_id_form ? P.org_id_form : "",
              P.org_id_form ? ")" : "");
    return 0;
  }
  snprintf(row.org, sizeof row.org, "%s", fields[0]);
  size_t a = 0;
  while (a < 3 && strcmp(fields[1], action_names[a]) != 0)
    a++;
  if (a == 3) {
    row_error(b, line,
              "action \"%s\": expected use-existing, create-new or ignore",
              fields[1]);
    return 0;
  }
  row.action = (action_t)a;
  const char *company = n == 3 ? fields[2] : "";
  if (row.action == ACT_USE_EXISTING) {
    if (!all_digits(company, 18)) {
      row_error(b, line,
                "use-existing needs a company id in the third field%s%s%s",
                *company ? " (found \"" : "", company, *company ? "\")" : "");
      return 0;
    }
    row.company_id = strtoll(company, NULL, 10);
  } else if (*company) {
    row_error(b, line, "%s takes no company (found \"%s\")",
              action_names[row.action], company);
    return 0;
  }
  for (size_t i = 0; i < b->nrows; i++)
    if (strcmp(b->rows[i].org, row.org) == 0) {
      row_error(b, line, "organization %s already has a row at line %d",
                row.org, b->rows[i].line);
      return 0;
    }
  return add_row(b, &row);
}

static int read_file(op_t *op, bulk_t *b) {
  FILE *f = fopen(b->file, "r");
  if (!f) {
    snprintf(op->error, sizeof op->error, "cannot read %s: %s", b->file,
             strerror(errno));
    op_explain(op, "file_unreadable",
               "give a readable CSV file of "
               "org,action[,company] rows");
    return RN_EIO;
  }
  char *text = malloc(MAX_FILE_BYTES + 1);
  size_t len = text ? fread(text, 1, MAX_FILE_BYTES + 1, f) : 0;
  bool failed = ferror(f);
  fclose(f);
  if (!text)
    return RN_ENOMEM;
  if (failed || len > MAX_FILE_BYTES) {
    snprintf(op->error, sizeof op->error, "%s: %s", b->file,
             failed ? "read error" : "larger than 4 MiB");
    op_explain(op, "file_unreadable", "split the file");
    free(text);
    return RN_EIO;
  }
  text[len] = '\0';
  int rc = 0, line = 0;
  bool header_possible = true;
  for (char *p = text; p && *p && rc == 0; line++) {
    char *nl = strchr(p, '\n');
    if (nl)
      *nl = '\0';
    char *content = trim(p);
    p = nl ? nl + 1 : NULL;
    if (!*content || *content == '#')
      continue;
    /* A first row naming the columns is a header. */
    if (header_possible && strncmp(content, "org,", 4) == 0 &&
        strstr(content, "action")) {
      header_possible = false;
      continue;
    }
    header_possible = false;
    rc = parse_line(b, line + 1, content);
  }
  free(text);
  if (rc == 0 && b->nrows == 0 && json_array_size(b->errors) == 0)
    row_error(b, 0, "%s has no rows (expected org,action[,company])", b->file);
  return rc;
}

/* --------------------------------------------------------- suggestions */

/* Every PENDING organization still present whose folded name matches
 * exactly one company of the MSP. */
static int read_suggestions(op_t *op, rn_devsrc_t *ds, bulk_t *b,
                            size_t *ambiguous, size_t *without) {
  char id[24];
  op_msp_text(op, id);
  const char *params[] = {id, op->region, P.source};
  rn_db_result_t *res;
  int rc = host->db_tx_exec(
      ds->tx,
      "SELECT m.external_org_id, c.n, c.first_id FROM integration_org_mapping"
      " m CROSS JOIN LATERAL (SELECT count(*) AS n, min(pc.id) AS first_id"
      "  FROM portal_company pc WHERE pc.msp_org_id = m.msp_org_id "
      "AND " FOLDED_NAME("pc.name") " = " FOLDED_NAME(
          "m.external_name") ") c"
                             " WHERE m.msp_org_id = $1 AND m.provider = $3 AND "
                             "m.region = $2"
                             " AND m.state = 'PENDING' AND m.vanished_at IS "
                             "NULL"
                             " ORDER BY lower(m.external_name), "
                             "m.external_org_id",
      3, params, &res);
  if (rc < 0) {
    snprintf(op->error, sizeof op->error, "database: %s",
             host->db_tx_error(ds->tx));
    return rc;
  }
  for (int r = 0; r < host->db_rows(res) && rc == 0; r++) {
    long long n = strtoll(host->db_value(res, r, 1), NULL, 10);
    if (n != 1) {
      *(n > 1 ? ambiguous : without) += 1;
      continue;
    }
    row_t row = {.action = ACT_USE_EXISTING,
                 .company_id = strtoll(host->db_value(res, r, 2), NULL, 10)};
    snprintf(row.org, sizeof row.org, "%s", host->db_value(res, r, 0));
    rc = add_row(b, &row);
  }
  host->db_result_free(res);
  return rc;
}

/* ------------------------------------------------------------ applying */

/* The row's organization as it is now; false (error noted) when unknown. */
static int current_state(op_t *op, rn_devsrc_t *ds, bulk_t *b, const row_t *row,
                         char *state, size_t state_len, int64_t *company_id,
                         char *name, size_t name_len, bool *same_name,
                         bool *found) {
  char id[24];
  op_msp_text(op, id);
  const char *params[] = {id, op->region, row->org, P.source};
  rn_db_result_t *res;
  int rc =
      host->db_tx_exec(ds->tx,
                       "SELECT m.state, m.portal_company_id, m.external_name,"
                       " " FOLDED_NAME("pc.name") " = " FOLDED_NAME(
                           "m.external_name") " FROM integration_org_mapping m "
                                              "LEFT JOIN portal_company pc"
                                              " ON pc.id = m.portal_company_id "
                                              "WHERE m.msp_org_id = $1 AND"
                                              " m.provider = $4 AND m.region = "
                                              "$2 AND m.external_org_id = $3",
                       4, params, &res);
  if (rc < 0) {
    snprintf(op->error, sizeof op->error, "database: %s",
             host->db_tx_error(ds->tx));
    return rc;
  }
  *found = host->db_rows(res) == 1;
  if (*found) {
    snprintf(state, state_len, "%s", host->db_value(res, 0, 0));
    const char *cid = host->db_value(res, 0, 1);
    *company_id = cid ? strtoll(cid, NULL, 10) : 0;
    snprintf(name, name_len, "%s", host->db_value(res, 0, 2));
    const char *same = host->db_value(res, 0, 3);
    *same_name = same && strcmp(same, "t") == 0;
  } else {
    row_error(b, row->line,
              "%s organization %s has not been discovered in region %s "
              "for MSP organization %lld",
              P.display_name, row->org, op->region, (long long)op->msp_org_id);
  }
  host->db_result_free(res);
  return 0;
}

static int apply_row(op_t *op, rn_devsrc_t *ds, bulk_t *b, const row_t *row) {
  char state[16] = "", name[256] = "";
  int64_t company_id = 0;
  bool found, same_name = false;
  int rc = current_state(op, ds, b, row, state, sizeof state, &company_id, name,
                         sizeof name, &same_name, &found);
  if (rc < 0 || !found)
    return rc;
  json_t *change =
      json_pack("{s:s, s:s, s:s, s:s}", "org", row->org, "name", name, "action",
                action_names[row->action], "previous_state", state);
  if (row->line)
    json_object_set_new(change, "line", json_integer(row->line));
  bool unchanged =
      (row->action == ACT_IGNORE && strcmp(state, "IGNORED") == 0) ||
      (row->action == ACT_USE_EXISTING && strcmp(state, "MAPPED") == 0 &&
       company_id == row->company_id) ||
      (row->action == ACT_CREATE_NEW && strcmp(state, "MAPPED") == 0 &&
       same_name);
  rn_msp_org_t msp = RN_MSP_ORG(op->msp_org_id);
  const char *region = op->region;
  rn_company_t company = {.id = row->company_id ? row->company_id : company_id};
  if (unchanged) {
    b->unchanged++;
  } else if (row->action == ACT_USE_EXISTING) {
    rc = rn_mapping_use_existing(ds, msp, P.source, region, row->org, company,
                                 b->from_ignored, b->actor);
  } else if (row->action == ACT_CREATE_NEW) {
    rc = rn_mapping_create_new(ds, msp, P.source, region, row->org,
                               b->from_ignored, b->actor, &company);
  } else {
    rc = rn_mapping_ignore(ds, msp, P.source, region, row->org, b->actor);
  }
  /* Refusals leave the transaction usable: note them and go on, so one
   * run names every bad row. A database error ends the run. */
  if (rc < 0 && rc != RN_EDB && rc != RN_ENOMEM) {
    row_error(b, row->line, "organization %s: %s", row->org,
              rn_devsrc_error(ds));
    json_decref(change);
    return 0;
  }
  if (rc < 0) {
    json_decref(change);
    return rc;
  }
  if (!unchanged)
    b->changed++;
  json_object_set_new(
      change, "state",
      json_string(row->action == ACT_IGNORE ? "IGNORED" : "MAPPED"));
  /* A company created by a preview is rolled back with it: no id to show. */
  bool show_company = row->action != ACT_IGNORE &&
                      (b->apply || row->action == ACT_USE_EXISTING);
  json_object_set_new(change, "company_id",
                      show_company ? json_integer(company.id) : json_null());
  json_object_set_new(change, "unchanged", json_boolean(unchanged));
  json_array_append_new(b->changes, change);
  return 0;
}

static int bulk_body(op_t *op, rn_devsrc_t *ds) {
  bulk_t *b = host->job_data(op->job);
  int rc = resolve_mapping_region(op, ds, NULL);
  if (rc < 0)
    return rc;
  size_t ambiguous = 0, without = 0;
  rc = b->file ? read_file(op, b)
               : read_suggestions(op, ds, b, &ambiguous, &without);
  if (rc < 0)
    return rc;
  if (!b->file) {
    json_object_set_new(op->result, "skipped_ambiguous",
                        json_integer((json_int_t)ambiguous));
    json_object_set_new(op->result, "skipped_without_suggestion",
                        json_integer((json_int_t)without));
  }
  /* A file with bad rows changes nothing; its other rows are still
   * checked, so one run names every problem. */
  for (size_t i = 0; i < b->nrows && rc == 0; i++)
    rc = apply_row(op, ds, b, &b->rows[i]);
  if (rc < 0)
    return rc;
  if (json_array_size(b->errors) == 0 && b->changed > 0) {
    json_t *details = json_pack(
        "{s:s, s:s, s:I, s:I}", "region", op->region, "source",
        b->file ? b->file : "accept-suggestions", "changed",
        (json_int_t)b->changed, "unchanged", (json_int_t)b->unchanged);
    char *text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(details);
    rc = rn_audit_msp(ds, RN_MSP_ORG(op->msp_org_id), b->actor,
                      "ORG_MAPPING_BULK", text);
    free(text);
    if (rc < 0)
      return rc;
  }
  if (json_array_size(b->errors) > 0) {
    op_explain(op, "bulk_map_refused",
               "fix the rows named file:line (or map those organizations "
               "one by one); nothing was changed");
    return RN_EINVAL;
  }
  /* The preview ran every row for real; undo it. */
  return b->apply ? 0 : RN_ECANCELED;
}

static void bulk_free(op_t *op, bulk_t *b) {
  host->job_set_data(op->job, NULL);
  free(b->rows);
  json_decref(b->errors);
  json_decref(b->changes);
  host->free(b);
}

static void bulk_done(op_t *op) {
  bulk_t *b = host->job_data(op->job);
  bool preview_undone = !b->apply && op->status == RN_ECANCELED;
  if (preview_undone) {
    op->status = 0;
    op->error[0] = '\0';
  }
  json_object_set_new(
      op->result, "mode",
      json_string(b->apply && op->status == 0 ? "applied" : "preview"));
  json_object_set_new(op->result, "source",
                      json_string(b->file ? b->file : "accept-suggestions"));
  json_object_set_new(op->result, "region", json_string(op->region));
  json_object_set_new(op->result, "changes", json_incref(b->changes));
  json_object_set_new(
      op->result, "changed",
      json_integer(b->apply && op->status == 0 ? (json_int_t)b->changed : 0));
  json_object_set_new(op->result, "would_change",
                      json_integer((json_int_t)b->changed));
  json_object_set_new(op->result, "unchanged",
                      json_integer((json_int_t)b->unchanged));
  json_object_set_new(op->result, "errors", json_incref(b->errors));
  if (op->status < 0) {
    /* Every bad row in the message: the operator fixes them in one pass. */
    size_t used = strlen(op->error);
    if (json_array_size(b->errors)) {
      used = (size_t)snprintf(op->error, sizeof op->error,
                              "nothing changed: %zu row(s) refused",
                              json_array_size(b->errors));
      size_t i;
      json_t *e;
      json_array_foreach(b->errors, i, e) {
        if (used >= sizeof op->error - 1)
          break;
        used += (size_t)snprintf(op->error + used, sizeof op->error - used,
                                 "\n  %s", json_string_value(e));
      }
    }
    bulk_free(op, b);
    op_finish(op);
    return;
  }
  size_t used = (size_t)snprintf(
      op->summary, sizeof op->summary,
      "%s (%s, region %s): %zu change(s), "
      "%zu unchanged\n%-6s %-10s %-28s %-13s %-9s %s",
      b->apply ? "bulk mapping applied, each row audited"
               : "bulk mapping PREVIEW, nothing changed",
      b->file ? b->file : "accept-suggestions", op->region, b->changed,
      b->unchanged, "LINE", "ORG", "NAME", "ACTION", "WAS", "COMPANY");
  size_t i;
  json_t *c;
  json_array_foreach(b->changes, i, c) {
    if (used >= sizeof op->summary - 600) { /* a row is far shorter */
      used += (size_t)snprintf(op->summary + used, sizeof op->summary - used,
                               "\n... %zu more (see --json)",
                               json_array_size(b->changes) - i);
      break;
    }
    json_t *company = json_object_get(c, "company_id");
    char company_text[32] = "-";
    if (json_is_integer(company))
      snprintf(company_text, sizeof company_text, "%lld",
               (long long)json_integer_value(company));
    else if (strcmp(json_string_value(json_object_get(c, "action")),
                    "create-new") == 0)
      snprintf(company_text, sizeof company_text, "(new or same name)");
    char line[16] = "-";
    if (json_object_get(c, "line"))
      snprintf(line, sizeof line, "%lld",
               (long long)json_integer_value(json_object_get(c, "line")));
    used += (size_t)snprintf(
        op->summary + used, sizeof op->summary - used,
        "\n%-6s %-10s %-28.28s %-13s %-9s %s%s", line,
        json_string_value(json_object_get(c, "org")),
        json_string_value(json_object_get(c, "name")),
        json_string_value(json_object_get(c, "action")),
        json_string_value(json_object_get(c, "previous_state")), company_text,
        json_is_true(json_object_get(c, "unchanged")) ? " (unchanged)" : "");
  }
  if (!b->apply && used < sizeof op->summary)
    snprintf(op->summary + used, sizeof op->summary - used,
             "\nrun again with --apply to make these changes");
  bulk_free(op, b);
  op_finish(op);
}

void bulk_map_start(op_t *op) {
  bulk_t *b = host->calloc(1, sizeof *b);
  if (!b) {
    op_fail(op, RN_ENOMEM, "out of memory");
    return;
  }
  b->file = op_str(op, "from_file");
  b->apply = json_is_true(json_object_get(op->params, "apply"));
  b->from_ignored = json_is_true(json_object_get(op->params, "from_ignored"));
  b->actor = op_str(op, "actor");
  b->errors = json_array();
  b->changes = json_array();
  host->job_set_data(op->job, b);
  op_transaction(op, bulk_body, bulk_done);
}
