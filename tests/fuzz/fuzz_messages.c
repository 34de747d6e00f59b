/*
 * fuzz_messages: one Envelope (no frame header) from any role, handed to the daemon code
 * that validates its message: SubmitRequest (intake_validate), StatusQuery and
 * CancelRequest (query.c's handlers), JobUpdate (job_update.c), StationStatus
 * (station_status.c), CoverageQuery (the protocol door, then bureau_req_check_at) and
 * FollowupQuery / FollowupMark (daemon/admin's protocol door). The
 * handlers run as in the daemon; the backends refuse (fuzz_env.h), so an accepted request is
 * answered OVERLOADED or UNAVAILABLE at once. Checked: every request is answered exactly
 * once with its seq (a validation that passes answers nothing yet), every Error is sound
 * (fuzz_check_error), no reference or in-flight count is left behind, and what validation
 * accepted is within the documented bounds.
 *
 * Input: byte 0 chooses the role (bits 0-2: 0 none, 1 gateway, 2 station, 3 bureau,
 * 4 admin), the station id (bits 3-6, plus 1) and the form of the rest (bit 7): the
 * Envelope's bytes, or the message built field by field from the bytes (byte 1 its type,
 * then integers and strings ended by 0xff), which reaches lengths and values a mutated
 * protobuf rarely does. Either way the message goes through the protobuf decoder.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/followup_int.h"
#include "core/dispatch_int.h"
#include "core/station_int.h"
#include "fuzz_env.h"
#include "reports/bureau_int.h"

typedef struct {
    Dispatch d;
    Stations st;
    Bureau b;
    Followups fu;
    Conn *c;
} Msg;

static Msg *msg_env(Fuzz *f)
{
    static Msg *m;
    if (m)
        return m;
    m = xcalloc(1, sizeof(*m));
    m->d.env = &f->env;
    /* a fixed phone-hash key (the daemon reads its own from phone_hash_key_file) */
    memset(m->d.phone_key, 0x5a, CONFIG_KEY_MIN);
    m->d.phone_key_len = CONFIG_KEY_MIN;
    m->d.dir = dir_new(f->env.pg, NULL, NULL); /* never loads: its snapshot stays NULL */
    m->st.env = &f->env;
    m->st.dispatch = &m->d;
    m->st.updates = pgbatch_new(f->env.pg, "SELECT 1", 1, 1, 10);
    m->st.caplim = rds_script_new(f->env.rds, "return 0");
    m->b.env = &f->env;
    m->b.dispatch = &m->d;
    m->fu.env = &f->env;
    m->fu.bureau = &m->b;
    m->c = fuzz_conn(f, CARELINE__V1__ROLE__ROLE_UNSPECIFIED, 0, NULL);
    return m;
}

typedef struct {
    uint64_t seq;
    size_t n;
    int body;
    int code;
} Replies;

static void on_reply(const Envelope *env, void *arg)
{
    Replies *r = arg;
    FUZZ_ASSERT(env->seq == r->seq, "a reply with seq %llu to request %llu",
                (unsigned long long)env->seq, (unsigned long long)r->seq);
    r->n++;
    r->body = (int)env->body_case;
    r->code = env->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR ? (int)env->error->code : 0;
}

#define ERR(x) CARELINE__V1__ERROR_CODE__##x

static void one_error(const Replies *r, const char *what)
{
    FUZZ_ASSERT(r->n == 1, "%s answered %zu times", what, r->n);
    FUZZ_ASSERT(r->body == CARELINE__V1__ENVELOPE__BODY_ERROR, "%s answered with a %d", what,
                r->body);
}

/* ---- SubmitRequest ---------------------------------------------------------------------- */

static void submit(Fuzz *f, Msg *m, Envelope *env)
{
    Sub *s = sub_new(&m->d, m->c, env->seq);
    bool ok = intake_validate(s, env->submit, f->snap);
    Replies r = {env->seq, 0, 0, 0};
    fuzz_replies(m->c, on_reply, &r);
    if (!ok) {
        one_error(&r, "a refused SubmitRequest");
        FUZZ_ASSERT(r.code == ERR(INVALID_ARGUMENT), "a refused SubmitRequest got %d", r.code);
    } else {
        FUZZ_ASSERT(r.n == 0, "an accepted SubmitRequest was answered already");
        size_t k = strlen(s->key);
        FUZZ_ASSERT(k >= 1 && k <= MAX_KEY && util_utf8_valid(s->key, k), "key accepted: %s",
                    s->key);
        size_t p = strlen(s->phone);
        FUZZ_ASSERT((p >= 5 && p <= 15 && strspn(s->phone, "0123456789") == p) ||
                        (p == 0 && s->resident_param > 0),
                    "caller accepted: '%s' / %lld", s->phone, (long long)s->resident_param);
        FUZZ_ASSERT((s->kind == CARELINE__V1__SERVICE_KIND__MEAL_DELIVERY &&
                     (s->slot == CARELINE__V1__MEAL_SLOT__LUNCH ||
                      s->slot == CARELINE__V1__MEAL_SLOT__DINNER)) ||
                        (s->kind == CARELINE__V1__SERVICE_KIND__HOME_CARE && s->subtype >= 1 &&
                         s->subtype <= 5),
                    "kind %d slot %d subtype %d accepted", s->kind, s->slot, s->subtype);
        FUZZ_ASSERT(s->day >= f->today - 1, "a day in the past accepted");
        size_t nl = strlen(s->note);
        FUZZ_ASSERT(nl <= MAX_NOTE && util_utf8_valid(s->note, nl), "note accepted");
        FUZZ_ASSERT(s->urgency == 0 || s->urgency == 1, "urgency %d accepted", s->urgency);
        FUZZ_ASSERT(!s->has_loc || (isfinite(s->loc_lat) && isfinite(s->loc_lon) &&
                                    fabs(s->loc_lat) <= 90 && fabs(s->loc_lon) <= 180),
                    "location %f,%f accepted", s->loc_lat, s->loc_lon);
    }
    sub_free(s);
    frame_free(env);
}

/* ---- CoverageQuery ---------------------------------------------------------------------- */

/* The protocol door itself (bureau_proto_accept), against the fuzz county's directory. */
static void coverage(Fuzz *f, Msg *m, Envelope *env)
{
    Replies rep = {env->seq, 0, 0, 0};
    Req *r = bureau_proto_accept(&m->b, m->c, env, f->snap, f->today); /* takes env */
    if (!r) {
        fuzz_replies(m->c, on_reply, &rep);
        one_error(&rep, "a refused CoverageQuery");
        FUZZ_ASSERT(rep.code == ERR(INVALID_ARGUMENT), "a refused CoverageQuery got %d", rep.code);
        return;
    }
    fuzz_replies(m->c, on_reply, &rep);
    FUZZ_ASSERT(rep.n == 0, "an accepted CoverageQuery was answered already");
    FUZZ_ASSERT(r->scope >= SCOPE(COUNTY) && r->scope <= SCOPE(UNMET), "scope %d accepted",
                (int)r->scope);
    FUZZ_ASSERT(!r->town[0] || (strlen(r->town) == 12 && bureau_town_index(f->snap, r->town) >= 0 &&
                                bureau_in_county(r->town, f->cfg.county_code)),
                "town '%s' accepted", r->town);
    FUZZ_ASSERT(r->from <= r->to && r->to - r->from + 1 <= BUREAU_MAX_RANGE_DAYS,
                "range %d..%d accepted", (int)r->from, (int)r->to);
    FUZZ_ASSERT(r->target == 0 || (r->target > 0 && r->target <= 1), "target %g accepted",
                r->target);
    FUZZ_ASSERT(r->day <= f->today && f->today - r->day < BUREAU_MAX_RANGE_DAYS, "day %d accepted",
                (int)r->day);
    bureau_req_free(r);
}

/* ---- the handlers that run whole -------------------------------------------------------- */

static void handler(Msg *m, SessionHandler h, void *arg, Envelope *env, const char *what)
{
    Replies r = {env->seq, 0, 0, 0};
    h(arg, m->c, env); /* takes env */
    fuzz_replies(m->c, on_reply, &r);
    FUZZ_ASSERT(r.n == 1, "%s answered %zu times", what, r.n);
    FUZZ_ASSERT(r.body == CARELINE__V1__ENVELOPE__BODY_ERROR ||
                    r.body == CARELINE__V1__ENVELOPE__BODY_STATION_STATUS_ACK,
                "%s answered with a %d", what, r.body);
    FUZZ_ASSERT(r.code == 0 || r.code == ERR(INVALID_ARGUMENT) || r.code == ERR(OVERLOADED) ||
                    r.code == ERR(UNAVAILABLE) || r.code == ERR(FORBIDDEN),
                "%s answered error %d", what, r.code);
}

/* ---- the field-by-field form ------------------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t n, at;
    char *strs[32]; /* the strings handed out, freed by the caller (rd_free) */
    size_t nstrs;
} Rd;

static uint8_t rd_u8(Rd *r)
{
    return r->at < r->n ? r->p[r->at++] : 0;
}

static int64_t rd_i64(Rd *r)
{
    uint8_t k = rd_u8(r) % 9; /* 0..8 bytes, little-endian, sign-extended */
    uint64_t v = 0;
    for (uint8_t i = 0; i < k; i++)
        v |= (uint64_t)rd_u8(r) << (8 * i);
    if (k > 0 && k < 8 && (v >> (8 * k - 1)) & 1)
        v |= ~0ull << (8 * k);
    return (int64_t)v;
}

static int32_t rd_i32(Rd *r)
{
    return (int32_t)rd_i64(r);
}

static double rd_f64(Rd *r)
{
    uint8_t k = rd_u8(r);
    if (k < 0xf0)
        return (double)rd_i64(r) / (1 + k % 100); /* mostly ordinary numbers */
    int64_t v = rd_i64(r);
    double d;
    memcpy(&d, &v, sizeof(d)); /* any bit pattern: NaN, infinities, denormals */
    return d;
}

/* The bytes up to the next 0xff (or the end) as a string ("" once the bytes run out). */
static char *rd_str(Rd *r)
{
    if (r->at >= r->n || r->nstrs == ARRAY_LEN(r->strs))
        return (char *)"";
    const uint8_t *end = memchr(r->p + r->at, 0xff, r->n - r->at);
    size_t k = end ? (size_t)(end - (r->p + r->at)) : r->n - r->at;
    char *str = fuzz_strndup(r->p + r->at, k);
    r->at += k + (end ? 1 : 0);
    r->strs[r->nstrs++] = str;
    return str;
}

static void rd_free(Rd *r)
{
    for (size_t i = 0; i < r->nstrs; i++)
        free(r->strs[i]);
}

/* Builds one message from the bytes, packs it and unpacks it (the daemon only ever sees
 * unpacked messages). */
static Envelope *build(const uint8_t *p, size_t n)
{
    Rd r = {p, n, 0, {0}, 0};
    Envelope e = CARELINE__V1__ENVELOPE__INIT;
    e.seq = (uint64_t)rd_i64(&r);
    Careline__V1__SubmitRequest sr = CARELINE__V1__SUBMIT_REQUEST__INIT;
    Careline__V1__Location loc = CARELINE__V1__LOCATION__INIT;
    Careline__V1__StatusQuery sq = CARELINE__V1__STATUS_QUERY__INIT;
    Careline__V1__CancelRequest cr = CARELINE__V1__CANCEL_REQUEST__INIT;
    Careline__V1__JobUpdate ju = CARELINE__V1__JOB_UPDATE__INIT;
    Careline__V1__StationStatus ss = CARELINE__V1__STATION_STATUS__INIT;
    Careline__V1__SlotCapacity caps[20], *capp[20];
    Careline__V1__CoverageQuery cq = CARELINE__V1__COVERAGE_QUERY__INIT;
    Careline__V1__FollowupQuery fq = CARELINE__V1__FOLLOWUP_QUERY__INIT;
    Careline__V1__FollowupMark fm = CARELINE__V1__FOLLOWUP_MARK__INIT;
    switch (rd_u8(&r) % 8) {
    case 0:
        e.body_case = CARELINE__V1__ENVELOPE__BODY_SUBMIT;
        e.submit = &sr;
        sr.idempotency_key = rd_str(&r);
        if (rd_u8(&r) & 1) {
            sr.who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE;
            sr.caller_phone = rd_str(&r);
        } else {
            sr.who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_RESIDENT_ID;
            sr.resident_id = rd_i64(&r);
        }
        sr.kind = rd_i32(&r);
        sr.meal_slot = rd_i32(&r);
        sr.service_date = rd_str(&r);
        sr.care_subtype = rd_i32(&r);
        sr.note = rd_str(&r);
        sr.urgency = rd_i32(&r);
        if (rd_u8(&r) & 1) {
            sr.location = &loc;
            loc.lat = rd_f64(&r);
            loc.lon = rd_f64(&r);
        }
        break;
    case 1:
        e.body_case = CARELINE__V1__ENVELOPE__BODY_STATUS_QUERY;
        e.status_query = &sq;
        sq.ref_case = rd_u8(&r) % 4;
        if (sq.ref_case == CARELINE__V1__STATUS_QUERY__REF_REQUEST_ID)
            sq.request_id = rd_i64(&r);
        else if (sq.ref_case != 0)
            sq.idempotency_key = rd_str(&r); /* a union with caller_phone */
        break;
    case 2:
        e.body_case = CARELINE__V1__ENVELOPE__BODY_CANCEL;
        e.cancel = &cr;
        cr.ref_case = (int[]){0, 1, 2, 4}[rd_u8(&r) % 4];
        if (cr.ref_case == CARELINE__V1__CANCEL_REQUEST__REF_REQUEST_ID)
            cr.request_id = rd_i64(&r);
        else if (cr.ref_case != 0)
            cr.idempotency_key = rd_str(&r);
        cr.reason = rd_str(&r);
        break;
    case 3:
        e.body_case = CARELINE__V1__ENVELOPE__BODY_JOB_UPDATE;
        e.job_update = &ju;
        ju.job_id = rd_i64(&r);
        ju.action = rd_i32(&r);
        ju.reason_code = rd_i32(&r);
        ju.note = rd_str(&r);
        break;
    case 4:
        e.body_case = CARELINE__V1__ENVELOPE__BODY_STATION_STATUS;
        e.station_status = &ss;
        ss.open = rd_u8(&r) & 1;
        ss.capacity_only = rd_u8(&r) & 1;
        ss.caregivers_on_duty = rd_i32(&r);
        ss.n_capacity = rd_u8(&r) % ARRAY_LEN(caps);
        ss.capacity = capp;
        for (size_t i = 0; i < ss.n_capacity; i++) {
            careline__v1__slot_capacity__init(&caps[i]);
            caps[i].slot = rd_i32(&r);
            caps[i].service_date = rd_str(&r);
            caps[i].capacity_left = rd_i32(&r);
            capp[i] = &caps[i];
        }
        break;
    case 5:
        e.body_case = CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_QUERY;
        e.followup_query = &fq;
        fq.village_code = rd_str(&r);
        fq.town_code = rd_str(&r);
        fq.state = rd_i32(&r);
        fq.after_id = rd_i64(&r);
        fq.limit = (uint32_t)rd_i64(&r);
        break;
    case 6:
        e.body_case = CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_MARK;
        e.followup_mark = &fm;
        fm.followup_id = rd_i64(&r);
        fm.state = rd_i32(&r);
        fm.note = rd_str(&r);
        fm.village_code = rd_str(&r);
        break;
    default:
        e.body_case = CARELINE__V1__ENVELOPE__BODY_COVERAGE_QUERY;
        e.coverage_query = &cq;
        cq.scope = rd_i32(&r);
        cq.town_code = rd_str(&r);
        cq.uncovered_only = rd_u8(&r) & 1;
        cq.covered_only = rd_u8(&r) & 1;
        cq.from_date = rd_str(&r);
        cq.to_date = rd_str(&r);
        cq.target = rd_f64(&r);
        cq.day = rd_str(&r);
        break;
    }
    size_t len;
    uint8_t *b = frame_encode(&e, &len);
    rd_free(&r);
    Envelope *env = careline__v1__envelope__unpack(NULL, len - FRAME_HEADER, b + FRAME_HEADER);
    free(b);
    FUZZ_ASSERT(env, "a packed message does not unpack");
    return env;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    Fuzz *f = fuzz_env();
    Msg *m = msg_env(f);
    Envelope *env = (data[0] & 0x80) ? build(data + 1, size - 1)
                                     : careline__v1__envelope__unpack(NULL, size - 1, data + 1);
    if (!env)
        return 0;
    static const Role roles[] = {CARELINE__V1__ROLE__ROLE_UNSPECIFIED,
                                 CARELINE__V1__ROLE__ROLE_GATEWAY, CARELINE__V1__ROLE__ROLE_STATION,
                                 CARELINE__V1__ROLE__ROLE_BUREAU, CARELINE__V1__ROLE__ROLE_ADMIN};
    m->c->role = roles[(data[0] & 7) % ARRAY_LEN(roles)];
    m->c->station_id =
        m->c->role == CARELINE__V1__ROLE__ROLE_STATION ? 1 + ((data[0] >> 3) & 15) : 0;
    switch (env->body_case) {
    case CARELINE__V1__ENVELOPE__BODY_SUBMIT:
        submit(f, m, env);
        break;
    case CARELINE__V1__ENVELOPE__BODY_STATUS_QUERY:
        handler(m, query_status, &m->d, env, "StatusQuery");
        break;
    case CARELINE__V1__ENVELOPE__BODY_CANCEL:
        handler(m, query_cancel, &m->d, env, "CancelRequest");
        break;
    case CARELINE__V1__ENVELOPE__BODY_JOB_UPDATE:
        handler(m, job_update_handle, &m->st, env, "JobUpdate");
        break;
    case CARELINE__V1__ENVELOPE__BODY_STATION_STATUS:
        handler(m, status_handle, &m->st, env, "StationStatus");
        break;
    case CARELINE__V1__ENVELOPE__BODY_COVERAGE_QUERY:
        coverage(f, m, env);
        break;
    case CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_QUERY:
        handler(m, followup_handle_query, &m->fu, env, "FollowupQuery");
        break;
    case CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_MARK:
        handler(m, followup_handle_mark, &m->fu, env, "FollowupMark");
        break;
    default:
        FUZZ_ASSERT(frame_body_name(env) != NULL, "no body name");
        frame_free(env);
        break;
    }
    FUZZ_ASSERT(conn_alive(m->c) && m->c->state == CONN_OPEN, "a request closed the connection");
    FUZZ_ASSERT(m->c->inflight == 0, "%u requests left in flight", m->c->inflight);
    FUZZ_ASSERT(m->c->refs == 2, "%u references left on the connection", m->c->refs);
    return 0;
}
