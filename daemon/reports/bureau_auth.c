/*
 * bureau_auth: the HTTP door's bearer token. A well-formed token is hashed and looked up in
 * principals; only the bureau and admin roles may read coverage. Positive lookups are kept
 * in a small round-robin cache for AUTH_CACHE_TTL_MS, so a dashboard polling every few
 * seconds costs no query — at the price of a revoked token working that much longer.
 */
#include "reports/bureau_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "store/pgcols.h"

#define AUTH_CACHE_TTL_MS 10000 /* a revoked token keeps working over HTTP at most this long */

typedef struct {
    Req *r;
    void (*then)(Req *r, const void *arg);
    const void *arg;
    char hex[2 * AUTH_HASH_LEN + 1];
} AuthOp;

static bool role_may_read(Role role)
{
    return role == CARELINE__V1__ROLE__ROLE_BUREAU || role == CARELINE__V1__ROLE__ROLE_ADMIN;
}

static void auth_decided(const AuthOp *op, Role role)
{
    Req *r = op->r;
    if (role == CARELINE__V1__ROLE__ROLE_UNSPECIFIED) {
        r->b->env->metrics->auth_failed++;
        bureau_req_fail(r, ERRC(AUTH_FAILED), NULL, "unknown or revoked token");
    } else if (!role_may_read(role)) {
        bureau_req_fail(r, ERRC(FORBIDDEN), NULL, "the %s role may not read coverage figures",
                        auth_role_name(role));
    } else {
        op->then(r, op->arg);
    }
}

/* AUTH_LOOKUP_SQL's columns (base/auth.h): only the role matters here. */
enum { A_ROLE, A_N };
static const char *const auth_cols[A_N] = {"role"};

static void auth_done(PGresult *res, const char *err, void *arg)
{
    AuthOp *op = arg;
    Req *r = op->r;
    PgCols pc = {0};
    if (!res) {
        /* the caller is not authenticated yet: the reason is for the log, not for it */
        log_warn("bureau: token lookup failed: %s", PG_ERRLINE(NULL, err));
        bureau_req_fail(r, ERRC(UNAVAILABLE), NULL,
                        "cannot check the token now (the database is unreachable); retry shortly");
    } else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("bureau: token lookup failed: %s", PG_ERRLINE(res, NULL));
        bureau_req_fail(r, ERRC(UNAVAILABLE), NULL, "cannot check the token now");
    } else if (!pgcols_bind(&pc, res, auth_cols, A_N)) {
        log_error("bureau: token lookup failed: the result has no column \"%s\"", pc.missing);
        bureau_req_fail(r, ERRC(INTERNAL), NULL, "cannot check the token (see the daemon log)");
    } else {
        Role role = PQntuples(res) == 1 ? auth_role_parse(pgcols_str(&pc, 0, A_ROLE))
                                        : CARELINE__V1__ROLE__ROLE_UNSPECIFIED;
        if (role != CARELINE__V1__ROLE__ROLE_UNSPECIFIED) {
            Bureau *b = r->b;
            AuthSlot *slot = &b->auth[b->auth_next++ % AUTH_CACHE_SLOTS];
            memcpy(slot->hex, op->hex, sizeof(slot->hex));
            slot->role = role;
            slot->expires_ms = util_now_ms() + AUTH_CACHE_TTL_MS;
        }
        auth_decided(op, role);
    }
    free(op);
}

void bureau_auth_check(Req *r, const char *auth, void (*then)(Req *r, const void *arg),
                       const void *arg)
{
    Bureau *b = r->b;
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
        bureau_req_fail(r, ERRC(NOT_AUTHENTICATED), NULL,
                        "missing bearer token: send Authorization: Bearer TOKEN (a bureau token)");
        return;
    }
    const char *tok = auth + 7;
    while (*tok == ' ')
        tok++;
    if (!auth_token_well_formed(tok)) {
        b->env->metrics->auth_failed++;
        bureau_req_fail(r, ERRC(AUTH_FAILED), NULL,
                        "malformed token (expected 1..256 printable ASCII characters)");
        return;
    }
    AuthOp *op = xcalloc(1, sizeof(*op));
    op->r = r;
    op->then = then;
    op->arg = arg;
    auth_token_hash_hex(tok, op->hex);
    int64_t now = util_now_ms();
    for (size_t i = 0; i < AUTH_CACHE_SLOTS; i++) {
        const AuthSlot *slot = &b->auth[i];
        if (slot->hex[0] && slot->expires_ms > now && strcmp(slot->hex, op->hex) == 0) {
            auth_decided(op, slot->role);
            free(op);
            return;
        }
    }
    const char *params[] = {op->hex};
    if (!pg_query(b->env->pg, AUTH_LOOKUP_SQL, 1, params, auth_done, op)) {
        free(op);
        bureau_req_fail(r, ERRC(OVERLOADED), NULL, "too many queries waiting for the database");
    }
}
