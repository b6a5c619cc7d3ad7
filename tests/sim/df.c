#define _POSIX_C_SOURCE 200809L
#include "df.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

enum df_key { K_ORG, K_LOC, K_ROLE, K_ID, K_CLASS, K_STATUS, K_ONLINE, K_OFFLINE, K_GROUP, K_CREATED };
enum df_op { OP_EQ, OP_NE, OP_IN, OP_NOTIN, OP_AFTER, OP_BEFORE };

typedef struct clause {
    enum df_key key;
    enum df_op op;
    size_t n_values;
    int64_t *ints;  /* numeric keys */
    char **words;   /* class / status values, upper case */
    int64_t when_ms;
} clause_t;

struct sim_df {
    clause_t *clauses;
    size_t n;
};

typedef enum tok_kind { T_END, T_WORD, T_LPAREN, T_RPAREN, T_COMMA, T_OP } tok_kind_t;

typedef struct lexer {
    const char *text;
    const char *p;
    tok_kind_t kind;
    char word[128];
    size_t start; /* offset of the current token, for messages */
} lexer_t;

static bool word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == ':' || c == '.' || c == '+';
}

/* Reads the next token; returns -1 on a character no token starts with. */
static int next(lexer_t *lx)
{
    while (*lx->p == ' ' || *lx->p == '\t')
        lx->p++;
    lx->start = (size_t)(lx->p - lx->text);
    lx->word[0] = '\0';
    char c = *lx->p;
    if (!c) {
        lx->kind = T_END;
        return 0;
    }
    if (c == '(' || c == ')' || c == ',') {
        lx->kind = c == '(' ? T_LPAREN : c == ')' ? T_RPAREN : T_COMMA;
        lx->p++;
        return 0;
    }
    const char *ops[] = {"!=", "&&", "=", ">", "<"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        size_t n = strlen(ops[i]);
        if (strncmp(lx->p, ops[i], n) == 0) {
            memcpy(lx->word, ops[i], n + 1);
            lx->kind = T_OP;
            lx->p += n;
            return 0;
        }
    }
    if (!word_char(c))
        return -1;
    size_t n = 0;
    while (word_char(*lx->p)) {
        if (n + 1 < sizeof lx->word)
            lx->word[n++] = *lx->p;
        lx->p++;
    }
    lx->word[n] = '\0';
    lx->kind = T_WORD;
    return 0;
}

static bool is_word(const lexer_t *lx, const char *w)
{
    return lx->kind == T_WORD && strcasecmp(lx->word, w) == 0;
}

void sim_df_free(sim_df_t *df)
{
    if (!df)
        return;
    for (size_t i = 0; i < df->n; i++) {
        free(df->clauses[i].ints);
        for (size_t k = 0; df->clauses[i].words && k < df->clauses[i].n_values; k++)
            free(df->clauses[i].words[k]);
        free(df->clauses[i].words);
    }
    free(df->clauses);
    free(df);
}

static int bad(lexer_t *lx, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "Invalid device filter '%s': %s at position %zu", lx->text, what,
             lx->start);
    return -1;
}

static const char *const statuses[] = {"PENDING", "APPROVED", "STAGED", "DECOMMISSIONED"};

static int add_value(clause_t *c, const char *w, lexer_t *lx, char *err, size_t errlen)
{
    bool numeric = c->key == K_ORG || c->key == K_LOC || c->key == K_ROLE || c->key == K_ID ||
                   c->key == K_GROUP;
    if (numeric) {
        int64_t v;
        if (sim_parse_i64(w, &v) != 0 || v < 0)
            return bad(lx, err, errlen, "expected a numeric id");
        c->ints = sim_xrealloc(c->ints, (c->n_values + 1) * sizeof *c->ints);
        c->ints[c->n_values++] = v;
        return 0;
    }
    char upper[128];
    size_t n = strlen(w);
    if (n >= sizeof upper)
        n = sizeof upper - 1;
    for (size_t i = 0; i < n; i++)
        upper[i] = (char)toupper((unsigned char)w[i]);
    upper[n] = '\0';
    if (c->key == K_STATUS) {
        bool known = false;
        for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
            known |= strcmp(statuses[i], upper) == 0;
        if (!known)
            return bad(lx, err, errlen, "unknown approval status");
    } else {
        for (const char *p = upper; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '_')
                return bad(lx, err, errlen, "expected a node class name");
    }
    c->words = sim_xrealloc(c->words, (c->n_values + 1) * sizeof *c->words);
    c->words[c->n_values++] = sim_xstrdup(upper);
    return 0;
}

static int parse_clause(lexer_t *lx, clause_t *c, char *err, size_t errlen)
{
    static const struct { const char *name; enum df_key key; } keys[] = {
        {"org", K_ORG}, {"organization", K_ORG}, {"loc", K_LOC}, {"location", K_LOC},
        {"role", K_ROLE}, {"id", K_ID}, {"class", K_CLASS}, {"status", K_STATUS},
        {"online", K_ONLINE}, {"offline", K_OFFLINE}, {"group", K_GROUP}, {"created", K_CREATED},
    };
    if (lx->kind != T_WORD)
        return bad(lx, err, errlen, "expected a filter key");
    bool found = false;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (is_word(lx, keys[i].name)) {
            c->key = keys[i].key;
            found = true;
        }
    if (!found)
        return bad(lx, err, errlen, "unknown filter key");
    if (next(lx) != 0)
        return bad(lx, err, errlen, "unexpected character");
    if (c->key == K_ONLINE || c->key == K_OFFLINE)
        return 0;
    if (c->key == K_GROUP) {
        if (lx->kind != T_WORD)
            return bad(lx, err, errlen, "expected a group id");
        if (add_value(c, lx->word, lx, err, errlen) != 0)
            return -1;
        return next(lx) == 0 ? 0 : bad(lx, err, errlen, "unexpected character");
    }
    if (c->key == K_CREATED) {
        if (is_word(lx, "after") || (lx->kind == T_OP && strcmp(lx->word, ">") == 0))
            c->op = OP_AFTER;
        else if (is_word(lx, "before") || (lx->kind == T_OP && strcmp(lx->word, "<") == 0))
            c->op = OP_BEFORE;
        else
            return bad(lx, err, errlen, "expected after or before");
        if (next(lx) != 0 || lx->kind != T_WORD || sim_parse_time(lx->word, &c->when_ms) != 0)
            return bad(lx, err, errlen, "expected a date (yyyy-MM-dd, yyyyMMdd or ISO)");
        return next(lx) == 0 ? 0 : bad(lx, err, errlen, "unexpected character");
    }
    if (lx->kind == T_OP && strcmp(lx->word, "=") == 0)
        c->op = OP_EQ;
    else if (lx->kind == T_OP && strcmp(lx->word, "!=") == 0)
        c->op = OP_NE;
    else if (is_word(lx, "eq"))
        c->op = OP_EQ;
    else if (is_word(lx, "neq") || is_word(lx, "ne"))
        c->op = OP_NE;
    else if (is_word(lx, "in"))
        c->op = OP_IN;
    else if (is_word(lx, "notin") || is_word(lx, "nin"))
        c->op = OP_NOTIN;
    else
        return bad(lx, err, errlen, "expected an operator (=, eq, !=, neq, in, notin)");
    if (next(lx) != 0)
        return bad(lx, err, errlen, "unexpected character");
    if (c->op == OP_IN || c->op == OP_NOTIN) {
        if (lx->kind != T_LPAREN)
            return bad(lx, err, errlen, "expected '(' after in");
        for (;;) {
            if (next(lx) != 0 || lx->kind != T_WORD)
                return bad(lx, err, errlen, "expected a value in the list");
            if (add_value(c, lx->word, lx, err, errlen) != 0)
                return -1;
            if (next(lx) != 0)
                return bad(lx, err, errlen, "unexpected character");
            if (lx->kind == T_RPAREN)
                break;
            if (lx->kind != T_COMMA)
                return bad(lx, err, errlen, "expected ',' or ')'");
        }
        return next(lx) == 0 ? 0 : bad(lx, err, errlen, "unexpected character");
    }
    if (lx->kind != T_WORD)
        return bad(lx, err, errlen, "expected a value");
    if (add_value(c, lx->word, lx, err, errlen) != 0)
        return -1;
    return next(lx) == 0 ? 0 : bad(lx, err, errlen, "unexpected character");
}

int sim_df_parse(const char *text, sim_df_t **out, char *err, size_t errlen)
{
    sim_df_t *df = sim_xcalloc(1, sizeof *df);
    *out = NULL;
    lexer_t lx = {.text = text ? text : "", .p = text ? text : ""};
    if (next(&lx) != 0) {
        bad(&lx, err, errlen, "unexpected character");
        sim_df_free(df);
        return -1;
    }
    if (lx.kind == T_END) {
        *out = df;
        return 0;
    }
    for (;;) {
        df->clauses = sim_xrealloc(df->clauses, (df->n + 1) * sizeof *df->clauses);
        clause_t *c = &df->clauses[df->n++];
        memset(c, 0, sizeof *c);
        if (parse_clause(&lx, c, err, errlen) != 0) {
            sim_df_free(df);
            return -1;
        }
        if (lx.kind == T_END)
            break;
        bool joined = is_word(&lx, "and") || (lx.kind == T_OP && strcmp(lx.word, "&&") == 0);
        if (!joined || next(&lx) != 0 || lx.kind == T_END) {
            bad(&lx, err, errlen, joined ? "expected a clause after AND" : "expected AND");
            sim_df_free(df);
            return -1;
        }
    }
    *out = df;
    return 0;
}

static bool clause_match(const clause_t *c, const sim_device_t *dev)
{
    int64_t num = 0;
    const char *word = NULL;
    switch (c->key) {
    case K_ONLINE: return !dev->offline;
    case K_OFFLINE: return dev->offline;
    case K_GROUP: return false; /* the simulator has no saved searches */
    case K_CREATED:
        return c->op == OP_AFTER ? dev->created_ms > c->when_ms : dev->created_ms < c->when_ms;
    case K_ORG: num = dev->org_id; break;
    case K_LOC: num = dev->location_id; break;
    case K_ROLE: num = dev->role_id; break;
    case K_ID: num = dev->id; break;
    case K_CLASS: word = dev->node_class; break;
    case K_STATUS: word = dev->approval_status; break;
    }
    bool any = false;
    for (size_t i = 0; i < c->n_values && !any; i++)
        any = word ? strcmp(c->words[i], word) == 0 : c->ints[i] == num;
    return c->op == OP_EQ || c->op == OP_IN ? any : !any;
}

bool sim_df_match(const sim_df_t *df, const sim_device_t *dev)
{
    for (size_t i = 0; i < df->n; i++)
        if (!clause_match(&df->clauses[i], dev))
            return false;
    return true;
}

bool sim_df_has_status(const sim_df_t *df)
{
    for (size_t i = 0; i < df->n; i++)
        if (df->clauses[i].key == K_STATUS)
            return true;
    return false;
}

int32_t sim_df_single_org(const sim_df_t *df)
{
    for (size_t i = 0; i < df->n; i++) {
        const clause_t *c = &df->clauses[i];
        if (c->key == K_ORG && (c->op == OP_EQ || c->op == OP_IN) && c->n_values == 1)
            return (int32_t)c->ints[0];
    }
    return 0;
}
