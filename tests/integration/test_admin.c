/*
 * Integration tests of the admin API (daemon/admin, sql/functions/admin*.sql) on real
 * dispatchd, PostgreSQL and Redis: every operation over the protocol and HTTP with its audit
 * row; validation naming every bad field, nothing written; imports all or nothing (and a
 * dry run writes nothing); role separation; a revoked token's open session closed; a
 * registered caller's next call QUEUED; a station created on one daemon matched on another;
 * a retired station's offers re-dispatched to another station.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "fixture.h"
#include "ihttp.h"
#include "iproc.h"
#include "isession.h"
#include "itest.h"
#include "t.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b
#define ERRC(x) CARELINE__V1__ERROR_CODE__##x
#define RST(x)  CARELINE__V1__REQUEST_STATE__##x

typedef Careline__V1__AdminResult Result;

static Daemon d;

/* An AdminRequest of op with a reason (NULL: none) and "key", "value" pairs up to NULL. */
static ClEnvelope *adm(ClConn *c, const char *op, const char *reason, ...)
{
    Careline__V1__AdminRequest q = CARELINE__V1__ADMIN_REQUEST__INIT;
    Careline__V1__AdminRequest__ArgsEntry ents[32], *ptr[32];
    va_list ap;
    va_start(ap, reason);
    size_t n = 0;
    for (const char *k; n < 32 && (k = va_arg(ap, const char *));) {
        careline__v1__admin_request__args_entry__init(&ents[n]);
        ents[n].key = (char *)k;
        ents[n].value = va_arg(ap, char *);
        ptr[n] = &ents[n];
        n++;
    }
    va_end(ap);
    q.op = (char *)op;
    q.reason = (char *)(reason ? reason : "");
    q.n_args = n;
    q.args = ptr;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(ADMIN_REQUEST);
    e.admin_request = &q;
    return isess_call(&d, c, &e, 15000, op, NULL, NULL);
}

/* The same request as adm(), from a JSON object (string, number or boolean values; a
 * "records" array of such objects becomes the import's records). */
static ClEnvelope *adm_json(ClConn *c, const char *op, const char *reason, const char *json)
{
    json_t *o = json_loads(json, 0, NULL);
    T_ASSERT(json_is_object(o));
    Careline__V1__AdminRequest q = CARELINE__V1__ADMIN_REQUEST__INIT;
    Careline__V1__AdminRequest__ArgsEntry ents[32], *ptr[32];
    Careline__V1__AdminRecord rec[8], *rp[8];
    Careline__V1__AdminRecord__FieldsEntry fe[8][16], *fp[8][16];
    char vals[9][16][64];
    const char *k;
    json_t *v;
    size_t n = 0;
    json_object_foreach(o, k, v)
    {
        if (strcmp(k, "records") == 0) {
            size_t i;
            json_t *r;
            json_array_foreach(v, i, r)
            {
                careline__v1__admin_record__init(&rec[i]);
                const char *fk;
                json_t *fv;
                json_object_foreach(r, fk, fv)
                {
                    size_t j = rec[i].n_fields++;
                    careline__v1__admin_record__fields_entry__init(&fe[i][j]);
                    fe[i][j].key = (char *)fk;
                    snprintf(vals[i + 1][j], 64, "%s", json_string_value(fv));
                    fe[i][j].value = vals[i + 1][j];
                    fp[i][j] = &fe[i][j];
                }
                rec[i].fields = fp[i];
                rp[i] = &rec[i];
                q.n_records = i + 1;
            }
            q.records = rp;
            continue;
        }
        careline__v1__admin_request__args_entry__init(&ents[n]);
        ents[n].key = (char *)k;
        if (json_is_string(v))
            snprintf(vals[0][n], 64, "%s", json_string_value(v));
        else if (json_is_integer(v))
            snprintf(vals[0][n], 64, "%lld", (long long)json_integer_value(v));
        else
            snprintf(vals[0][n], 64, "%s", json_is_true(v) ? "true" : "false");
        ents[n].value = vals[0][n];
        ptr[n] = &ents[n];
        n++;
    }
    q.op = (char *)op;
    q.reason = (char *)(reason ? reason : "");
    q.n_args = n;
    q.args = ptr;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(ADMIN_REQUEST);
    e.admin_request = &q;
    ClEnvelope *r = isess_call(&d, c, &e, 15000, op, NULL, NULL);
    json_decref(o);
    return r;
}

static const Result *res_of(const ClEnvelope *r)
{
    if (r->body_case == BODY(ERROR))
        t_fail(__FILE__, __LINE__, "Error %d: %s", r->error->code, r->error->message);
    T_EQ_INT(r->body_case, BODY(ADMIN_RESULT));
    return r->admin_result;
}

/* The value of column col in row i of an AdminResult ("" when absent). */
static const char *cell(const Result *m, size_t i, const char *col)
{
    for (size_t j = 0; j < m->n_columns; j++)
        if (strcmp(m->columns[j], col) == 0 && i < m->n_rows && j < m->rows[i]->n_values)
            return m->rows[i]->values[j];
    return "";
}

static bool has_error(const Result *m, const char *field, unsigned record)
{
    for (size_t i = 0; i < m->n_errors; i++)
        if (strcmp(m->errors[i]->field, field) == 0 && m->errors[i]->record == record)
            return true;
    return false;
}

static bool admin_op_is_read(const char *op)
{
    return strstr(op, ".find") || strstr(op, ".get") || strstr(op, ".list") || strstr(op, ".query");
}

static int http(const char *method, const char *path, const char *token, const char *body,
                json_t **out)
{
    char auth[128];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
    IhttpResp r;
    ihttp_request(d.http_port, method, path, token ? hdrs : hdrs + 1, body, body ? strlen(body) : 0,
                  15000, &r);
    if (out)
        *out = r.body ? json_loads(r.body, 0, NULL) : NULL;
    int st = r.status;
    ihttp_free(&r);
    return st;
}

static void phone_for(char out[16], int i)
{
    snprintf(out, 16, "166%04d%04d", (int)(getpid() % 10000), i);
}

static long long audit_rows(PGconn *pg, const char *kind, long long id, const char *action)
{
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", id);
    const char *p[] = {kind, ids, action};
    return itest_sql_ll(
        pg,
        "SELECT count(*) FROM admin_audit WHERE object_kind = $1 AND object_id = $2 "
        "AND action = $3 AND principal_id IS NOT NULL AND reason <> ''",
        3, p);
}

/* ---- roles ---------------------------------------------------------------------------------- */

static void admin_roles(void)
{
    PGconn *pg = itest_pg();
    itest_daemon_up(&d, NULL);
    static const char *const roles[] = {"gateway", "station", "bureau"};
    for (size_t i = 0; i < 3; i++) {
        long sid = strcmp(roles[i], "station") == 0
                       ? itest_sql_ll(pg, "SELECT min(id) FROM stations WHERE active", 0, NULL)
                       : 0;
        char tok[64];
        itest_make_token(pg, roles[i], sid, tok);
        ClConn *c = itest_login(&d, tok);
        ClEnvelope *r = adm(c, "setting.list", NULL, NULL);
        T_EQ_INT(r->body_case, BODY(ERROR));
        T_EQ_INT(r->error->code, ERRC(FORBIDDEN));
        cl_free(r);
        cl_close(c);
        T_EQ_INT(http("GET", "/v1/admin/settings/list", tok, NULL, NULL), 403);
    }
    T_EQ_INT(http("GET", "/v1/admin/settings/list", NULL, NULL, NULL), 401);
    char tok[64];
    itest_make_token(pg, "admin", 0, tok);
    T_EQ_INT(http("GET", "/v1/admin/settings/list", tok, NULL, NULL), 200);
    T_EQ_INT(http("POST", "/v1/admin/settings/list", tok, "{}", NULL), 405);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* ---- residents --------------------------------------------------------------------------------
 */

static void admin_residents(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 71, &f);
    itest_daemon_up(&d, NULL);
    char tok[64], phone[16];
    itest_make_token(pg, "admin", 0, tok);
    ClConn *c = itest_login(&d, tok);
    phone_for(phone, 1);

    /* every bad field named, nothing written */
    ClEnvelope *r = adm(c, "resident.register", NULL, "phone", "12ab", "name", "", "village_code",
                        "330281999999", "birth_year", "1800", "lat", "x", "lives_alone", "maybe",
                        "colour", "red", NULL);
    const Result *m = res_of(r);
    T_EQ_INT(m->code, ERRC(INVALID_ARGUMENT));
    const char *bad[] = {"reason", "phone",      "name",        "village_code",
                         "lat",    "birth_year", "lives_alone", "colour"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (!has_error(m, bad[i], 0))
            t_fail(__FILE__, __LINE__, "no error for %s", bad[i]);
    cl_free(r);
    T_EQ_INT(itest_sql_ll(pg, "SELECT count(*) FROM residents WHERE name = ''", 0, NULL), 0);

    /* register: the record back in full, one audit row */
    r = adm(c, "resident.register", "registered at the village office", "phone", phone, "name",
            "测试居民", "village_code", f.village, "birth_year", "1941", "lives_alone", "true",
            "assistance_category", "minimum_allowance", NULL);
    m = res_of(r);
    T_EQ_INT(m->code, 0);
    long long rid = m->object_id;
    T_ASSERT(rid > 0 && m->audit_id > 0);
    T_EQ_STR(cell(m, 0, "phone"), phone);
    T_EQ_STR(cell(m, 0, "name"), "测试居民");
    cl_free(r);
    T_EQ_INT(audit_rows(pg, "resident", rid, "resident.register"), 1);

    /* the same phone again: CONFLICT naming it */
    r = adm(c, "resident.register", "again", "phone", phone, "name", "别人", "village_code",
            f.village, "birth_year", "1950", NULL);
    m = res_of(r);
    T_EQ_INT(m->code, ERRC(CONFLICT));
    T_ASSERT(has_error(m, "phone", 0));
    cl_free(r);

    /* find: masked; get: in full */
    r = adm(c, "resident.find", NULL, "phone", phone, NULL);
    m = res_of(r);
    T_EQ_INT(m->n_rows, 1);
    T_ASSERT(strstr(cell(m, 0, "phone"), "****") != NULL);
    T_ASSERT(strstr(cell(m, 0, "phone"), phone) == NULL);
    T_EQ_STR(cell(m, 0, "name"), "测***");
    cl_free(r);
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", rid);
    r = adm(c, "resident.get", NULL, "id", ids, NULL);
    T_EQ_STR(cell(res_of(r), 0, "phone"), phone);
    cl_free(r);

    /* update over HTTP, then a bad update names its fields (400) and changes nothing */
    char body[512];
    json_t *j;
    snprintf(
        body, sizeof(body),
        "{\"id\": %lld, \"reason\": \"moved\", \"address\": \"新地址 1 号\", \"disabled\": true}",
        rid);
    T_EQ_INT(http("POST", "/v1/admin/residents/update", tok, body, &j), 200);
    T_EQ_STR(json_string_value(
                 json_object_get(json_array_get(json_object_get(j, "rows"), 0), "disabled")),
             "true");
    json_decref(j);
    T_EQ_INT(audit_rows(pg, "resident", rid, "resident.update"), 1);
    snprintf(body, sizeof(body),
             "{\"id\": %lld, \"reason\": \"x\", \"birth_year\": \"old\", \"subsidy_card\": \"?\"}",
             rid);
    T_EQ_INT(http("POST", "/v1/admin/residents/update", tok, body, &j), 400);
    json_t *fields = json_object_get(json_object_get(j, "error"), "fields");
    T_EQ_INT(json_array_size(fields), 2);
    json_decref(j);
    T_EQ_INT(http("POST", "/v1/admin/residents/update", tok, "not json", NULL), 400);
    const char *p1[] = {ids};
    T_EQ_INT(itest_sql_ll(pg, "SELECT birth_year FROM residents WHERE id = $1", 1, p1), 1941);

    /* deactivate: kept, not active, audited; again: refused */
    r = adm(c, "resident.deactivate", "moved away", "id", ids, NULL);
    T_EQ_INT(res_of(r)->code, 0);
    cl_free(r);
    T_EQ_INT(itest_sql_ll(pg, "SELECT count(*) FROM residents WHERE id = $1 AND NOT active", 1, p1),
             1);
    r = adm(c, "resident.deactivate", "moved away", "id", ids, NULL);
    T_EQ_INT(res_of(r)->code, ERRC(INVALID_ARGUMENT));
    cl_free(r);
    r = adm(c, "resident.update", "moved back", "id", ids, "active", "true", NULL);
    T_EQ_INT(res_of(r)->code, 0);
    cl_free(r);
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM residents WHERE id = $1 AND active AND "
                          "deactivated_at IS NULL",
                          1, p1),
             1);
    r = adm(c, "resident.get", NULL, "id", "999999999", NULL);
    T_EQ_INT(res_of(r)->code, ERRC(NOT_FOUND));
    cl_free(r);

    /* the audit log by object and period, over both doors */
    r = adm(c, "audit.query", NULL, "object_kind", "resident", "object_id", ids, NULL);
    m = res_of(r);
    T_EQ_INT(m->n_rows, 4);
    T_EQ_STR(cell(m, 0, "action"), "resident.register");
    T_ASSERT(strstr(cell(m, 0, "after"), phone) == NULL); /* masked */
    cl_free(r);
    char path[160];
    snprintf(path, sizeof(path), "/v1/admin/audit?object_kind=resident&object_id=%s&from=%s", ids,
             "2020-01-01");
    T_EQ_INT(http("GET", path, tok, NULL, &j), 200);
    T_EQ_INT(json_array_size(json_object_get(j, "rows")), 4);
    json_decref(j);
    T_EQ_INT(http("GET", "/v1/admin/audit?from=yesterday&limit=0", tok, NULL, &j), 400);
    T_EQ_INT(json_array_size(json_object_get(json_object_get(j, "error"), "fields")), 2);
    json_decref(j);
    cl_close(c);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* ---- imports ------------------------------------------------------------------------------ */

static ClEnvelope *import(ClConn *c, bool dry, int n, const char *const (*rows)[4],
                          const char *village)
{
    Careline__V1__AdminRequest q = CARELINE__V1__ADMIN_REQUEST__INIT;
    Careline__V1__AdminRecord rec[8], *rp[8];
    Careline__V1__AdminRecord__FieldsEntry fe[8][4], *fp[8][4];
    static const char *const keys[] = {"phone", "name", "birth_year", "village_code"};
    for (int i = 0; i < n; i++) {
        careline__v1__admin_record__init(&rec[i]);
        for (int k = 0; k < 4; k++) {
            careline__v1__admin_record__fields_entry__init(&fe[i][k]);
            fe[i][k].key = (char *)keys[k];
            fe[i][k].value = (char *)(k == 3 ? village : rows[i][k]);
            fp[i][k] = &fe[i][k];
        }
        rec[i].n_fields = 4;
        rec[i].fields = fp[i];
        rp[i] = &rec[i];
    }
    q.op = (char *)"resident.import";
    q.reason = (char *)"bulk import";
    q.n_records = (size_t)n;
    q.records = rp;
    q.dry_run = dry;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(ADMIN_REQUEST);
    e.admin_request = &q;
    return isess_call(&d, c, &e, 15000, "import", NULL, NULL);
}

static void admin_import(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 72, &f);
    itest_daemon_up(&d, NULL);
    char tok[64], p1[16], p2[16];
    itest_make_token(pg, "admin", 0, tok);
    ClConn *c = itest_login(&d, tok);
    phone_for(p1, 21);
    phone_for(p2, 22);
    const char *const good[2][4] = {{p1, "甲", "1940", NULL}, {p2, "乙", "1945", NULL}};
    const char *const bad[3][4] = {
        {p1, "甲", "1940", NULL}, {p2, "乙", "19x5", NULL}, {p1, "丙", "1950", NULL}};
    const char *pp[] = {f.village};
    const char *cnt = "SELECT count(*) FROM residents WHERE village_code = $1";

    ClEnvelope *r = import(c, false, 3, bad, f.village);
    const Result *m = res_of(r);
    T_EQ_INT(m->code, ERRC(INVALID_ARGUMENT));
    T_ASSERT(has_error(m, "birth_year", 2));
    T_ASSERT(has_error(m, "phone", 3)); /* the file's own duplicate */
    T_ASSERT(!has_error(m, "phone", 1));
    cl_free(r);
    T_EQ_INT(itest_sql_ll(pg, cnt, 1, pp), 0);

    r = import(c, true, 2, good, f.village);
    m = res_of(r);
    T_EQ_INT(m->code, 0);
    T_ASSERT(strstr(m->message, "dry run") != NULL);
    cl_free(r);
    T_EQ_INT(itest_sql_ll(pg, cnt, 1, pp), 0);

    r = import(c, false, 2, good, f.village);
    m = res_of(r);
    T_EQ_INT(m->code, 0);
    T_EQ_INT(m->n_rows, 2);
    cl_free(r);
    T_EQ_INT(itest_sql_ll(pg, cnt, 1, pp), 2);
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM admin_audit a JOIN residents r ON a.object_id = "
                          "r.id::text WHERE a.object_kind = 'resident' AND r.village_code = $1",
                          1, pp),
             2);
    cl_close(c);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* ---- tokens ------------------------------------------------------------------------------- */

static void admin_tokens(void)
{
    PGconn *pg = itest_pg();
    itest_daemon_up(&d, NULL);
    char tok[64];
    itest_make_token(pg, "admin", 0, tok);
    ClConn *c = itest_login(&d, tok);

    ClEnvelope *r =
        adm(c, "token.issue", "new analyst", "role", "bureau", "name", "analyst-2", NULL);
    const Result *m = res_of(r);
    T_EQ_INT(m->code, 0);
    T_EQ_INT(strlen(m->secret), 48);
    char secret[64], ids[24];
    snprintf(secret, sizeof(secret), "%s", m->secret);
    snprintf(ids, sizeof(ids), "%lld", (long long)m->object_id);
    cl_free(r);
    const char *p[] = {ids, secret};
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM principals WHERE id = $1 AND token_hash = "
                          "sha256(convert_to($2, 'UTF8')) AND role = 'bureau'",
                          2, p),
             1);
    T_EQ_INT(audit_rows(pg, "token", m ? atoll(ids) : 0, "token.issue"), 1);
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM admin_audit WHERE after::text LIKE '%' || $2 "
                          "|| '%' AND $1 <> ''",
                          2, p),
             0); /* the secret is stored nowhere */

    /* bad issue: every field named */
    r = adm(c, "token.issue", "x", "role", "root", "name", "", NULL);
    m = res_of(r);
    T_ASSERT(has_error(m, "role", 0) && has_error(m, "name", 0));
    cl_free(r);

    /* the new token works on both daemons; revoked over HTTP on one, its open sessions on
     * both are closed within seconds */
    Daemon d2;
    itest_daemon_up(&d2, NULL);
    ClConn *b = itest_login(&d, secret);
    ClConn *b_other = itest_login(&d2, secret);
    char body[128];
    snprintf(body, sizeof(body), "{\"id\": %s, \"reason\": \"left the bureau\"}", ids);
    T_EQ_INT(http("POST", "/v1/admin/tokens/revoke", tok, body, NULL), 200);
    T_ASSERT(itest_wait_closed(b, 10000));
    T_ASSERT(itest_wait_closed(b_other, 10000));
    cl_close(b);
    cl_close(b_other);
    itest_daemon_down(&d2);
    ClConn *b2 = itest_connect(&d);
    char err[256];
    ClEnvelope *h = cl_hello(b2, secret, "t", 5000, err, sizeof(err));
    T_ASSERT(h && h->body_case == BODY(ERROR));
    cl_free(h);
    cl_close(b2);
    T_EQ_INT(audit_rows(pg, "token", atoll(ids), "token.revoke"), 1);

    r = adm(c, "token.list", NULL, "revoked", "true", "role", "bureau", NULL);
    m = res_of(r);
    bool seen = false;
    for (size_t i = 0; i < m->n_rows; i++)
        seen |= strcmp(cell(m, i, "id"), ids) == 0 && cell(m, i, "revoked_at")[0];
    T_ASSERT(seen);
    cl_free(r);
    cl_close(c);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* A revocation whose NOTIFY the daemon missed (its LISTEN connection was down): when the
 * LISTEN comes back, the open sessions of principals revoked meanwhile are closed. */
static void admin_revoke_missed_notify(void)
{
    PGconn *pg = itest_pg();
    itest_daemon_up(&d, NULL);
    char tok[64];
    itest_make_token(pg, "bureau", 0, tok);
    ClConn *b = itest_login(&d, tok);
    const char *p[] = {tok};
    /* revoked with the notifying trigger off: no NOTIFY at all */
    PQclear(itest_sql(pg, "ALTER TABLE principals DISABLE TRIGGER principals_notify", 0, NULL));
    PQclear(itest_sql(pg,
                      "UPDATE principals SET revoked_at = now() "
                      "WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
                      1, p));
    PQclear(itest_sql(pg, "ALTER TABLE principals ENABLE TRIGGER principals_notify", 0, NULL));
    iproc_sleep_ms(300);
    T_ASSERT(!itest_wait_closed(b, 200)); /* nothing told the daemon yet */
    T_ASSERT(itest_sql_ll(pg,
                          "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE usename = 'careline_app' AND query LIKE 'LISTEN%'",
                          0, NULL) >= 1);
    T_ASSERT(itest_wait_closed(b, 15000));
    cl_close(b);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* ---- settings ----------------------------------------------------------------------------- */

static void admin_settings(void)
{
    PGconn *pg = itest_pg();
    itest_daemon_up(&d, NULL);
    char tok[64];
    itest_make_token(pg, "admin", 0, tok);
    json_t *j;
    T_EQ_INT(http("POST", "/v1/admin/settings/set", tok,
                  "{\"key\": \"target_terminal_share\", \"value\": \"0.6\", \"reason\": \"plan\"}",
                  &j),
             200);
    json_decref(j);
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM settings WHERE key = 'target_terminal_share' AND "
                          "value = '0.6'",
                          0, NULL),
             1);
    T_EQ_INT(http("POST", "/v1/admin/settings/set", tok,
                  "{\"key\": \"speed_rural_kmh\", \"value\": \"900\", \"reason\": \"x\"}", &j),
             400);
    T_EQ_STR(json_string_value(json_object_get(json_object_get(j, "error"), "field")), "value");
    json_decref(j);
    T_EQ_INT(
        http("POST", "/v1/admin/settings/set", tok, "{\"key\": \"nope\", \"value\": \"1\"}", &j),
        400);
    T_EQ_INT(json_array_size(json_object_get(json_object_get(j, "error"), "fields")), 2);
    json_decref(j);
    T_EQ_INT(http("POST", "/v1/admin/settings/set", tok,
                  "{\"key\": \"target_terminal_share\", \"value\": \"0.55\", \"reason\": \"back\"}",
                  NULL),
             200);
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM admin_audit WHERE object_kind = 'setting' AND "
                          "object_id = 'target_terminal_share' AND after->>'value' = '0.6'",
                          0, NULL),
             1);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* booking_days and priority_reserve_pct rows win over the config keys, live on every daemon
 * (server/settings_follow.c): a meal 4 days ahead is refused once the admin sets a horizon
 * of 2 days, and served again once the row is gone (the config's 7). */
static int far_meal(ClConn *g, const char *phone, int n)
{
    char key[64], day[16];
    time_t t = time(NULL) + 8 * 3600 + 4 * 86400; /* the county's calendar: UTC+8 */
    strftime(day, sizeof(day), "%Y-%m-%d", gmtime(&t));
    snprintf(key, sizeof(key), "adm-far-%d-%d", n, (int)getpid());
    Careline__V1__SubmitRequest m;
    isess_meal(&m, key, phone);
    m.service_date = day;
    ClEnvelope *r = isess_submit(&d, g, &m, 15000);
    int rc = isess_result(r) ? (int)isess_result(r)->reason_code : -1;
    cl_free(r);
    return rc;
}

static void admin_settings_live(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 79, &f);
    fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 50, .cap_dinner = 50});
    char phone[16], tok[64];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL); /* booking_days 7 by default */
    itest_make_token(pg, "admin", 0, tok);
    ClConn *g = isess_gateway(&d, pg);
    T_ASSERT(far_meal(g, phone, 0) != S(REASON_CODE__DATE_TOO_FAR));
    T_EQ_INT(http("POST", "/v1/admin/settings/set", tok,
                  "{\"key\": \"booking_days\", \"value\": \"2\", \"reason\": \"pilot\"}", NULL),
             200);
    int n = 1, rc = 0;
    for (int64_t until = util_now_ms() + 10000; util_now_ms() < until; usleep(100000))
        if ((rc = far_meal(g, phone, n++)) == S(REASON_CODE__DATE_TOO_FAR))
            break;
    T_EQ_INT(rc, S(REASON_CODE__DATE_TOO_FAR));
    PQclear(itest_sql(pg, "DELETE FROM settings WHERE key = 'booking_days'", 0, NULL));
    for (int64_t until = util_now_ms() + 10000; util_now_ms() < until; usleep(100000))
        if ((rc = far_meal(g, phone, n++)) != S(REASON_CODE__DATE_TOO_FAR))
            break;
    T_ASSERT(rc != S(REASON_CODE__DATE_TOO_FAR));
    T_EQ_INT(itest_log_count(&d, "settings: booking_days = 2"), 1);
    cl_close(g);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* ---- registration serves the next call ---------------------------------------------------- */

static void admin_register_then_queued(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 73, &f);
    fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10, .cap_dinner = 10});
    itest_daemon_up(&d, NULL);
    char tok[64], phone[16], key[64];
    itest_make_token(pg, "admin", 0, tok);
    phone_for(phone, 31);
    ClConn *g = isess_gateway(&d, pg);
    Careline__V1__SubmitRequest m;
    snprintf(key, sizeof(key), "adm-reg-1-%d", (int)getpid());
    isess_meal(&m, key, phone);
    ClEnvelope *r = isess_submit(&d, g, &m, 15000);
    T_EQ_INT(isess_result(r)->state, RST(NOT_REGISTERED));
    cl_free(r);

    char body[512];
    snprintf(body, sizeof(body),
             "{\"phone\": \"%s\", \"name\": \"来电者\", \"village_code\": \"%s\", "
             "\"birth_year\": 1944, \"reason\": \"registered after the call\"}",
             phone, f.village);
    T_EQ_INT(http("POST", "/v1/admin/residents/register", tok, body, NULL), 200);

    snprintf(key, sizeof(key), "adm-reg-2-%d", (int)getpid());
    isess_meal(&m, key, phone);
    r = isess_submit(&d, g, &m, 15000);
    T_EQ_INT(isess_result(r)->state, RST(QUEUED));
    cl_free(r);

    /* the registration carried the number's HMAC (made by the daemon), so the follow-up of
     * the first call is registered and linked to the new resident, with that call */
    const char *pp[] = {phone};
    long long rid = itest_sql_ll(pg, "SELECT id FROM residents WHERE phone = $1", 1, pp);
    T_EQ_INT(
        itest_sql_ll(
            pg,
            "SELECT count(*) FROM residents r JOIN requests q"
            " ON q.caller_phone_hash = r.phone_hash WHERE r.phone = $1 AND q.resident_id IS NULL",
            1, pp),
        1);
    char q[256];
    snprintf(q, sizeof(q),
             "SELECT count(*) FROM followups f JOIN followup_calls c ON c.followup_id = f.id"
             " WHERE f.resident_id = %lld AND f.state = 'registered'",
             rid);
    T_EQ_INT(itest_sql_ll(pg, q, 0, NULL), 1);

    /* deactivated: their calls count as not registered again */
    snprintf(body, sizeof(body), "{\"id\": %lld, \"reason\": \"moved away\"}", rid);
    T_EQ_INT(http("POST", "/v1/admin/residents/deactivate", tok, body, NULL), 200);
    snprintf(key, sizeof(key), "adm-reg-3-%d", (int)getpid());
    isess_meal(&m, key, phone);
    r = isess_submit(&d, g, &m, 15000);
    T_EQ_INT(isess_result(r)->state, RST(NOT_REGISTERED));
    cl_free(r);
    cl_close(g);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* ---- stations: live on every daemon; retiring re-dispatches -------------------------------- */

static void admin_stations(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 74, &f);
    int64_t other = fix_station(
        pg, &f, &(FixStation){.meal = true, .cap_lunch = 10, .dlat = 0.02, .dlon = 0.02});
    Daemon d2;
    itest_daemon_up(&d, NULL);
    itest_daemon_up(&d2, NULL);
    char tok[64], phone[16], code[40], lat[32], lon[32];
    itest_make_token(pg, "admin", 0, tok);
    fix_resident(pg, &f, 1, false, phone);
    snprintf(code, sizeof(code), "ADM-T-%d", (int)getpid());
    snprintf(lat, sizeof(lat), "%.6f", f.lat);
    snprintf(lon, sizeof(lon), "%.6f", f.lon);
    ClConn *c = itest_login(&d, tok);

    /* bad fields first: each named */
    ClEnvelope *r = adm(c, "station.create", "new", "code", "bad code!", "kind", "hut", "town_code",
                        f.town, "caregivers", "1", "caregivers_certified", "2", "opens_at", "9am",
                        "care_subtypes", "cooking", NULL);
    const Result *m = res_of(r);
    const char *bad[] = {"code",     "name",         "kind", "caregivers_certified",
                         "opens_at", "care_subtypes"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (!has_error(m, bad[i], 0))
            t_fail(__FILE__, __LINE__, "no error for %s", bad[i]);
    cl_free(r);

    /* created on daemon 1, at the residents' village point: the nearest station */
    r = adm(c, "station.create", "opened this week", "code", code, "name", "新助餐点", "kind",
            "meal_point", "town_code", f.town, "village_code", f.village, "lat", lat, "lon", lon,
            "offers_meal_delivery", "true", "meal_capacity_lunch", "5", "service_area", f.village,
            NULL);
    m = res_of(r);
    T_EQ_INT(m->code, 0);
    int64_t sid = m->object_id;
    T_EQ_STR(cell(m, 0, "service_area"), f.village);
    cl_free(r);
    T_EQ_INT(audit_rows(pg, "station", sid, "station.create"), 1);

    /* ... matched by the next request on daemon 2 (its directory follows the NOTIFY) */
    ClConn *g = isess_gateway(&d2, pg);
    int64_t got = 0, req = 0;
    for (int i = 0; i < 50 && got != sid; i++) {
        char key[64];
        snprintf(key, sizeof(key), "adm-st-%d-%d", (int)getpid(), i);
        Careline__V1__SubmitRequest sm;
        isess_meal(&sm, key, phone);
        ClEnvelope *s = isess_submit(&d2, g, &sm, 15000);
        const Careline__V1__SubmitResult *sr = isess_result(s);
        got = sr->station_id;
        req = sr->request_id;
        if (got != sid) /* daemon 2 has not heard of it yet */
            iproc_sleep_ms(200);
        cl_free(s);
    }
    T_EQ_INT(got, sid);

    /* update over HTTP, then retire: the offer goes to the other station */
    char body[256];
    snprintf(body, sizeof(body),
             "{\"id\": %lld, \"reason\": \"more cooks\", \"meal_capacity_lunch\": 8}",
             (long long)sid);
    T_EQ_INT(http("POST", "/v1/admin/stations/update", tok, body, NULL), 200);
    snprintf(body, sizeof(body), "{\"id\": %lld, \"reason\": \"closed for good\"}", (long long)sid);
    json_t *j;
    T_EQ_INT(http("POST", "/v1/admin/stations/retire", tok, body, &j), 200);
    json_decref(j);
    char rq[24], os[24];
    snprintf(rq, sizeof(rq), "%lld", (long long)req);
    snprintf(os, sizeof(os), "%lld", (long long)other);
    const char *p[] = {rq, os};
    T_EQ_INT(itest_wait_sql_ll(pg,
                               "SELECT count(*) FROM requests WHERE id = $1 AND station_id = $2 "
                               "AND state = 'queued'",
                               2, p, 1, 15000),
             1);
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM jobs j JOIN stations s ON s.id = j.station_id "
                          "WHERE j.request_id = $1 AND j.state = 'rejected' AND NOT s.active",
                          1, p),
             1);
    T_EQ_INT(audit_rows(pg, "station", sid, "station.retire"), 1);
    cl_close(g);
    cl_close(c);
    itest_daemon_down(&d2);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* ---- every operation, both doors ---------------------------------------------------------- */

typedef struct {
    const char *op, *path, *bad, *field;
    unsigned record;
} OpCase;

/* path + "?" + the JSON object's members as name=value (values are plain in the table). */
static void query_path(char *out, size_t n, const char *path, const char *json)
{
    json_t *o = json_loads(json, 0, NULL);
    size_t len = (size_t)snprintf(out, n, "%s", path);
    const char *k;
    json_t *v;
    char sep = '?';
    json_object_foreach(o, k, v)
    {
        len += (size_t)snprintf(out + len, n - len, "%c%s=%s", sep, k, json_string_value(v));
        sep = '&';
    }
    json_decref(o);
}

static bool json_has_field(json_t *j, const char *field, unsigned record)
{
    json_t *fields = json_object_get(json_object_get(j, "error"), "fields");
    for (size_t i = 0; i < json_array_size(fields); i++) {
        json_t *e = json_array_get(fields, i);
        if (strcmp(json_string_value(json_object_get(e, "field")), field) == 0 &&
            json_integer_value(json_object_get(e, "record")) == (json_int_t)record)
            return true;
    }
    return false;
}

static void admin_every_op(void)
{
    static const OpCase ops[] = {
        {"resident.register", "/v1/admin/residents/register", "{\"phone\": \"x\"}", "phone", 0},
        {"resident.update", "/v1/admin/residents/update", "{\"id\": \"abc\"}", "id", 0},
        {"resident.deactivate", "/v1/admin/residents/deactivate", "{}", "id", 0},
        {"resident.import", "/v1/admin/residents/import", "{\"records\": [{\"phone\": \"1\"}]}",
         "phone", 1},
        {"resident.find", "/v1/admin/residents/find", "{}", "phone", 0},
        {"resident.get", "/v1/admin/residents/get", "{\"id\": \"-1\"}", "id", 0},
        {"station.create", "/v1/admin/stations/create", "{\"code\": \"a b\"}", "code", 0},
        {"station.update", "/v1/admin/stations/update", "{\"id\": \"x\"}", "id", 0},
        {"station.retire", "/v1/admin/stations/retire", "{}", "id", 0},
        {"station.import", "/v1/admin/stations/import", "{\"records\": [{\"code\": \"!\"}]}",
         "code", 1},
        {"station.list", "/v1/admin/stations/list", "{\"active\": \"maybe\"}", "active", 0},
        {"station.get", "/v1/admin/stations/get", "{}", "id", 0},
        {"token.issue", "/v1/admin/tokens/issue", "{\"role\": \"x\", \"name\": \"n\"}", "role", 0},
        {"token.list", "/v1/admin/tokens/list", "{\"role\": \"x\"}", "role", 0},
        {"token.revoke", "/v1/admin/tokens/revoke", "{\"id\": \"0\"}", "id", 0},
        {"setting.set", "/v1/admin/settings/set", "{\"key\": \"k\", \"value\": \"1\"}", "key", 0},
        {"setting.list", "/v1/admin/settings/list", "{\"x\": \"1\"}", "x", 0},
        {"audit.query", "/v1/admin/audit", "{\"limit\": \"0\"}", "limit", 0},
    };
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 76, &f);
    int64_t sid = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 5});
    itest_daemon_up(&d, NULL);
    char tok[64];
    itest_make_token(pg, "admin", 0, tok);
    ClConn *c = itest_login(&d, tok);
    long long audits = itest_sql_ll(pg, "SELECT count(*) FROM admin_audit", 0, NULL);
    for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
        const OpCase *oc = &ops[i];
        ClEnvelope *r = adm_json(c, oc->op, "checking", oc->bad);
        const Result *m = res_of(r);
        if (m->code != ERRC(INVALID_ARGUMENT) || !has_error(m, oc->field, oc->record))
            t_fail(__FILE__, __LINE__, "%s over the protocol: code %d, no error for %s", oc->op,
                   m->code, oc->field);
        cl_free(r);
        json_t *j = NULL;
        int st;
        if (admin_op_is_read(oc->op)) {
            char path[256];
            query_path(path, sizeof(path), oc->path, oc->bad);
            st = http("GET", path, tok, NULL, &j);
        } else {
            json_t *o = json_loads(oc->bad, 0, NULL);
            json_object_set_new(o, "reason", json_string("checking"));
            char *body = json_dumps(o, JSON_COMPACT);
            st = http("POST", oc->path, tok, body, &j);
            free(body);
            json_decref(o);
        }
        if (st != 400 || !json_has_field(j, oc->field, oc->record))
            t_fail(__FILE__, __LINE__, "%s over HTTP: status %d, no error for %s", oc->op, st,
                   oc->field);
        json_decref(j);
    }
    /* nothing was written by any of them */
    T_EQ_INT(itest_sql_ll(pg, "SELECT count(*) FROM admin_audit", 0, NULL), audits);

    /* the reads answer over both doors */
    char args[160], path[256];
    snprintf(args, sizeof(args), "{\"town_code\": \"%s\"}", f.town);
    ClEnvelope *r = adm_json(c, "station.list", NULL, args);
    T_EQ_INT(res_of(r)->n_rows, 1);
    cl_free(r);
    snprintf(path, sizeof(path), "/v1/admin/stations/get?id=%lld", (long long)sid);
    json_t *j;
    T_EQ_INT(http("GET", path, tok, NULL, &j), 200);
    T_EQ_STR(json_string_value(
                 json_object_get(json_array_get(json_object_get(j, "rows"), 0), "town_code")),
             f.town);
    json_decref(j);

    /* a station token issued over HTTP, a station import over HTTP (bad file: nothing) */
    snprintf(args, sizeof(args),
             "{\"role\": \"station\", \"station_id\": %lld, \"name\": \"console\", "
             "\"reason\": \"new console\"}",
             (long long)sid);
    T_EQ_INT(http("POST", "/v1/admin/tokens/issue", tok, args, &j), 200);
    const char *secret = json_string_value(json_object_get(j, "secret"));
    T_ASSERT(secret && strlen(secret) == 48);
    ClConn *sc = itest_login(&d, secret);
    cl_close(sc);
    json_decref(j);
    char body[1024], code1[40], code2[40];
    snprintf(code1, sizeof(code1), "ADM-I1-%d", (int)getpid());
    snprintf(code2, sizeof(code2), "ADM-I2-%d", (int)getpid());
    snprintf(body, sizeof(body),
             "{\"reason\": \"import\", \"records\": ["
             "{\"code\": \"%s\", \"name\": \"甲站\", \"kind\": \"canteen\", \"town_code\": \"%s\", "
             "\"village_code\": \"%s\"},"
             "{\"code\": \"%s\", \"name\": \"乙站\", \"kind\": \"canteen\", \"town_code\": \"%s\", "
             "\"village_code\": \"%s\", \"open_days\": 200}]}",
             code1, f.town, f.village, code2, f.town, f.village);
    T_EQ_INT(http("POST", "/v1/admin/stations/import", tok, body, &j), 400);
    T_ASSERT(json_has_field(j, "open_days", 2));
    json_decref(j);
    const char *pc[] = {code1};
    T_EQ_INT(itest_sql_ll(pg, "SELECT count(*) FROM stations WHERE code = $1", 1, pc), 0);
    char *fix = strstr(body, ", \"open_days\": 200");
    memmove(fix, fix + strlen(", \"open_days\": 200"),
            strlen(fix + strlen(", \"open_days\": 200")) + 1);
    T_EQ_INT(http("POST", "/v1/admin/stations/import", tok, body, NULL), 200);
    T_EQ_INT(itest_sql_ll(pg, "SELECT count(*) FROM stations WHERE code = $1", 1, pc), 1);
    cl_close(c);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* ---- bin/carelinectl --------------------------------------------------------------------- */

static int ctl(const char *tok, const char *args, char *out, size_t n)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s/carelinectl --plaintext --port %d --token %s %s 2>&1",
             t_env("CARELINE_BIN"), d.proto_port, tok, args);
    return itest_sh(cmd, out, n);
}

static void admin_ctl_import(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 75, &f);
    itest_daemon_up(&d, NULL);
    char tok[64], p1[16], p2[16], path[512], args[768], out[8192];
    itest_make_token(pg, "admin", 0, tok);
    phone_for(p1, 51);
    phone_for(p2, 52);
    const char *pp[] = {f.village};
    const char *cnt = "SELECT count(*) FROM residents WHERE village_code = $1";

    /* a bad row (line 3) and a good one: exit 2, the line named, nothing written */
    snprintf(path, sizeof(path), "%s/bad.csv", t_tmpdir());
    FILE *fp = fopen(path, "w");
    T_ASSERT(fp);
    fprintf(fp,
            "phone,name,village_code,birth_year,address\n%s,\"甲, 一\",%s,1940,\"1 号\"\n"
            "%s,乙,%s,nineteen,\n",
            p1, f.village, p2, f.village);
    fclose(fp);
    snprintf(args, sizeof(args), "--reason 'bulk' import residents %s", path);
    T_EQ_INT(ctl(tok, args, out, sizeof(out)), 2);
    T_ASSERT(strstr(out, "bad.csv:3 (record 2): birth_year") != NULL);
    T_EQ_INT(itest_sql_ll(pg, cnt, 1, pp), 0);

    /* the good file: a dry run writes nothing, then the import writes both */
    snprintf(path, sizeof(path), "%s/good.csv", t_tmpdir());
    fp = fopen(path, "w");
    T_ASSERT(fp);
    fprintf(fp, "phone,name,village_code,birth_year\n%s,甲,%s,1940\n%s,乙,%s,1950\n", p1, f.village,
            p2, f.village);
    fclose(fp);
    snprintf(args, sizeof(args), "--reason 'bulk' --dry-run import residents %s", path);
    T_EQ_INT(ctl(tok, args, out, sizeof(out)), 0);
    T_EQ_INT(itest_sql_ll(pg, cnt, 1, pp), 0);
    snprintf(args, sizeof(args), "--reason 'bulk' import residents %s", path);
    T_EQ_INT(ctl(tok, args, out, sizeof(out)), 0);
    T_EQ_INT(itest_sql_ll(pg, cnt, 1, pp), 2);

    /* a file too big for one frame is refused before anything is sent */
    snprintf(path, sizeof(path), "%s/big.csv", t_tmpdir());
    fp = fopen(path, "w");
    T_ASSERT(fp);
    fprintf(fp, "phone,name,village_code,birth_year,address\n");
    for (int i = 0; i < 2000; i++)
        fprintf(fp, "1650000%04d,某人,%s,1940,余姚市某某街道某某社区某某号\n", i, f.village);
    fclose(fp);
    snprintf(args, sizeof(args), "--reason 'bulk' import residents %s", path);
    T_EQ_INT(ctl(tok, args, out, sizeof(out)), 2);
    T_ASSERT(strstr(out, "frame limit") != NULL);
    T_EQ_INT(itest_sql_ll(pg, cnt, 1, pp), 2);

    /* find, as CSV and JSON: masked */
    snprintf(args, sizeof(args), "--format csv resident find village_code=%s", f.village);
    T_EQ_INT(ctl(tok, args, out, sizeof(out)), 0);
    T_ASSERT(strncmp(out, "id,phone,name,", 14) == 0);
    T_ASSERT(strstr(out, p1) == NULL && strstr(out, "甲*") != NULL);
    snprintf(args, sizeof(args), "--format json resident find phone=%s", p2);
    T_EQ_INT(ctl(tok, args, out, sizeof(out)), 0);
    json_t *j = json_loads(out, 0, NULL);
    T_EQ_INT(json_array_size(json_object_get(j, "rows")), 1);
    json_decref(j);
    /* a change without a reason is refused */
    T_EQ_INT(ctl(tok, "setting set key=booking_days value=7", out, sizeof(out)), 2);
    T_ASSERT(strstr(out, "reason") != NULL);
    itest_daemon_down(&d);
    PQfinish(pg);
}

static const TCase cases[] = {
    {"admin_roles", admin_roles, 120},
    {"admin_residents", admin_residents, 120},
    {"admin_import", admin_import, 120},
    {"admin_tokens", admin_tokens, 120},
    {"admin_revoke_missed_notify", admin_revoke_missed_notify, 120},
    {"admin_settings", admin_settings, 120},
    {"admin_settings_live", admin_settings_live, 120},
    {"admin_register_then_queued", admin_register_then_queued, 120},
    {"admin_stations", admin_stations, 180},
    {"admin_ctl_import", admin_ctl_import, 120},
    {"admin_every_op", admin_every_op, 180},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
