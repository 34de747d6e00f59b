/*
 * Integration tests of the follow-up list (issue 14, unmet demand): NOT_REGISTERED calls
 * through the gateway form one follow-up per number (masked only, counted once per
 * idempotency key, placed in the village nearest the call); the admin and the station of
 * that village list and mark it, other stations and the gateway and bureau roles are
 * refused, over the protocol and HTTP; every bad input is named; registering the resident
 * (an INSERT with the phone's HMAC, as the admin API does) marks it registered, links the
 * calls, and the caller's next call is QUEUED; the bureau's unmet-demand figures are exact
 * on a known data set.
 *
 * Town 330281902000 "随访镇" (far from Yuyao and from ibureau's town): villages A (42.0, 100)
 * and B (42.1, 100), 11 km apart; meal station FU-S1 in A, FU-S2 in B, the town centre FU-C
 * (no village; it answers for both). Town 330281903000
 * holds the report's data set, written in SQL.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/util.h"
#include "fixture.h"
#include "ibureau.h"
#include "ihttp.h"
#include "isession.h"
#include "t.h"

#define BODY(b)  CARELINE__V1__ENVELOPE__BODY_##b
#define ERR(c)   CARELINE__V1__ERROR_CODE__##c
#define FUS(x)   CARELINE__V1__FOLLOWUP_STATE__FOLLOWUP_##x
#define SCOPE(x) CARELINE__V1__COVERAGE_SCOPE__SCOPE_##x
#define TOWN     "330281902000"
#define VA       "330281902001"
#define VB       "330281902002"
#define RTOWN    "330281903000"

static IburRig rig;

static void fu_town(PGconn *pg)
{
    PQclear(itest_sql(pg,
                      "INSERT INTO towns (code, name, kind, lat, lon, area_kind) VALUES "
                      "('" TOWN "', '随访镇', 'town', 42.05, 100.0, 'rural'), "
                      "('" RTOWN "', '报表镇', 'town', 44.0, 100.0, 'rural') "
                      "ON CONFLICT DO NOTHING",
                      0, NULL));
    PQclear(itest_sql(pg,
                      "INSERT INTO villages (code, town_code, name, kind, lat, lon, area_kind, "
                      "elderly_population) VALUES "
                      "('" VA "', '" TOWN "', '甲村', 'village', 42.0, 100.0, 'rural', 10),"
                      "('" VB "', '" TOWN "', '乙村', 'village', 42.1, 100.0, 'rural', 10),"
                      "('330281903001', '" RTOWN "', '丙村', 'village', 44.0, 100.0, 'rural', 1),"
                      "('330281903002', '" RTOWN "', '丁村', 'village', 44.1, 100.0, 'rural', 1)"
                      " ON CONFLICT DO NOTHING",
                      0, NULL));
    PQclear(itest_sql(
        pg,
        "INSERT INTO stations (code, name, town_code, village_code, kind, lat, lon, "
        "offers_meal_delivery, offers_home_care, care_subtypes, meal_capacity_lunch, "
        "meal_capacity_dinner, caregivers, caregivers_certified, has_terminal, active) VALUES "
        "('FU-S1', '甲村站', '" TOWN "', '" VA "', 'village_station', 42.0, 100.0, true, false, "
        "'{}', 50, 50, 2, 1, true, true),"
        "('FU-S2', '乙村站', '" TOWN "', '" VB "', 'village_station', 42.1, 100.0, true, false, "
        "'{}', 50, 50, 2, 1, true, true),"
        "('FU-C', '随访镇中心', '" TOWN "', NULL, 'town_centre', 42.05, 100.0, false, false, "
        "'{}', 0, 0, 3, 1, false, true) ON CONFLICT DO NOTHING",
        0, NULL));
}

/* A phone number of this run: 197 + 8 digits, distinct for each i. */
static void phone_of(char out[16], int i)
{
    static long long base;
    if (!base)
        base = (util_wall_ms() / 1000) % 1000000 * 100;
    snprintf(out, 16, "197%08d", (int)((base + i) % 100000000));
}

/* Submits a lunch for tomorrow from phone at (lat, lon) (no location when lat is 0); returns
 * the SubmitResult's state. */
static int call(ClConn *gc, const char *key, const char *phone, double lat, double lon)
{
    Careline__V1__SubmitRequest m;
    isess_meal(&m, key, phone);
    Careline__V1__Location loc = CARELINE__V1__LOCATION__INIT;
    if (lat != 0) {
        loc.lat = lat;
        loc.lon = lon;
        m.location = &loc;
    }
    ClEnvelope *r = isess_submit(&rig.d, gc, &m, 20000);
    int st = (int)isess_result(r)->state;
    cl_free(r);
    return st;
}

static long fu_id(PGconn *pg, const char *phone)
{
    char hex[65];
    itest_phone_hash(phone, hex);
    const char *p[] = {hex};
    return (long)itest_sql_ll(
        pg, "SELECT coalesce(max(id), 0) FROM followups WHERE phone_hash = decode($1, 'hex')", 1,
        p);
}

static ClEnvelope *list(ClConn *c, const char *village, const char *town, int state)
{
    Careline__V1__FollowupQuery q = CARELINE__V1__FOLLOWUP_QUERY__INIT;
    q.village_code = (char *)village;
    q.town_code = (char *)town;
    q.state = state;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(FOLLOWUP_QUERY);
    e.followup_query = &q;
    return isess_call(&rig.d, c, &e, 20000, "followup query", NULL, NULL);
}

/* The follow-up id in a FollowupList reply, or NULL. */
static const Careline__V1__Followup *in_list(const ClEnvelope *r, long id)
{
    if (r->body_case != BODY(FOLLOWUP_LIST))
        t_fail(__FILE__, __LINE__, "expected a FollowupList, got body %d (%s)", r->body_case,
               r->body_case == BODY(ERROR) ? r->error->message : "");
    for (size_t i = 0; i < r->followup_list->n_followups; i++)
        if (r->followup_list->followups[i]->id == id)
            return r->followup_list->followups[i];
    return NULL;
}

static ClEnvelope *mark(ClConn *c, long id, int state, const char *note, const char *village)
{
    Careline__V1__FollowupMark m = CARELINE__V1__FOLLOWUP_MARK__INIT;
    m.followup_id = id;
    m.state = state;
    m.note = (char *)note;
    m.village_code = (char *)village;
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(FOLLOWUP_MARK);
    e.followup_mark = &m;
    return isess_call(&rig.d, c, &e, 20000, "followup mark", NULL, NULL);
}

/* Fails unless r is a non-fatal Error with code (and field, when not NULL); frees r. */
static void expect_err(ClEnvelope *r, int code, const char *field, int line)
{
    if (r->body_case != BODY(ERROR))
        t_fail(__FILE__, line, "expected Error %d, got body %d", code, r->body_case);
    if ((int)r->error->code != code || r->error->fatal || strlen(r->error->message) < 10)
        t_fail(__FILE__, line, "expected Error %d, got %d (%s)", code, (int)r->error->code,
               r->error->message);
    if (field && strcmp(r->error->field, field) != 0)
        t_fail(__FILE__, line, "expected field %s, got '%s' (%s)", field, r->error->field,
               r->error->message);
    cl_free(r);
}
#define EXPECT_ERR(r, code, field) expect_err((r), (code), (field), __LINE__)

/* POST /v1/admin/followups/mark with body as token; returns the status, body into *out. */
static int http_mark(const char *token, const char *body, char **out)
{
    char auth[128];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    const char *hs[] = {auth, "Content-Type: application/json", NULL};
    IhttpResp r;
    int st = ihttp_request(rig.d.http_port, "POST", "/v1/admin/followups/mark", token ? hs : hs + 1,
                           body, strlen(body), 60000, &r);
    if (st < 0)
        t_fail(__FILE__, __LINE__, "POST mark: no valid response in time");
    *out = r.body;
    return st;
}

static void http_mark_expect(const char *token, const char *body, int status, const char *field,
                             int line)
{
    char *out;
    int st = http_mark(token, body, &out);
    if (st != status)
        t_fail(__FILE__, line, "POST mark %s: status %d, expected %d: %.300s", body, st, status,
               out);
    json_t *j = json_loads(out, 0, NULL);
    json_t *e = j ? json_object_get(j, "error") : NULL;
    if (!e)
        t_fail(__FILE__, line, "POST mark %s: no JSON error: %.300s", body, out);
    const char *f = json_string_value(json_object_get(e, "field"));
    if (field && (!f || strcmp(f, field) != 0))
        t_fail(__FILE__, line, "POST mark %s: field %s, expected %s", body, f ? f : "(none)",
               field);
    json_decref(j);
    free(out);
}
#define HTTP_MARK_EXPECT(tok, body, status, field)                                                 \
    http_mark_expect((tok), (body), (status), (field), __LINE__)

/* Runs cmd with popen; its output into out; returns its exit status. */
static int sh_out(const char *cmd, char *out, size_t n)
{
    FILE *f = popen(cmd, "r");
    T_ASSERT(f);
    size_t k = fread(out, 1, n - 1, f);
    out[k] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void start(PGconn *pg)
{
    fu_town(pg);
    ibur_town(&rig, pg);
    ibur_start(&rig, pg);
}

/* Calls counted once per number and key, masked, placed; the list's filters and scopes;
 * marks by the admin and the village's station, refusals for everyone else; bad input. */
static void list_and_mark(void)
{
    PGconn *pg = itest_pg();
    start(pg);
    ClConn *gc = itest_login(&rig.d, rig.gateway_tok);
    char p1[16], p2[16], p3[16], key[64], nonce[24];
    phone_of(p1, 1);
    phone_of(p2, 2);
    phone_of(p3, 3);
    snprintf(nonce, sizeof(nonce), "%lld", (long long)util_wall_ms());
    const int NR = CARELINE__V1__REQUEST_STATE__NOT_REGISTERED;
    snprintf(key, sizeof(key), "fu-%s-1", nonce);
    T_EQ_INT(call(gc, key, p1, 42.001, 100.0), NR);
    T_EQ_INT(call(gc, key, p1, 42.001, 100.0), NR); /* the same call again: not counted */
    snprintf(key, sizeof(key), "fu-%s-2", nonce);
    T_EQ_INT(call(gc, key, p1, 42.002, 100.0), NR);
    snprintf(key, sizeof(key), "fu-%s-3", nonce);
    T_EQ_INT(call(gc, key, p2, 42.099, 100.0), NR);
    snprintf(key, sizeof(key), "fu-%s-4", nonce);
    T_EQ_INT(call(gc, key, p3, 0, 0), NR); /* no location: village unknown */
    long f1 = fu_id(pg, p1), f2 = fu_id(pg, p2), f3 = fu_id(pg, p3);
    T_ASSERT(f1 > 0 && f2 > 0 && f3 > 0);

    /* the record: one follow-up per number, two calls, masked number only */
    char id1[24], masked[16];
    snprintf(id1, sizeof(id1), "%ld", f1);
    snprintf(masked, sizeof(masked), "%.3s****%s", p1, p1 + 7);
    const char *pid[] = {id1, masked, p1};
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM followups WHERE id = $1::bigint AND calls = 2 "
                          "AND phone_masked = $2 AND village_code = '" VA "' AND town_code = "
                          "'" TOWN "' AND state = 'open' AND first_call_at < last_call_at "
                          "AND position($3 in phone_masked) = 0",
                          3, pid),
             1);
    T_EQ_INT(itest_sql_ll(pg, "SELECT count(*) FROM followup_calls WHERE followup_id = $1::bigint",
                          1, pid),
             2);
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM followup_events WHERE followup_id = $1::bigint "
                          "AND state = 'open' AND actor = 'gateway'",
                          1, pid),
             1);
    char id3[24];
    snprintf(id3, sizeof(id3), "%ld", f3);
    const char *pid3[] = {id3};
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM followups WHERE id = $1::bigint AND "
                          "village_code IS NULL AND town_code IS NULL AND calls = 1",
                          1, pid3),
             1);

    /* the admin's list, its filters */
    ClConn *adm = isess_login_as(&rig.d, pg, "admin", 0);
    ClEnvelope *r = list(adm, "", "", 0);
    const Careline__V1__Followup *x = in_list(r, f1);
    T_ASSERT(x && in_list(r, f2) && in_list(r, f3));
    T_EQ_STR(x->phone_masked, masked);
    T_EQ_INT(x->calls, 2);
    T_EQ_STR(x->village_name, "甲村");
    T_EQ_STR(x->town_name, "随访镇");
    T_ASSERT(x->first_call_ms > 0 && x->first_call_ms < x->last_call_ms);
    T_EQ_INT(x->state, FUS(OPEN));
    T_EQ_INT(x->first_contact_ms, 0);
    cl_free(r);
    r = list(adm, VB, "", 0);
    T_ASSERT(!in_list(r, f1) && in_list(r, f2) && !in_list(r, f3));
    cl_free(r);
    r = list(adm, "", TOWN, FUS(OPEN));
    T_ASSERT(in_list(r, f1) && in_list(r, f2) && !in_list(r, f3));
    cl_free(r);
    r = list(adm, "", TOWN, FUS(CONTACTED));
    T_ASSERT(!in_list(r, f1) && !in_list(r, f2));
    cl_free(r);

    /* stations see their own village only; the unplaced one is the admin's */
    long s1 = ibur_station_id(pg, "FU-S1"), s2 = ibur_station_id(pg, "FU-S2");
    ClConn *st1 = isess_login_as(&rig.d, pg, "station", s1);
    ClConn *st2 = isess_login_as(&rig.d, pg, "station", s2);
    r = list(st1, "", "", 0);
    T_ASSERT(in_list(r, f1) && !in_list(r, f2) && !in_list(r, f3));
    cl_free(r);
    r = list(st2, "", TOWN, 0);
    T_ASSERT(!in_list(r, f1) && in_list(r, f2));
    cl_free(r);
    ClConn *ctr = isess_login_as(&rig.d, pg, "station", ibur_station_id(pg, "FU-C"));
    r = list(ctr, "", "", 0); /* a town centre: its town's villages */
    T_ASSERT(in_list(r, f1) && in_list(r, f2) && !in_list(r, f3));
    cl_free(r);
    cl_close(ctr);

    /* marks: the village's station, the admin; refusals */
    r = mark(st1, f1, FUS(CONTACTED), "电话联系，约周三上门登记", "");
    T_EQ_INT(r->body_case, BODY(FOLLOWUP_MARK_RESULT));
    T_EQ_INT(r->followup_mark_result->followup->state, FUS(CONTACTED));
    T_EQ_STR(r->followup_mark_result->followup->note, "电话联系，约周三上门登记");
    T_ASSERT(r->followup_mark_result->followup->first_contact_ms > 0);
    cl_free(r);
    char actor[40];
    snprintf(actor, sizeof(actor), "station:%ld", s1);
    const char *pa[] = {id1, actor};
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM followup_events WHERE followup_id = $1::bigint "
                          "AND state = 'contacted' AND actor = $2",
                          2, pa),
             1);
    EXPECT_ERR(mark(st1, f2, FUS(CONTACTED), "", ""), ERR(FORBIDDEN), NULL);
    EXPECT_ERR(mark(st1, f3, FUS(CONTACTED), "", ""), ERR(FORBIDDEN), NULL);
    EXPECT_ERR(mark(st1, f1, FUS(CONTACTED), "", VB), ERR(FORBIDDEN), NULL);
    ClConn *bc = itest_login(&rig.d, rig.bureau_tok);
    EXPECT_ERR(mark(gc, f1, FUS(DECLINED), "", ""), ERR(FORBIDDEN), NULL);
    EXPECT_ERR(mark(bc, f1, FUS(DECLINED), "", ""), ERR(FORBIDDEN), NULL);
    EXPECT_ERR(list(bc, "", "", 0), ERR(FORBIDDEN), NULL);
    EXPECT_ERR(list(gc, "", "", 0), ERR(FORBIDDEN), NULL);
    /* the admin places the unplaced caller (learnt on the call); now FU-S2 sees it */
    r = mark(adm, f3, FUS(CONTACTED), "", VB);
    T_EQ_INT(r->body_case, BODY(FOLLOWUP_MARK_RESULT));
    T_EQ_STR(r->followup_mark_result->followup->village_code, VB);
    T_EQ_STR(r->followup_mark_result->followup->town_code, TOWN);
    cl_free(r);
    r = list(st2, "", "", FUS(CONTACTED));
    T_ASSERT(in_list(r, f3));
    cl_free(r);

    /* bad input, every field named */
    char big[600];
    memset(big, 'x', 501);
    big[501] = '\0';
    EXPECT_ERR(mark(adm, 0, FUS(CONTACTED), "", ""), ERR(INVALID_ARGUMENT), "followup_id");
    EXPECT_ERR(mark(adm, f1, FUS(OPEN), "", ""), ERR(INVALID_ARGUMENT), "state");
    EXPECT_ERR(mark(adm, f1, 17, "", ""), ERR(INVALID_ARGUMENT), "state");
    EXPECT_ERR(mark(adm, f1, FUS(CONTACTED), big, ""), ERR(INVALID_ARGUMENT), "note");
    EXPECT_ERR(mark(adm, f1, FUS(CONTACTED), "\xff\xfe", ""), ERR(INVALID_ARGUMENT), "note");
    EXPECT_ERR(mark(adm, f1, FUS(CONTACTED), "", "3302"), ERR(INVALID_ARGUMENT), "village_code");
    EXPECT_ERR(mark(adm, f1, FUS(CONTACTED), "", "330281902099"), ERR(INVALID_ARGUMENT),
               "village_code");
    EXPECT_ERR(mark(adm, 999999999, FUS(CONTACTED), "", ""), ERR(NOT_FOUND), "followup_id");
    EXPECT_ERR(list(adm, "12", "", 0), ERR(INVALID_ARGUMENT), "village_code");
    EXPECT_ERR(list(adm, "", "33028190200x", 0), ERR(INVALID_ARGUMENT), "town_code");
    EXPECT_ERR(list(adm, "", "", 9), ERR(INVALID_ARGUMENT), "state");
    {
        Careline__V1__FollowupQuery q = CARELINE__V1__FOLLOWUP_QUERY__INIT;
        q.limit = 501;
        ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
        e.body_case = BODY(FOLLOWUP_QUERY);
        e.followup_query = &q;
        EXPECT_ERR(isess_call(&rig.d, adm, &e, 20000, "query", NULL, NULL), ERR(INVALID_ARGUMENT),
                   "limit");
        q.limit = 0;
        q.after_id = -1;
        EXPECT_ERR(isess_call(&rig.d, adm, &e, 20000, "query", NULL, NULL), ERR(INVALID_ARGUMENT),
                   "after_id");
    }

    /* HTTP: the same rules */
    char tok_adm[64], tok_s1[64], tok_s2[64], path[200], *body, js[300];
    itest_make_token(pg, "admin", 0, tok_adm);
    itest_make_token(pg, "station", s1, tok_s1);
    itest_make_token(pg, "station", s2, tok_s2);
    json_t *j = ibur_http_json(&rig, "/v1/admin/followups?town=" TOWN "&state=open", tok_s2, 200);
    json_t *a = json_object_get(j, "followups");
    T_ASSERT(json_is_array(a));
    bool saw2 = false;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *o = json_array_get(a, i);
        T_ASSERT(json_integer_value(json_object_get(o, "id")) != f1);
        saw2 = saw2 || json_integer_value(json_object_get(o, "id")) == f2;
    }
    T_ASSERT(saw2);
    json_decref(j);
    T_EQ_INT(ibur_http(&rig, "GET", "/v1/admin/followups?village=" VA "&format=csv", tok_adm, NULL,
                       &body),
             200);
    T_ASSERT(strncmp(body, "id,phone_masked,village_code,", 29) == 0);
    char line[160];
    snprintf(line, sizeof(line), "\n%ld,%s," VA ",甲村," TOWN ",随访镇,", f1, masked);
    T_ASSERT(strstr(body, line));
    T_ASSERT(!strstr(body, p1));
    free(body);
    ibur_http_expect(&rig, "GET", "/v1/admin/followups", rig.bureau_tok, 403, NULL);
    ibur_http_expect(&rig, "GET", "/v1/admin/followups", rig.gateway_tok, 403, NULL);
    ibur_http_expect(&rig, "GET", "/v1/admin/followups", NULL, 401, NULL);
    ibur_http_expect(&rig, "GET", "/v1/admin/followups?limit=0", tok_adm, 400, "limit");
    ibur_http_expect(&rig, "GET", "/v1/admin/followups?bogus=1", tok_adm, 400, "bogus");
    ibur_http_expect(&rig, "GET", "/v1/admin/followups?state=lost", tok_adm, 400, "state");
    ibur_http_expect(&rig, "GET", "/v1/admin/followups?village=3", tok_adm, 400, "village");
    ibur_http_expect(&rig, "GET", "/v1/admin/followups/mark", tok_adm, 405, NULL);
    snprintf(path, sizeof(path), "{\"id\":%ld,\"state\":\"declined\",\"note\":\"不需要\"}", f2);
    HTTP_MARK_EXPECT(tok_s1, path, 403, NULL);
    HTTP_MARK_EXPECT(rig.bureau_tok, path, 403, NULL);
    HTTP_MARK_EXPECT(rig.gateway_tok, path, 403, NULL);
    HTTP_MARK_EXPECT(tok_adm, "not json", 400, "body");
    snprintf(js, sizeof(js), "{\"id\":%ld,\"state\":\"declined\",\"colour\":1}", f2);
    HTTP_MARK_EXPECT(tok_adm, js, 400, "colour");
    snprintf(js, sizeof(js), "{\"id\":%ld,\"state\":\"open\"}", f2);
    HTTP_MARK_EXPECT(tok_adm, js, 400, "state");
    snprintf(js, sizeof(js), "{\"id\":\"%ld\",\"state\":\"declined\"}", f2);
    HTTP_MARK_EXPECT(tok_adm, js, 400, "id");
    snprintf(js, sizeof(js), "{\"id\":%ld,\"state\":\"declined\",\"village\":\"x\"}", f2);
    HTTP_MARK_EXPECT(tok_adm, js, 400, "village");
    HTTP_MARK_EXPECT(tok_adm, "{\"id\":999999999,\"state\":\"declined\"}", 404, "id");
    T_EQ_INT(http_mark(tok_s2, path, &body), 200);
    j = json_loads(body, 0, NULL);
    json_t *fo = json_object_get(j, "followup");
    T_EQ_STR(json_string_value(json_object_get(fo, "state")), "declined");
    T_EQ_STR(json_string_value(json_object_get(fo, "note")), "不需要");
    T_ASSERT(!strstr(body, p2));
    json_decref(j);
    free(body);

    /* bin/bureau: the list (text and CSV) and a mark, with the tokens given */
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof(cmd), "%s/bureau --plaintext --port %d --token %s followups --town " TOWN,
             t_env("CARELINE_BIN"), rig.d.proto_port, tok_s1);
    T_EQ_INT(sh_out(cmd, out, sizeof(out)), 0);
    T_ASSERT(strstr(out, masked) && strstr(out, "甲村") && strstr(out, "contacted"));
    T_ASSERT(!strstr(out, p1) && !strstr(out, "乙村"));
    snprintf(cmd, sizeof(cmd),
             "%s/bureau --plaintext --port %d --token %s --format csv followup-mark %ld "
             "contacted --note 'CLI 第二次联系'",
             t_env("CARELINE_BIN"), rig.d.proto_port, tok_s1, f1);
    T_EQ_INT(sh_out(cmd, out, sizeof(out)), 0);
    T_ASSERT(strstr(out, ",contacted,") && strstr(out, "CLI 第二次联系"));
    snprintf(cmd, sizeof(cmd),
             "%s/bureau --plaintext --port %d --token %s followup-mark %ld declined 2>&1",
             t_env("CARELINE_BIN"), rig.d.proto_port, tok_s1, f2);
    T_EQ_INT(sh_out(cmd, out, sizeof(out)), 1);
    T_ASSERT(strstr(out, "FORBIDDEN"));

    /* the session and the daemon went on */
    r = list(adm, "", TOWN, FUS(DECLINED));
    T_ASSERT(in_list(r, f2));
    cl_free(r);
    cl_close(st1);
    cl_close(st2);
    cl_close(adm);
    cl_close(bc);
    cl_close(gc);
    ibur_finish(&rig);
    PQfinish(pg);
}

/* Registering the caller (the resident's INSERT carrying the phone's HMAC) marks the
 * follow-up registered, links its calls to the resident, and the next call is QUEUED. */
static void registration_links(void)
{
    PGconn *pg = itest_pg();
    start(pg);
    ClConn *gc = itest_login(&rig.d, rig.gateway_tok);
    char p[16], key[64], nonce[24], hex[65];
    phone_of(p, 4);
    snprintf(nonce, sizeof(nonce), "%lld", (long long)util_wall_ms());
    const int NR = CARELINE__V1__REQUEST_STATE__NOT_REGISTERED;
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof(key), "fr-%s-%d", nonce, i);
        T_EQ_INT(call(gc, key, p, 42.001, 100.0), NR);
    }
    long f = fu_id(pg, p);
    T_ASSERT(f > 0);
    /* a resident registered without the key (psql) links nothing yet */
    itest_phone_hash(p, hex);
    const char *pr[] = {p, hex};
    long rid = (long)itest_sql_ll(pg,
                                  "INSERT INTO residents (phone, name, village_code, lat, lon, "
                                  "birth_year) VALUES ($1, '随访一', '" VA "', 42.0005, 100.0, "
                                  "1940) RETURNING id",
                                  1, pr);
    char fid[24], rids[24];
    snprintf(fid, sizeof(fid), "%ld", f);
    snprintf(rids, sizeof(rids), "%ld", rid);
    const char *pf[] = {fid, rids};
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM followups WHERE id = $1::bigint AND "
                          "state = 'open' AND resident_id IS NULL",
                          1, pf),
             1);
    /* the admin API's registration sets the phone's HMAC: the follow-up is linked */
    PQclear(itest_sql(pg, "UPDATE residents SET phone_hash = decode($2, 'hex') WHERE phone = $1", 2,
                      pr));
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM followups WHERE id = $1::bigint AND state = "
                          "'registered' AND resident_id = $2::bigint AND first_contact_at IS "
                          "NOT NULL",
                          2, pf),
             1);
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM followup_events WHERE followup_id = $1::bigint "
                          "AND state = 'registered' AND actor = 'registration' AND resident_id "
                          "= $2::bigint",
                          2, pf),
             1);
    /* the earlier calls are the resident's, through the follow-up; not rewritten */
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM followup_calls c JOIN followups f ON f.id = "
                          "c.followup_id JOIN requests q ON q.id = c.request_id WHERE "
                          "f.resident_id = $2::bigint AND q.state = 'not_registered' AND "
                          "q.resident_id IS NULL AND f.id = $1::bigint",
                          2, pf),
             2);
    /* the next call is served */
    snprintf(key, sizeof(key), "fr-%s-next", nonce);
    T_EQ_INT(call(gc, key, p, 0, 0), CARELINE__V1__REQUEST_STATE__QUEUED);
    T_EQ_INT(itest_sql_ll(pg, "SELECT calls FROM followups WHERE id = $1::bigint", 1, pf), 2);
    /* registered is final */
    ClConn *adm = isess_login_as(&rig.d, pg, "admin", 0);
    EXPECT_ERR(mark(adm, f, FUS(DECLINED), "", ""), ERR(INVALID_TRANSITION), "state");
    /* a second resident inserted with the hash of a fresh caller links at INSERT */
    char q[16];
    phone_of(q, 5);
    snprintf(key, sizeof(key), "fr-%s-q", nonce);
    T_EQ_INT(call(gc, key, q, 42.099, 100.0), NR);
    itest_phone_hash(q, hex);
    const char *pq[] = {q, hex};
    PQclear(itest_sql(pg,
                      "INSERT INTO residents (phone, name, village_code, lat, lon, birth_year, "
                      "phone_hash) VALUES ($1, '随访二', '" VB "', 42.1, 100.0, 1941, "
                      "decode($2, 'hex'))",
                      2, pq));
    snprintf(fid, sizeof(fid), "%ld", fu_id(pg, q));
    const char *pf2[] = {fid};
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM followups WHERE id = $1::bigint AND "
                          "state = 'registered' AND resident_id IS NOT NULL",
                          1, pf2),
             1);
    cl_close(adm);
    cl_close(gc);
    ibur_finish(&rig);
    PQfinish(pg);
}

/* One record statement holding two calls of one number (a batch: ON CONFLICT cannot touch
 * one row twice, so they are grouped first) and one repeated key: one follow-up, 2 calls. */
static void batch_counts_once(void)
{
    PGconn *pg = itest_pg();
    fu_town(pg);
    char p[16], hex[65], nonce[24];
    phone_of(p, 6);
    itest_phone_hash(p, hex);
    snprintf(nonce, sizeof(nonce), "%lld", (long long)util_wall_ms());
    const char *par[] = {p, hex, nonce, fix_tomorrow()};
    const char *sql =
        "SELECT count(*) FROM careline_submit_record_set((SELECT jsonb_agg(jsonb_build_object("
        "'request', nextval('requests_id_seq'), 'key', 'fb-' || $3::text || '-' || k, 'hash', "
        "encode(sha256(convert_to(k::text, 'UTF8')), 'hex'), 'phone', $1::text, 'phone_hash', "
        "$2::text, "
        "'kind', 'meal_delivery', 'slot', 'lunch', 'date', $4::text, 'note', '', 'urgency', "
        "'normal', "
        "'actor', 'gateway', 'state', 'not_registered', 'reason_code', NULL, 'reason', 'x', "
        "'attempt', 0, 'ws', 0, 'we', 0, 'expires', 0, 'priority', '', 'county', '330281', "
        "'lat', 42.0, 'lon', 100.0)) FROM generate_series(1, 2) k))";
    T_EQ_INT(itest_sql_ll(pg, sql, 4, par), 2);
    T_EQ_INT(itest_sql_ll(pg, sql, 4, par), 2); /* the same keys again: nothing new */
    const char *ph[] = {hex};
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT calls FROM followups WHERE phone_hash = decode($1, 'hex') AND "
                          "village_code = '" VA "'",
                          1, ph),
             2);
    T_EQ_INT(itest_sql_ll(pg,
                          "SELECT count(*) FROM followup_calls c JOIN followups f ON f.id = "
                          "c.followup_id WHERE f.phone_hash = decode($1, 'hex')",
                          1, ph),
             2);
    PQfinish(pg);
}

/* A follow-up of town RTOWN written in SQL: first call hours_ago, contact after
 * contact_after hours (< 0: none), state, calls, village. */
static void put(PGconn *pg, int n, const char *village, const char *state, int calls, int hours_ago,
                int contact_after)
{
    char sn[16], sc[16], sh[16], sa[16];
    snprintf(sn, sizeof(sn), "%d", n);
    snprintf(sc, sizeof(sc), "%d", calls);
    snprintf(sh, sizeof(sh), "%d", hours_ago);
    snprintf(sa, sizeof(sa), "%d", contact_after);
    const char *p[] = {sn, village, state, sc, sh, sa};
    PQclear(itest_sql(
        pg,
        "INSERT INTO followups (county_code, phone_hash, phone_masked, village_code, town_code, "
        "first_call_at, last_call_at, calls, state, first_contact_at) VALUES ('330281', "
        "sha256(convert_to('report-' || $1, 'UTF8')), '196****000' || $1, $2, '" RTOWN "', "
        "now() - make_interval(hours => $5::int), now() - make_interval(hours => $5::int), "
        "$4::int, $3, CASE WHEN $6::int >= 0 THEN now() - make_interval(hours => $5::int) + "
        "make_interval(hours => $6::int) END)",
        6, p));
}

/* The bureau's unmet demand on a known data set: counts per state, calls, residents
 * registered from follow-ups, and the median time to follow up, over both doors. */
static void unmet_report(void)
{
    PGconn *pg = itest_pg();
    fu_town(pg);
    if (itest_sql_ll(pg, "SELECT count(*) FROM followups WHERE town_code = '" RTOWN "'", 0, NULL) ==
        0) {
        put(pg, 1, "330281903001", "open", 3, 30, 2); /* registered below */
        put(pg, 2, "330281903001", "declined", 1, 30, 6);
        put(pg, 3, "330281903002", "contacted", 2, 30, 10);
        put(pg, 4, "330281903002", "open", 1, 30, -1);
        put(pg, 5, "330281903002", "open", 4, 24 * 40, -1); /* before the period */
        /* registering no. 1 links it (the trigger keeps its first contact) */
        PQclear(itest_sql(pg,
                          "INSERT INTO residents (phone, name, village_code, lat, lon, "
                          "birth_year, phone_hash) VALUES ('19600000001', '报表一', "
                          "'330281903001', 44.0, 100.0, 1939, sha256(convert_to('report-1', "
                          "'UTF8')))",
                          0, NULL));
    }
    ibur_start(&rig, pg);
    ClConn *bc = itest_login(&rig.d, rig.bureau_tok);
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.scope = SCOPE(UNMET);
    q.town_code = (char *)RTOWN;
    ClEnvelope *r = ibur_report(&rig, bc, &q);
    const Careline__V1__CoverageReport *rep = r->coverage_report;
    const Careline__V1__UnmetRow *t = NULL;
    for (size_t i = 0; i < rep->n_unmet; i++)
        if (strcmp(rep->unmet[i]->scope, "town") == 0 && strcmp(rep->unmet[i]->key, RTOWN) == 0)
            t = rep->unmet[i];
    T_ASSERT(t);
    T_EQ_STR(t->name, "报表镇");
    T_EQ_INT(t->followups, 4);
    T_EQ_INT(t->open, 1);
    T_EQ_INT(t->contacted, 1);
    T_EQ_INT(t->registered, 1);
    T_EQ_INT(t->declined, 1);
    T_EQ_INT(t->calls, 7);
    T_EQ_INT(t->registered_residents, 1);
    T_NEAR(t->median_hours_to_contact, 6.0, 1e-6); /* of 2, 6 and 10 hours */
    cl_free(r);
    /* HTTP, CSV; the default period is the last 30 days */
    char *body;
    T_EQ_INT(
        ibur_http(&rig, "GET", "/v1/unmet?town=" RTOWN "&format=csv", rig.bureau_tok, NULL, &body),
        200);
    T_ASSERT(strncmp(body, "scope,key,name,followups,open,contacted,registered,declined,calls,",
                     66) == 0);
    T_ASSERT(strstr(body, "\ntown," RTOWN ",报表镇,4,1,1,1,1,7,1,6.00\n"));
    free(body);
    json_t *j = ibur_http_json(&rig, "/v1/unmet?town=" RTOWN, rig.bureau_tok, 200);
    T_ASSERT(json_array_size(json_object_get(j, "unmet")) == 2);
    json_decref(j);
    ibur_http_expect(&rig, "GET", "/v1/unmet", rig.gateway_tok, 403, NULL);
    ibur_http_expect(&rig, "GET", "/v1/unmet?town=33028190300", rig.bureau_tok, 400, "town");
    ibur_http_expect(&rig, "GET", "/v1/unmet?from=2026-13-01", rig.bureau_tok, 400, "from");
    /* bin/bureau prints the same */
    char cmd[1024], out[8192];
    for (int csv = 0; csv < 2; csv++) {
        snprintf(
            cmd, sizeof(cmd), "%s/bureau --plaintext --port %d --token %s%s unmet --town " RTOWN,
            t_env("CARELINE_BIN"), rig.d.proto_port, rig.bureau_tok, csv ? " --format csv" : "");
        FILE *f = popen(cmd, "r");
        T_ASSERT(f);
        size_t n = fread(out, 1, sizeof(out) - 1, f);
        out[n] = '\0';
        T_EQ_INT(pclose(f), 0);
        if (csv)
            T_ASSERT(strstr(out, "\ntown," RTOWN ",报表镇,4,1,1,1,1,7,1,6.00\n"));
        else
            T_ASSERT(strstr(out, "报表镇") && strstr(out, "6.0\n") &&
                     strstr(out, "未登记来电跟进"));
    }
    /* the bureau role sees no list */
    ibur_http_expect(&rig, "GET", "/v1/admin/followups?town=" RTOWN, rig.bureau_tok, 403, NULL);
    cl_close(bc);
    ibur_finish(&rig);
    PQfinish(pg);
}

static const TCase cases[] = {
    {"followup_list_and_mark", list_and_mark, 180},
    {"followup_registration_links", registration_links, 120},
    {"followup_batch_counts_once", batch_counts_once, 60},
    {"followup_unmet_report", unmet_report, 120},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
