/*
 * lg_conn: loadgen's connections: connect and Hello (at most CONNECTING_MAX at once),
 * pipelined SubmitRequests with a window per gateway connection (slot numbers in the seq),
 * replies matched to their intended send time, and consoles timing each QUEUED reply to
 * its JobOffer push, then accepting and delivering the job.
 */
#include "lg_state.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t lg_rnd(Lg *lg)
{
    lg->rng ^= lg->rng << 13;
    lg->rng ^= lg->rng >> 7;
    lg->rng ^= lg->rng << 17;
    return lg->rng;
}

uint64_t lg_gw_inflight(const Lg *lg)
{
    uint64_t n = 0;
    for (int i = 0; i < lg->ngw; i++)
        n += lg->conn[i].inflight;
    return n;
}

/* ---- requests --------------------------------------------------------------------------*/

static bool conn_writable(const LgConn *c)
{
    return c->ready && !c->dead && c->bev &&
           evbuffer_get_length(bufferevent_get_output(c->bev)) < OBUF_LIMIT;
}

static void send_env(LgConn *c, Envelope *env)
{
    frame_append(bufferevent_get_output(c->bev), env);
}

static void send_submit(Lg *lg, LgConn *c, uint64_t intended)
{
    uint16_t slot = c->free_slots[--c->nfree];
    uint32_t gen = c->slot_gen[slot] + 1;
    if (gen == 0)
        gen = 1;
    c->slot_gen[slot] = gen;
    c->slot_t0[slot] = intended;
    c->inflight++;

    uint64_t n = lg->issued++;
    char key[96];
    snprintf(key, sizeof(key), "lg-%s-%llu", lg->o.run_id, (unsigned long long)n);
    Careline__V1__SubmitRequest m = CARELINE__V1__SUBMIT_REQUEST__INIT;
    m.idempotency_key = key;
    m.who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE;
    m.caller_phone = lg->phones[lg_rnd(lg) % lg->nphones];
    if (lg->o.care_pct > 0 && (int)(lg_rnd(lg) % 100) < lg->o.care_pct) {
        m.kind = S(SERVICE_KIND__HOME_CARE);
        m.care_subtype = (Careline__V1__CareSubtype)(1 + lg_rnd(lg) % 4);
    } else {
        m.kind = S(SERVICE_KIND__MEAL_DELIVERY);
        bool dinner =
            strcmp(lg->o.slot, "dinner") == 0 || (strcmp(lg->o.slot, "both") == 0 && (n & 1));
        m.meal_slot = dinner ? S(MEAL_SLOT__DINNER) : S(MEAL_SLOT__LUNCH);
        m.service_date = lg->date;
    }
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = ((uint64_t)gen << 16) | slot;
    env.body_case = BODY(SUBMIT);
    env.submit = &m;
    send_env(c, &env);
}

static bool may_issue(const Lg *lg, uint64_t now)
{
    return lg->phase == PH_RUN && now < lg->t_end &&
           (lg->o.max_requests == 0 || lg->issued < lg->o.max_requests);
}

/* Open loop: issue every request whose intended time has come, on connections with room. */
void lg_pump_open(Lg *lg, uint64_t now)
{
    if (!may_issue(lg, now))
        return;
    uint64_t due = (uint64_t)((double)(now - lg->t_start) * lg->o.rate / 1e9) + 1;
    if (lg->o.max_requests && due > lg->o.max_requests)
        due = lg->o.max_requests;
    while (lg->issued < due) {
        LgConn *c = NULL;
        for (int k = 0; k < lg->ngw; k++) {
            LgConn *x = &lg->conn[(lg->rr + k) % lg->ngw];
            if (x->nfree > 0 && conn_writable(x)) {
                c = x;
                lg->rr = (lg->rr + k + 1) % lg->ngw;
                break;
            }
        }
        if (!c)
            break;
        uint64_t intended = lg->t_start + (uint64_t)((double)lg->issued * 1e9 / lg->o.rate);
        send_submit(lg, c, intended);
    }
    if (due > lg->issued && due - lg->issued > lg->max_lag)
        lg->max_lag = due - lg->issued;
}

static void pump_closed(Lg *lg, LgConn *c, uint64_t now)
{
    while (c->nfree > 0 && conn_writable(c) && may_issue(lg, now))
        send_submit(lg, c, now);
}

void lg_pump(Lg *lg, LgConn *c, uint64_t now)
{
    if (lg->o.closed)
        pump_closed(lg, c, now);
    else
        lg_pump_open(lg, now);
}

/* ---- QUEUED -> JobOffer matching -------------------------------------------------------*/

int lg_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static bool held_station(const Lg *lg, int64_t id)
{
    return lg->nstations && bsearch(&id, lg->stations, lg->nstations, sizeof(int64_t), lg_cmp_i64);
}

static bool measuring(const Lg *lg, uint64_t t)
{
    return t >= lg->t_warm && lg->phase != PH_CONNECT;
}

static void mark_queued(Lg *lg, int64_t job_id, uint64_t now)
{
    JobMark *m = &lg->ring[(uint64_t)job_id & (JOB_RING - 1)];
    if (m->what == 2 && m->job_id == job_id) { /* the push overtook the reply */
        lg->offers_first++;
        if (measuring(lg, now))
            lg_hist_record(lg->h_push, 0);
        lg->offers_matched++;
        m->what = 0;
        return;
    }
    if (m->what == 1)
        lg->pending_marks--; /* overwritten: never matched */
    *m = (JobMark){job_id, now, 1};
    lg->queued_tracked++;
    lg->pending_marks++;
}

static void mark_offer(Lg *lg, int64_t job_id, uint64_t now)
{
    JobMark *m = &lg->ring[(uint64_t)job_id & (JOB_RING - 1)];
    if (m->what == 1 && m->job_id == job_id) {
        if (measuring(lg, m->t))
            lg_hist_record(lg->h_push, now - m->t);
        lg->offers_matched++;
        lg->pending_marks--;
        m->what = 0;
        return;
    }
    if (lg->phase == PH_RUN || lg->phase == PH_DRAIN) {
        if (m->what == 1)
            lg->pending_marks--;
        *m = (JobMark){job_id, now, 2};
    }
}

/* ---- replies ---------------------------------------------------------------------------*/

static void conn_close(LgConn *c, const char *why);

static void on_reply(Lg *lg, LgConn *c, Envelope *env, uint64_t now)
{
    uint32_t slot = (uint32_t)(env->seq & 0xFFFF);
    uint32_t gen = (uint32_t)(env->seq >> 16);
    if (slot >= (uint32_t)lg->o.window || c->slot_gen[slot] != gen || gen == 0) {
        lg->other_replies++;
        return;
    }
    uint64_t t0 = c->slot_t0[slot];
    c->slot_gen[slot] = gen; /* stays; the next use increments it */
    c->free_slots[c->nfree++] = (uint16_t)slot;
    c->inflight--;
    lg->replies++;
    bool in_window = now >= lg->t_warm && now <= lg->t_end;
    if (in_window)
        lg->replies_measured++;
    if (env->body_case == BODY(SUBMIT_RESULT)) {
        Careline__V1__SubmitResult *r = env->submit_result;
        unsigned st = (unsigned)r->state;
        lg->states[st < 16 ? st : 0]++;
        if (t0 >= lg->t_warm)
            lg_hist_record(lg->h_submit, now > t0 ? now - t0 : 0);
        if (r->state == S(REQUEST_STATE__QUEUED) && r->job_id && lg->nstations &&
            held_station(lg, r->station_id))
            mark_queued(lg, r->job_id, now);
    } else if (env->body_case == BODY(ERROR)) {
        unsigned code = (unsigned)env->error->code;
        lg->errors[code < 40 ? code : 0]++;
    } else {
        lg->other_replies++;
    }
}

static void send_update(Lg *lg, LgConn *c, int64_t job_id, Careline__V1__JobAction action)
{
    Careline__V1__JobUpdate u = CARELINE__V1__JOB_UPDATE__INIT;
    u.job_id = job_id;
    u.action = action;
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = UPDATE_SEQ | (uint64_t)lg->upd_sent++;
    env.body_case = BODY(JOB_UPDATE);
    env.job_update = &u;
    send_env(c, &env);
}

static void on_console_frame(Lg *lg, LgConn *c, Envelope *env, uint64_t now)
{
    lg->t_last_console = now;
    if (env->body_case == BODY(JOB_OFFER)) {
        Careline__V1__JobOffer *o = env->job_offer;
        if (o->state == S(JOB_STATE__OFFERED)) {
            lg->offers++;
            mark_offer(lg, o->job_id, now);
            if (lg->o.accept && lg->phase != PH_DONE)
                send_update(lg, c, o->job_id, S(JOB_ACTION__ACCEPT));
        } else if (o->state == S(JOB_STATE__JOB_ACCEPTED)) {
            lg->accepted++;
            if (lg->o.accept && lg->phase != PH_DONE)
                send_update(lg, c, o->job_id,
                            o->kind == S(SERVICE_KIND__HOME_CARE) ? S(JOB_ACTION__COMPLETE)
                                                                  : S(JOB_ACTION__DELIVER));
        } else {
            if (o->state == S(JOB_STATE__JOB_DELIVERED) || o->state == S(JOB_STATE__JOB_DONE))
                lg->delivered++;
            lg->offers_other++;
        }
    } else if (env->body_case == BODY(JOB_UPDATE_RESULT)) {
        lg->upd_ok++;
    } else if (env->body_case == BODY(ERROR) && (env->seq & UPDATE_SEQ)) {
        lg->upd_err++;
    }
}

static void on_hello_reply(Lg *lg, LgConn *c, Envelope *env)
{
    lg->connecting--;
    if (env->body_case != BODY(HELLO_OK)) {
        lg->auth_failed++;
        if (lg->auth_failed <= 3)
            fprintf(stderr, "loadgen: %s %d: Hello refused: %s\n",
                    c->kind == LC_GATEWAY ? "gateway" : "console", c->idx,
                    env->body_case == BODY(ERROR) ? env->error->message : frame_body_name(env));
        conn_close(c, NULL);
        lg_start_connections(lg);
        return;
    }
    c->ready = true;
    if (c->kind == LC_GATEWAY) {
        lg->gw_ready++;
    } else {
        lg->con_ready++;
        c->station_id = env->hello_ok->station_id;
        /* the full backlog at once (a console that sends none waits a second for it) */
        Careline__V1__StationResume r = CARELINE__V1__STATION_RESUME__INIT;
        Envelope renv = CARELINE__V1__ENVELOPE__INIT;
        renv.body_case = BODY(STATION_RESUME);
        renv.station_resume = &r;
        if (!lg->o.no_resume)
            send_env(c, &renv);
    }
    lg_start_connections(lg);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    LgConn *c = arg;
    Lg *lg = c->lg;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint64_t now = lg_now_ns();
    for (;;) {
        Envelope *env = NULL;
        size_t need = 0;
        uint32_t len = 0;
        FrameStatus st = frame_next(in, MAX_FRAME, &env, &need, &len);
        if (st == FRAME_NEED_MORE)
            break;
        if (st != FRAME_OK) {
            lg->bad_frames++;
            conn_close(c, "bad frame from server");
            return;
        }
        if (env->body_case == BODY(PING)) {
            Careline__V1__Pong p = CARELINE__V1__PONG__INIT;
            p.nonce = env->ping->nonce;
            Envelope r = CARELINE__V1__ENVELOPE__INIT;
            r.body_case = BODY(PONG);
            r.pong = &p;
            send_env(c, &r);
        } else if (env->seq == HELLO_SEQ && !c->ready) {
            on_hello_reply(lg, c, env);
        } else if (env->body_case == BODY(ERROR) && env->error->fatal) {
            if (lg->phase != PH_DONE)
                fprintf(stderr, "loadgen: %s %d closed by server: %s\n",
                        c->kind == LC_GATEWAY ? "gateway" : "console", c->idx, env->error->message);
            frame_free(env);
            conn_close(c, NULL);
            return;
        } else if (c->kind == LC_GATEWAY && env->seq != 0) {
            on_reply(lg, c, env, now);
        } else if (c->kind == LC_CONSOLE) {
            on_console_frame(lg, c, env, now);
        }
        frame_free(env);
        if (c->dead)
            return;
    }
    if (c->kind == LC_GATEWAY && c->ready)
        lg_pump(lg, c, now);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    LgConn *c = arg;
    /* output drained below the low watermark (0): a connection skipped for a full buffer
     * may take requests again */
    if (c->kind == LC_GATEWAY && c->ready)
        lg_pump(c->lg, c, lg_now_ns());
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    LgConn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        char why[300];
        SSL *ssl = c->lg->tls ? bufferevent_openssl_get_ssl(bev) : NULL;
        if (ssl && !SSL_is_init_finished(ssl))
            tlsc_explain(c->lg->tls, ssl, c->lg->o.host, why, sizeof(why));
        else
            snprintf(why, sizeof(why), "%s",
                     (what & BEV_EVENT_EOF) ? "closed by server" : strerror(EVUTIL_SOCKET_ERROR()));
        if (!c->ready)
            c->lg->connecting--;
        conn_close(c, why);
        lg_start_connections(c->lg);
    }
}

static void conn_close(LgConn *c, const char *why)
{
    if (c->dead)
        return;
    Lg *lg = c->lg;
    c->dead = true;
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->kind == LC_GATEWAY) {
        lg->gw_dead++;
        lg->lost += c->inflight;
        c->inflight = 0;
        c->nfree = 0;
    } else {
        lg->con_dead++;
    }
    if (why && lg->phase != PH_DONE && (lg->gw_dead + lg->con_dead) <= 5)
        fprintf(stderr, "loadgen: %s %d: %s\n", c->kind == LC_GATEWAY ? "gateway" : "console",
                c->idx, why);
}

static bool conn_open(Lg *lg, LgConn *c)
{
    if (lg->tls) {
        char err[200];
        SSL *ssl = tlsc_ssl(lg->tls, lg->o.host, err, sizeof(err));
        /* the Hello below waits in the output buffer until the handshake is done */
        c->bev = ssl ? bufferevent_openssl_socket_new(lg->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                      BEV_OPT_CLOSE_ON_FREE)
                     : NULL;
        if (c->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(lg->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!c->bev)
        return false;
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    struct sockaddr_in *to = c->kind == LC_GATEWAY ? &lg->addr : &lg->console_addr;
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)to, sizeof(*to)) != 0) {
        bufferevent_free(c->bev);
        c->bev = NULL;
        return false;
    }
    Careline__V1__Hello h = CARELINE__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.token = (char *)c->token;
    h.client_name = (char *)(c->kind == LC_GATEWAY ? "loadgen" : "loadgen-console");
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = HELLO_SEQ;
    env.body_case = BODY(HELLO);
    env.hello = &h;
    send_env(c, &env);
    return true;
}

/* Opens connections in order, at most CONNECTING_MAX awaiting HelloOk at once, so 10,000
 * consoles do not overflow the listen backlog. */
void lg_start_connections(Lg *lg)
{
    while (lg->next_connect < lg->nconn && lg->connecting < CONNECTING_MAX &&
           lg->phase != PH_DONE) {
        LgConn *c = &lg->conn[lg->next_connect++];
        if (!conn_open(lg, c)) {
            c->dead = true;
            if (c->kind == LC_GATEWAY)
                lg->gw_dead++;
            else
                lg->con_dead++;
            continue;
        }
        lg->connecting++;
    }
}
