/* NinjaOne device filter ("df") parser and matcher. Grammar (API-NOTES
 * section 5): clauses joined by AND / and / &&; a clause is
 *   org|organization|loc|location|role|id|class|status  OP  VALUE
 *   online | offline | group N | created after|before|>|< DATE
 * with OP one of = eq != neq in notin nin, VALUE a word or (a,b,...). */
#ifndef SIM_DF_H
#define SIM_DF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet.h"

typedef struct sim_df sim_df_t;

/* Parses text (NULL or empty = match everything). Returns 0 and a new
 * filter (free with sim_df_free), or -1 with a message in err. */
int sim_df_parse(const char *text, sim_df_t **out, char *err, size_t errlen);
void sim_df_free(sim_df_t *df);

bool sim_df_match(const sim_df_t *df, const sim_device_t *dev);
/* True when some clause constrains approvalStatus; device lists apply
 * "status = APPROVED" by default otherwise. */
bool sim_df_has_status(const sim_df_t *df);
/* The organization id when a clause pins exactly one org, else 0; lets
 * endpoints walk that org's devices instead of the whole fleet. */
int32_t sim_df_single_org(const sim_df_t *df);

#endif
