/*
 * followup_format: the follow-up list (proto Followup) as JSON or CSV, and the states'
 * names. The daemon's HTTP door (/v1/admin/followups) and `bureau followups` both call it,
 * so both print the same shapes.
 */
#ifndef CARELINE_FOLLOWUP_FORMAT_H
#define CARELINE_FOLLOWUP_FORMAT_H

#include <stdbool.h>
#include <stddef.h>

#include "careline.pb-c.h"

/* The database / HTTP name of a FollowupState ("open", ...; "" for UNSPECIFIED or an
 * unknown value), and back (-1 for a name that is none). */
const char *followup_state_name(int state);
int followup_state_of(const char *name);

/* JSON: {"followups":[...],"more":bool}, or with one, {"followup":{...}} (fs[0], null when
 * n is 0). CSV: a header line, then one line per follow-up. Times are epoch milliseconds.
 * Each returns a malloc'd NUL-terminated string; *len gets its length. */
char *followup_json(Careline__V1__Followup **fs, size_t n, bool more, bool one, size_t *len);
char *followup_csv(Careline__V1__Followup **fs, size_t n, size_t *len);

#endif
