/*
 * followup: the follow-up list of callers who are not registered residents (tables in
 * sql/migrations/009_followups.sql; the submit statement creates and counts them). The
 * admin sees and marks every follow-up of the county; a station only those of the villages
 * it serves (its own village, its service area, and for a town centre its town's villages). Gateway
 * and bureau principals are refused (FORBIDDEN / 403); the bureau reads the aggregate (/v1/unmet,
 * SCOPE_UNMET).
 *
 *   protocol: FollowupQuery -> FollowupList, FollowupMark -> FollowupMarkResult
 *   GET  /v1/admin/followups[?village=&town=&state=&after=&limit=&format=json|csv]
 *   POST /v1/admin/followups/mark   {"id":N,"state":"contacted|declined|registered",
 *                                    "note":"...","village":"CODE"}   (note, village optional)
 *
 * HTTP uses the bureau API's bearer-token rules (bureau_http_authorize). Bad input gets
 * INVALID_ARGUMENT naming the field (400); an unknown follow-up NOT_FOUND (404); another
 * station's follow-up FORBIDDEN (403); a registered one INVALID_TRANSITION (409). Each mark
 * is one SQL function call (careline_followup_mark): state, village and an event row with
 * who made it, in one transaction. Phones appear only masked (138****1234).
 */
#ifndef CARELINE_FOLLOWUP_H
#define CARELINE_FOLLOWUP_H

#include "core/env.h"
#include "reports/bureau.h"

typedef struct Followups Followups;

/* Installs the protocol and HTTP routes. env and bureau (whose HTTP auth it uses) are
 * borrowed and must outlive it. */
Followups *followups_new(const Env *env, Bureau *bureau);
/* Call after pg_pool_free and http_stop (operations in flight own themselves and hold
 * nothing of it but env). followups_free(NULL) is a no-op. */
void followups_free(Followups *f);

#endif
