/*
 * station_stream: the one path a console is served from — its station's Redis stream
 * ({cCOUNTY}:st:STATION:jobs). Each job's offer and each later state change is an entry,
 * added after PostgreSQL committed it; every console on this daemon reads the stream from
 * its own cursor (XRANGE, a page at a time, one read in flight per console), on a wake-up,
 * after our own XADD and every console_refresh_ms (a wake-up lost). A (re)connecting
 * console first gets its backlog, merged per job, then BacklogEnd. Entries are checked
 * before anything reaches a console (see stream_check); the format and the trimming bound
 * are in core/station.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/station_int.h"

#define PAGE          200 /* entries per XRANGE */
#define PAGE_S        "200"
#define ENTRY_MAX     16384 /* bytes of one entry's packed JobOffer */
#define BACKLOG_MAX   20000 /* jobs merged in one backlog */
#define REJECT_LOG_MS 10000 /* rejected entries: one log line at most this often */
#define DAY_MS        86400000LL

static bool job_final(int state)
{
    return state != S(JOB_STATE__OFFERED) && state != S(JOB_STATE__JOB_ACCEPTED) &&
           state != S(JOB_STATE__JOB_EN_ROUTE);
}

static bool phone_allowed(int state)
{
    return state == S(JOB_STATE__JOB_ACCEPTED) || state == S(JOB_STATE__JOB_EN_ROUTE);
}

/* ---- writing: an entry per committed offer or change -------------------------------------- */

/* One entry on its way to the stream; kept and sent again at the next ticks while Redis
 * refuses it (a link down, a write refused), up to RETRY_MAX entries: the job is recorded
 * and its consoles must hear of it. What is still refused when the list is full is left to
 * the rebuild (a lost state) and offer expiry (an offer nobody saw moves on). */
struct PendingAdd {
    Stations *st;
    int64_t station_id, job_id;
    char kind;
    uint8_t *blob; /* the packed JobOffer (owned) */
    size_t len;
    int tries;
    struct PendingAdd *next;
};
#define RETRY_MAX 10000

static void add_free(PendingAdd *pa)
{
    free(pa->blob);
    free(pa);
}

static void add_keep(PendingAdd *pa, const char *why)
{
    Stations *st = pa->st;
    if (st->stopped || st->nretry >= RETRY_MAX) {
        log_limited(LOG_WARN,
                    "station %lld: job %lld's entry not added to its stream (%s; %zu waiting "
                    "already): its consoles hear of it after a rebuild, or the offer moves on",
                    (long long)pa->station_id, (long long)pa->job_id, why, st->nretry);
        add_free(pa);
        return;
    }
    if (pa->tries++ == 0)
        log_limited(LOG_INFO, "station %lld: job %lld's entry not added yet (%s); retried",
                    (long long)pa->station_id, (long long)pa->job_id, why);
    pa->next = NULL;
    if (st->retry_tail)
        st->retry_tail->next = pa;
    else
        st->retry_head = pa;
    st->retry_tail = pa;
    st->nretry++;
}

static void add_done(redisReply *r, const char *err, void *arg)
{
    PendingAdd *pa = arg;
    Stations *st = pa->st;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        add_keep(pa, r ? r->str : err);
        return;
    }
    if (!st->stopped)
        station_wake(st, pa->station_id); /* our consoles now, the others' by PUBLISH */
    add_free(pa);
}

static void add_send(PendingAdd *pa)
{
    Stations *st = pa->st;
    char key[96], minid[24], sid[24], job[24], t[2] = {pa->kind, 0};
    keys_stream(&st->env->keys, pa->station_id, key, sizeof(key));
    /* see station.h: nothing an open job still needs is older than this */
    snprintf(minid, sizeof(minid), "%lld",
             (long long)(util_wall_ms() - (st->env->cfg->booking_days + 2) * DAY_MS));
    snprintf(sid, sizeof(sid), "%lld", (long long)pa->station_id);
    snprintf(job, sizeof(job), "%lld", (long long)pa->job_id);
    const char *argv[] = {"XADD", key,  "MINID", "~",   minid, "*", "t",
                          t,      "st", sid,     "job", job,   "p", (const char *)pa->blob};
    size_t lens[14];
    for (int i = 0; i < 13; i++)
        lens[i] = strlen(argv[i]);
    lens[13] = pa->len;
    if (!rds_command(st->env->rds, add_done, pa, 14, argv, lens))
        add_keep(pa, "Redis unavailable");
}

void stream_retry(Stations *st)
{
    PendingAdd *pa = st->retry_head;
    size_t n = st->nretry;
    st->retry_head = st->retry_tail = NULL;
    st->nretry = 0;
    for (size_t i = 0; i < n && pa; i++) { /* each once: a refusal queues it again */
        PendingAdd *next = pa->next;
        add_send(pa);
        pa = next;
    }
}

void stream_retry_free(Stations *st)
{
    for (PendingAdd *pa = st->retry_head, *next; pa; pa = next) {
        next = pa->next;
        add_free(pa);
    }
    st->retry_head = st->retry_tail = NULL;
    st->nretry = 0;
}

/* XADD the packed offer; kind 'o' (a new job) or 'c' (a state change). */
static void stream_add(Stations *st, int64_t station_id, char kind, const Careline__V1__JobOffer *o)
{
    size_t len = careline__v1__job_offer__get_packed_size(o);
    if (len > ENTRY_MAX) {
        log_warn("station %lld: job %lld's entry is %zu bytes, over %d; not queued",
                 (long long)station_id, (long long)o->job_id, len, ENTRY_MAX);
        return;
    }
    PendingAdd *pa = xcalloc(1, sizeof(*pa));
    pa->st = st;
    pa->station_id = station_id;
    pa->job_id = o->job_id;
    pa->kind = kind;
    pa->len = len;
    pa->blob = xmalloc(len ? len : 1);
    careline__v1__job_offer__pack(o, pa->blob);
    if (st->retry_head) /* after those waiting: a station's entries stay in order */
        add_keep(pa, "earlier entries are waiting");
    else
        add_send(pa);
}

void station_offer(Stations *st, int64_t station_id, const Careline__V1__JobOffer *offer)
{
    if (!st || st->stopped)
        return;
    Careline__V1__JobOffer o = *offer;
    o.resident_phone = (char *)""; /* never before it is accepted */
    o.position = (char *)"";
    o.state_only = false;
    stream_add(st, station_id, 'o', &o);
}

void station_change(Stations *st, int64_t station_id, int64_t job_id, int64_t request_id,
                    int attempt, int state, const char *phone)
{
    if (!st || st->stopped)
        return;
    Careline__V1__JobOffer o = CARELINE__V1__JOB_OFFER__INIT;
    o.job_id = job_id;
    o.request_id = request_id;
    o.attempt = (uint32_t)attempt;
    o.state = (Careline__V1__JobState)state;
    o.state_only = true;
    o.resident_phone = (char *)(phone && phone_allowed(state) ? phone : "");
    stream_add(st, station_id, 'c', &o);
}

/* A cancel (or a retired station's offers) knows the request and attempt; the job id is in
 * the reservation hash. */
typedef struct {
    Stations *st;
    int64_t station_id, request_id;
    int attempt, state;
} CancelOp;

static void cancel_job_done(redisReply *r, const char *err, void *arg)
{
    (void)err;
    CancelOp *op = arg;
    int64_t job = 0;
    if (r && r->type == REDIS_REPLY_STRING)
        job = strtoll(r->str, NULL, 10);
    if (job > 0 && !op->st->stopped)
        station_change(op->st, op->station_id, job, op->request_id, op->attempt, op->state, NULL);
    else if (!op->st->stopped)
        log_limited(LOG_INFO,
                    "request %lld's withdrawn job not found in Redis; its console drops it "
                    "at the next rebuild",
                    (long long)op->request_id);
    free(op);
}

void station_withdrawn(Stations *st, int64_t station_id, int64_t request_id, int attempt, int state)
{
    if (!st || st->stopped)
        return;
    char key[96];
    keys_reservation(&st->env->keys, request_id, attempt, key, sizeof(key));
    const char *argv[] = {"HGET", key, "job"};
    size_t lens[] = {4, strlen(key), 3};
    CancelOp *op = xcalloc(1, sizeof(*op));
    *op = (CancelOp){st, station_id, request_id, attempt, state};
    if (!rds_command(st->env->rds, cancel_job_done, op, 3, argv, lens))
        free(op);
}

/* ---- checking what Redis gave ---------------------------------------------------------------- */

static void stream_reject(Stations *st, int64_t station_id, const char *why)
{
    st->env->metrics->stream_rejected++;
    int64_t now = util_now_ms();
    if (st->stream_rejects_logged_ms && now - st->stream_rejects_logged_ms < REJECT_LOG_MS) {
        st->stream_rejects_quiet++;
        return;
    }
    log_warn("dropped an entry of station %lld's stream: %s; %llu more dropped since the last "
             "such line (all counted in careline_stream_rejected_total)",
             (long long)station_id, why, (unsigned long long)st->stream_rejects_quiet);
    st->stream_rejects_logged_ms = now;
    st->stream_rejects_quiet = 0;
}

/* "MS-SEQ", both decimal: a stream id as Redis makes them. */
static bool id_ok(const char *s, size_t n)
{
    if (n == 0 || n > 41)
        return false;
    size_t dash = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '-' && !dash && i > 0 && i + 1 < n)
            dash = i;
        else if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return dash > 0 && dash <= 20 && n - dash - 1 <= 20;
}

static bool dec_eq(const redisReply *v, int64_t want)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%lld", (long long)want);
    return v->type == REDIS_REPLY_STRING && v->len == (size_t)n && memcmp(v->str, b, n) == 0;
}

static bool str_ok(const char *s)
{
    return s && util_utf8_valid(s, strlen(s));
}

/* One entry [id, [field, value, ...]] of station_id's stream: the JobOffer (owned) to
 * forward, or NULL: a reservation marker (reserve.lua's 't r', passed over quietly) or a
 * bad entry (counted, logged rate-limited). *id gets the entry's id either way when it has
 * a sane one (false: the reply is unusable). */
static Careline__V1__JobOffer *stream_check(Stations *st, int64_t station_id, const redisReply *e,
                                            char *id, size_t idn, bool *id_sane)
{
    *id_sane = false;
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY ||
        !id_ok(e->element[0]->str, e->element[0]->len) || e->element[0]->len >= idn) {
        stream_reject(st, station_id, "not an entry with a stream id");
        return NULL;
    }
    memcpy(id, e->element[0]->str, e->element[0]->len + 1);
    *id_sane = true;
    const redisReply *f = e->element[1];
    const redisReply *t = NULL, *sid = NULL, *job = NULL, *p = NULL;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "t") == 0)
            t = v;
        else if (strcmp(k->str, "st") == 0)
            sid = v;
        else if (strcmp(k->str, "job") == 0)
            job = v;
        else if (strcmp(k->str, "p") == 0)
            p = v;
    }
    if (t && t->len == 1 && t->str[0] == 'r')
        return NULL; /* a reservation, not yet committed: nothing for a console */
    if (!t || t->len != 1 || (t->str[0] != 'o' && t->str[0] != 'c') || f->elements % 2) {
        stream_reject(st, station_id, "no kind (t = o or c)");
        return NULL;
    }
    if (!sid || !dec_eq(sid, station_id)) {
        stream_reject(st, station_id, "names another station (or none)");
        return NULL;
    }
    if (!p || p->len > ENTRY_MAX || !job) {
        stream_reject(st, station_id, "no job, or no packed offer within the size bound");
        return NULL;
    }
    Careline__V1__JobOffer *o =
        careline__v1__job_offer__unpack(NULL, p->len, (const uint8_t *)p->str);
    const char *why = NULL;
    if (!o)
        why = "the packed offer does not parse";
    else if (o->job_id <= 0 || o->request_id <= 0 || o->attempt < 1 || !dec_eq(job, o->job_id))
        why = "bad ids (job, request, attempt)";
    else if (o->state < S(JOB_STATE__OFFERED) || o->state > S(JOB_STATE__JOB_EXPIRED))
        why = "not a job state";
    else if ((t->str[0] == 'o') != !o->state_only || (!o->state_only && job_final(o->state)))
        why = "kind and state disagree (a new job is open, a change says so)";
    else if (o->resident_phone[0] && !phone_allowed(o->state))
        why = "a phone number on a job not accepted";
    else if (!str_ok(o->service_date) || !str_ok(o->resident_name_masked) || !str_ok(o->address) ||
             !str_ok(o->village_name) || !str_ok(o->note) || !str_ok(o->resident_phone) ||
             !str_ok(o->position))
        why = "text that is not UTF-8";
    if (why) {
        stream_reject(st, station_id, why);
        if (o)
            careline__v1__job_offer__free_unpacked(o, NULL);
        return NULL;
    }
    return o;
}

/* ---- delivering ---------------------------------------------------------------------------- */

static void send_offer(StSession *ss, Careline__V1__JobOffer *o, const char *pos)
{
    char *own = o->position; /* the unpacked message's, freed with it */
    o->position = (char *)pos;
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_JOB_OFFER;
    env.job_offer = o;
    conn_send(ss->c, &env);
    o->position = own;
}

static void backlog_clear(StSession *ss)
{
    for (size_t i = 0; i < ss->nbl; i++)
        careline__v1__job_offer__free_unpacked(ss->bl[i], NULL);
    free(ss->bl);
    ss->bl = NULL;
    ss->nbl = ss->capbl = 0;
}

/* Merges an entry into the backlog: one message per job, the latest state. */
static void backlog_add(StSession *ss, Careline__V1__JobOffer *o)
{
    for (size_t i = 0; i < ss->nbl; i++) {
        Careline__V1__JobOffer *b = ss->bl[i];
        if (b->job_id != o->job_id)
            continue;
        if (!b->state_only && job_final(o->state)) { /* offered and ended while away */
            careline__v1__job_offer__free_unpacked(b, NULL);
            ss->bl[i] = ss->bl[--ss->nbl];
            careline__v1__job_offer__free_unpacked(o, NULL);
            return;
        }
        b->state = o->state;
        if (o->resident_phone[0]) { /* swap the strings: each stays owned by its message */
            char *ph = b->resident_phone;
            b->resident_phone = o->resident_phone;
            o->resident_phone = ph;
        }
        careline__v1__job_offer__free_unpacked(o, NULL);
        return;
    }
    /* a change of a job the console may know from before its position: kept as a change;
     * in a full backlog only open jobs count */
    if ((ss->bl_full && o->state_only) || ss->nbl >= BACKLOG_MAX) {
        careline__v1__job_offer__free_unpacked(o, NULL);
        return;
    }
    if (ss->nbl == ss->capbl) {
        ss->capbl = ss->capbl ? 2 * ss->capbl : 16;
        ss->bl = xrealloc(ss->bl, ss->capbl * sizeof(*ss->bl));
    }
    ss->bl[ss->nbl++] = o;
}

static void position_of(const StSession *ss, char *out, size_t n)
{
    snprintf(out, n, "%lld-%s", (long long)ss->cursor_gen, ss->cursor[0] ? ss->cursor : "0-0");
}

/* The backlog is read: its jobs, then the marker; from now on entries go out as they come. */
static void backlog_end(StSession *ss)
{
    char pos[80];
    position_of(ss, pos, sizeof(pos));
    uint32_t sent = 0;
    for (size_t i = 0; i < ss->nbl && conn_alive(ss->c); i++) {
        send_offer(ss, ss->bl[i], pos);
        sent++;
    }
    backlog_clear(ss);
    Careline__V1__BacklogEnd m = CARELINE__V1__BACKLOG_END__INIT;
    m.position = pos;
    m.full = ss->bl_full;
    m.jobs = sent;
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_BACKLOG_END;
    env.backlog_end = &m;
    if (conn_alive(ss->c))
        conn_send(ss->c, &env);
    ss->live = true;
}

/* ---- reading ------------------------------------------------------------------------------- */

static void read_send(Stations *st, StSession *ss);

/* Starts over with the full backlog (a new console, or the stream was rebuilt). */
static void resync(StSession *ss, int64_t gen)
{
    backlog_clear(ss);
    ss->cursor[0] = 0;
    ss->cursor_gen = gen;
    ss->live = false;
    ss->bl_full = true;
    ss->checking = false;
}

static void read_end(Stations *st, StSession *ss, bool more)
{
    ss->reading = false;
    if ((more || ss->again) && !ss->closed && !st->stopped && conn_alive(ss->c)) {
        ss->again = false;
        read_send(st, ss);
    }
    console_unref(ss);
}

static void read_done(redisReply *r, const char *err, void *arg)
{
    StSession *ss = arg;
    Stations *st = ss->st;
    if (ss->closed || st->stopped || !conn_alive(ss->c)) {
        read_end(st, ss, false);
        return;
    }
    if (ss->restart) { /* a StationResume came meanwhile: this page was for the old cursor */
        ss->restart = false;
        read_end(st, ss, true);
        return;
    }
    if (r && r->type == REDIS_REPLY_ERROR) /* e.g. a cursor Redis refuses: start over */
        resync(ss, ss->cursor_gen);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        ss->last_refresh_ms = 0; /* the tick tries again */
        log_limited(LOG_INFO, "station %lld: reading its stream failed: %s (retried)",
                    (long long)ss->station_id,
                    r && r->str ? r->str
                    : err       ? err
                                : "bad reply");
        read_end(st, ss, false);
        return;
    }
    if (dispatch_redis_gen(st->dispatch) != ss->read_gen) { /* rebuilt meanwhile */
        resync(ss, dispatch_redis_gen(st->dispatch));
        read_end(st, ss, ss->cursor_gen != 0);
        return;
    }
    if (ss->checking) { /* XRANGE - + COUNT 1: is the position still held? */
        ss->checking = false;
        const redisReply *e = r->elements ? r->element[0] : NULL;
        bool held = e && e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
                    e->element[0]->type == REDIS_REPLY_STRING &&
                    stream_id_cmp(e->element[0]->str, ss->cursor) <= 0;
        if (!held)
            resync(ss, ss->cursor_gen);
        read_end(st, ss, true);
        return;
    }
    for (size_t i = 0; i < r->elements && conn_alive(ss->c); i++) {
        char id[48];
        bool sane;
        Careline__V1__JobOffer *o =
            stream_check(st, ss->station_id, r->element[i], id, sizeof(id), &sane);
        if (sane)
            snprintf(ss->cursor, sizeof(ss->cursor), "%s", id);
        if (!o)
            continue;
        if (!ss->live) {
            backlog_add(ss, o);
            continue;
        }
        char pos[80];
        position_of(ss, pos, sizeof(pos));
        send_offer(ss, o, pos);
        careline__v1__job_offer__free_unpacked(o, NULL);
    }
    bool more = r->elements == PAGE;
    if (!more && !ss->live)
        backlog_end(ss);
    read_end(st, ss, more);
}

static void read_send(Stations *st, StSession *ss)
{
    int64_t gen = dispatch_redis_gen(st->dispatch);
    if (gen == 0) { /* Redis' state is lost or not verified yet: the next tick tries again */
        ss->last_refresh_ms = 0;
        return;
    }
    if (ss->cursor_gen != gen)
        resync(ss, gen);
    char key[96], from[56];
    keys_stream(&st->env->keys, ss->station_id, key, sizeof(key));
    const char *argv[6] = {"XRANGE", key, "-", "+", "COUNT", "1"};
    if (!ss->checking) {
        if (ss->cursor[0])
            snprintf(from, sizeof(from), "(%s", ss->cursor);
        argv[2] = ss->cursor[0] ? from : "-";
        argv[5] = PAGE_S;
    }
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    ss->read_gen = gen;
    ss->reading = true;
    ss->refs++;
    if (!rds_command(st->env->rds, read_done, ss, 6, argv, lens)) {
        ss->reading = false;
        ss->refs--;
    }
}

void stream_read(Stations *st, StSession *ss)
{
    if (ss->closed || st->stopped || !ss->started)
        return;
    ss->last_refresh_ms = util_now_ms();
    if (ss->reading) {
        ss->again = true;
        return;
    }
    read_send(st, ss);
}

void stream_read_station(Stations *st, int64_t station_id)
{
    for (StSession *ss = console_chain(st, station_id); ss; ss = ss->next)
        if (ss->station_id == station_id)
            stream_read(st, ss);
}

/* ---- where a console starts ----------------------------------------------------------------- */

int stream_id_cmp(const char *a, const char *b)
{
    unsigned long long am = 0, as = 0, bm = 0, bs = 0;
    sscanf(a, "%llu-%llu", &am, &as);
    sscanf(b, "%llu-%llu", &bm, &bs);
    return am != bm ? (am < bm ? -1 : 1) : as != bs ? (as < bs ? -1 : 1) : 0;
}

/* "GEN-MS-SEQ": three decimal numbers of at most 18 digits, nothing else. */
static bool position_parse(const char *s, int64_t part[3])
{
    for (int i = 0; i < 3; i++) {
        int64_t v = 0;
        int n = 0;
        for (; s[n] >= '0' && s[n] <= '9'; n++)
            if (n < 18)
                v = v * 10 + (s[n] - '0');
        if (n == 0 || n > 18 || s[n] != (i < 2 ? '-' : '\0'))
            return false;
        part[i] = v;
        s += n + (i < 2);
    }
    return true;
}

void stream_start(Stations *st, StSession *ss, const char *position)
{
    ss->started = true;
    backlog_clear(ss);
    ss->live = false;
    ss->bl_full = true;
    ss->cursor[0] = 0;
    ss->cursor_gen = dispatch_redis_gen(st->dispatch);
    /* "GEN-MS-SEQ" of this generation: the backlog after it, if the stream still holds it */
    int64_t part[3];
    if (position && position_parse(position, part) && part[0] == ss->cursor_gen && part[0] > 0) {
        ss->bl_full = false;
        ss->checking = part[1] > 0 || part[2] > 0;
        if (ss->checking) /* else "GEN-0-0": the stream was empty; everything is new */
            snprintf(ss->cursor, sizeof(ss->cursor), "%lld-%lld", (long long)part[1],
                     (long long)part[2]);
    }
    if (ss->reading) /* its page is for the old cursor: dropped, then read anew */
        ss->restart = true;
    else
        read_send(st, ss);
}

void stream_resume_handle(void *arg, Conn *c, Envelope *env)
{
    Stations *st = arg;
    StSession *ss = c->station;
    if (ss && !st->stopped) {
        const char *pos = env->station_resume->position;
        stream_start(st, ss, util_utf8_valid(pos, strlen(pos)) ? pos : "");
    }
    frame_free(env);
}

void stream_session_free(StSession *ss)
{
    backlog_clear(ss);
}
