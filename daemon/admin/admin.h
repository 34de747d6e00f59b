/*
 * admin: the admin API (issue 14) — residents, stations, tokens, settings and the audit log
 * — for the admin role only, over the protocol (AdminRequest -> AdminResult) and over HTTP
 * JSON (Authorization: Bearer TOKEN of an admin principal):
 *
 *   POST /v1/admin/residents/{register,update,deactivate,import}
 *   GET  /v1/admin/residents/{find,get}
 *   POST /v1/admin/stations/{create,update,retire,import}
 *   GET  /v1/admin/stations/{list,get}
 *   POST /v1/admin/tokens/{issue,revoke}     GET /v1/admin/tokens/list
 *   POST /v1/admin/settings/set              GET /v1/admin/settings/list
 *   GET  /v1/admin/audit
 *
 * A POST's body is one JSON object: the operation's arguments plus "reason" (required),
 * and for imports "records" (an array of objects) and "dry_run"; a GET takes them as query
 * parameters. Both doors make the same request of PostgreSQL: careline_admin(jsonb)
 * (sql/functions/admin*.sql) checks every argument, names each bad one, and writes the
 * change with its audit row in one transaction. What only the daemon can do is done here:
 * a token's secret is made here and only its hash sent; a retired station's offers are
 * released and re-dispatched (dispatch_release + dispatch_redispatch, the path a rejected
 * offer takes); a revoked principal (NOTIFY careline_principals, from any daemon or psql)
 * is forgotten by the token cache and its open sessions are closed.
 */
#ifndef CARELINE_ADMIN_H
#define CARELINE_ADMIN_H

#include "core/dispatch.h"
#include "core/env.h"
#include "core/station.h"

typedef struct Admin Admin;

/* Installs the AdminRequest route, the HTTP routes and the revocation LISTEN. env, dispatch
 * and st are borrowed and outlive the Admin. */
Admin *admin_new(const Env *env, Dispatch *dispatch, Stations *st);
/* Call after pg_pool_free (its failing callbacks still find the Admin) and http_free.
 * admin_free(NULL) is a no-op. */
void admin_free(Admin *a);

#endif
