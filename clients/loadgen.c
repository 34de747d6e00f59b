/*
 * loadgen: a load generator for dispatchd. Many gateway connections submit SubmitRequests
 * for synthetic callers (phones from the residents table or a file), pipelined with a
 * window per connection, either open loop at a target rate (latency measured from each
 * request's intended send time, so a stalled server cannot hide its queueing: no
 * coordinated omission) or closed loop (every connection keeps its window full: the
 * maximum). Optional station consoles log in as station principals, time each QUEUED
 * reply to the matching JobOffer push, and accept and deliver what they are offered.
 * One thread, one libevent loop; loopback only; bounded in connections, count and time.
 *
 *   loadgen --port P (--token T | --tokens FILE) (--rate R | --closed) [options]
 *   see usage() for the rest.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cl.h"
#include "common/frame.h"
#include "lg_hist.h"
#include "common/util.h"

#define S(x)    CARELINE__V1__##x
#define BODY(x) CARELINE__V1__ENVELOPE__BODY_##x

#define MAX_WINDOW     4096         /* per connection; slot numbers fit in 16 bits */
#define HELLO_SEQ      0xFFFFull    /* slot 0xFFFF is never a request slot */
#define UPDATE_SEQ     (1ull << 62) /* console JobUpdates */
#define MAX_CONNS      20000        /* gateway + consoles */
#define MAX_DURATION_S 3600
#define MAX_FRAME      (16u << 20)
#define OBUF_LIMIT     (1u << 20) /* a connection with more unsent bytes is skipped */
#define CONNECTING_MAX 256        /* connections in connect/Hello at once */
#define JOB_RING       (1u << 20) /* QUEUED job -> time, for the push latency */
#define TICK_US        1000

typedef enum { LC_GATEWAY, LC_CONSOLE } LcKind;
typedef enum { PH_CONNECT, PH_RUN, PH_DRAIN, PH_DONE } Phase;

typedef struct Lg Lg;

typedef struct {
    Lg *lg;
    struct bufferevent *bev; /* NULL before connect and after close */
    LcKind kind;
    int idx;
    bool ready; /* HelloOk received */
    bool dead;  /* closed (EOF, error, refused); never reused */
    const char *token;
    int64_t station_id; /* consoles: from HelloOk */
    /* gateway request slots: seq = gen << 16 | slot */
    uint32_t inflight;
    uint16_t *free_slots; /* stack of free slot numbers; nfree of them */
    uint32_t nfree;
    uint64_t *slot_t0;  /* intended send time (ns) of the request in the slot */
    uint32_t *slot_gen; /* generation of the slot's current request */
} LgConn;

typedef struct {
    int64_t job_id;
    uint64_t t;   /* ns: the QUEUED reply's arrival, or the offer's when it came first */
    uint8_t what; /* 0 empty, 1 reply seen, 2 offer seen first */
} JobMark;

typedef struct {
    const char *host, *token, *tokens, *console_tokens, *phones_file, *pg, *date, *slot;
    const char *run_id, *report;
    int port, conns, window, consoles, care_pct;
    double rate, duration, warmup, drain, connect_timeout, settle;
    bool closed, accept, quiet;
    uint64_t max_requests, seed;
} Opts;

struct Lg {
    Opts o;
    struct event_base *base;
    struct event *tick, *sigint;
    struct sockaddr_in addr;
    Phase phase;
    LgConn *conn;
    int nconn, ngw;
    int next_connect, connecting;
    int gw_ready, gw_dead, con_ready, con_dead, auth_failed;
    int rr;
    char **phones;
    size_t nphones;
    char date[16];
    uint64_t rng;
    uint64_t t_connect, t_last_console, t_all_ready, t_start, t_warm, t_end, t_drain_end,
        t_last_progress;
    uint64_t issued, replies, replies_measured, lost, max_lag;
    uint64_t states[16], errors[40], other_replies;
    LgHist *h_submit, *h_push;
    /* consoles */
    int64_t *stations; /* sorted station ids held by our consoles */
    size_t nstations;
    JobMark *ring;
    uint64_t queued_tracked, offers, offers_matched, offers_first, offers_other;
    uint64_t upd_sent, upd_ok, upd_err, accepted, delivered;
    uint64_t pending_marks;
    uint64_t bad_frames;
};

static volatile sig_atomic_t interrupted;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(Lg *lg)
{
    lg->rng ^= lg->rng << 13;
    lg->rng ^= lg->rng >> 7;
    lg->rng ^= lg->rng << 17;
    return lg->rng;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --port P (--token T | --tokens FILE) (--rate R | --closed) [options]\n"
            "  --host H            loopback only: 127.0.0.1 (default), ::1 is not supported\n"
            "  --conns N           gateway connections (default 16)\n"
            "  --window W          requests in flight per connection (default 32, max %d)\n"
            "  --rate R            open loop: R requests/s in all (latency from intended time)\n"
            "  --closed            closed loop: keep every window full (the maximum)\n"
            "  --duration S        measured seconds (default 10), after --warmup S (default 2)\n"
            "  --drain S           wait this long for outstanding replies (default 10)\n"
            "  --max-requests N    stop issuing after N requests\n"
            "  --phones FILE       caller phones, one per line; or --pg CONNINFO (residents)\n"
            "  --date YYYY-MM-DD   service date (default: tomorrow in Asia/Shanghai)\n"
            "  --slot lunch|dinner|both (default lunch)  --care-pct P  (home care share, 0)\n"
            "  --consoles N        station consoles (station lines of --console-tokens, or of\n"
            "                      --tokens); they accept and deliver offers unless --no-accept\n"
            "  --connect-timeout S (default 60)  --settle S (wait after the consoles logged in)\n"
            "  --run-id ID  --seed N\n"
            "  --report FILE       also write the figures as shell-sourceable KEY=VALUE lines\n"
            "  --quiet             no progress lines on stderr\n",
            MAX_WINDOW);
    exit(2);
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
    m.caller_phone = lg->phones[rnd(lg) % lg->nphones];
    if (lg->o.care_pct > 0 && (int)(rnd(lg) % 100) < lg->o.care_pct) {
        m.kind = S(SERVICE_KIND__HOME_CARE);
        m.care_subtype = (Careline__V1__CareSubtype)(1 + rnd(lg) % 4);
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
static void pump_open(Lg *lg, uint64_t now)
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

static void pump(Lg *lg, LgConn *c, uint64_t now)
{
    if (lg->o.closed)
        pump_closed(lg, c, now);
    else
        pump_open(lg, now);
}

/* ---- QUEUED -> JobOffer matching -------------------------------------------------------*/

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static bool held_station(const Lg *lg, int64_t id)
{
    return lg->nstations && bsearch(&id, lg->stations, lg->nstations, sizeof(int64_t), cmp_i64);
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

static void start_connections(Lg *lg);

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
        start_connections(lg);
        return;
    }
    c->ready = true;
    if (c->kind == LC_GATEWAY) {
        lg->gw_ready++;
    } else {
        lg->con_ready++;
        c->station_id = env->hello_ok->station_id;
    }
    start_connections(lg);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    LgConn *c = arg;
    Lg *lg = c->lg;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint64_t now = now_ns();
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
        pump(lg, c, now);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    LgConn *c = arg;
    /* output drained below the low watermark (0): a connection skipped for a full buffer
     * may take requests again */
    if (c->kind == LC_GATEWAY && c->ready)
        pump(c->lg, c, now_ns());
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
        char why[128];
        snprintf(why, sizeof(why), "%s",
                 (what & BEV_EVENT_EOF) ? "closed by server" : strerror(EVUTIL_SOCKET_ERROR()));
        if (!c->ready)
            c->lg->connecting--;
        conn_close(c, why);
        start_connections(c->lg);
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
    c->bev = bufferevent_socket_new(lg->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev)
        return false;
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&lg->addr, sizeof(lg->addr)) != 0) {
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
static void start_connections(Lg *lg)
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

/* ---- phases ----------------------------------------------------------------------------*/

static void begin_run(Lg *lg, uint64_t now)
{
    lg->phase = PH_RUN;
    lg->t_start = now;
    lg->t_warm = now + (uint64_t)(lg->o.warmup * 1e9);
    lg->t_end = lg->t_warm + (uint64_t)(lg->o.duration * 1e9);
    lg->t_last_progress = now;
    /* the station ids our consoles hold */
    lg->stations = xcalloc((size_t)lg->con_ready + 1, sizeof(int64_t));
    for (int i = lg->ngw; i < lg->nconn; i++)
        if (lg->conn[i].ready && !lg->conn[i].dead)
            lg->stations[lg->nstations++] = lg->conn[i].station_id;
    qsort(lg->stations, lg->nstations, sizeof(int64_t), cmp_i64);
    if (!lg->o.quiet)
        fprintf(stderr,
                "loadgen: %d gateway connections and %d consoles ready in %.1f s; running "
                "%s for %.0f+%.0f s\n",
                lg->gw_ready, lg->con_ready, (double)(now - lg->t_connect) / 1e9,
                lg->o.closed ? "closed loop" : "open loop", lg->o.warmup, lg->o.duration);
    for (int i = 0; i < lg->ngw; i++)
        if (lg->conn[i].ready)
            pump(lg, &lg->conn[i], now);
}

static uint64_t gw_inflight(const Lg *lg)
{
    uint64_t n = 0;
    for (int i = 0; i < lg->ngw; i++)
        n += lg->conn[i].inflight;
    return n;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Lg *lg = arg;
    uint64_t now = now_ns();
    if (interrupted && lg->phase != PH_DONE) {
        fprintf(stderr, "loadgen: interrupted\n");
        lg->phase = PH_DONE;
        event_base_loopbreak(lg->base);
        return;
    }
    switch (lg->phase) {
    case PH_CONNECT: {
        /* all logged in, and the consoles' backlogs (jobs of earlier runs) handled: no
         * console traffic for a second */
        bool all = lg->next_connect >= lg->nconn && lg->connecting == 0 &&
                   now - lg->t_last_console > 1000000000ull;
        if (all && !lg->t_all_ready)
            lg->t_all_ready = now;
        if (all && now - lg->t_all_ready < (uint64_t)(lg->o.settle * 1e9))
            all = false; /* --settle: let the daemon finish the consoles' first reads */
        bool late = now - lg->t_connect > (uint64_t)(lg->o.connect_timeout * 1e9);
        if (lg->gw_dead >= lg->ngw && lg->ngw > 0) {
            fprintf(stderr, "loadgen: no gateway connection could log in\n");
            lg->phase = PH_DONE;
            event_base_loopbreak(lg->base);
            return;
        }
        if (all || late) {
            if (late && !all)
                fprintf(stderr, "loadgen: connect timeout: %d of %d consoles ready\n",
                        lg->con_ready, lg->nconn - lg->ngw);
            begin_run(lg, now);
        } else if (!lg->o.quiet && now - lg->t_last_progress > 2000000000ull) {
            lg->t_last_progress = now;
            fprintf(stderr, "loadgen: connecting: %d gateway, %d consoles ready\n", lg->gw_ready,
                    lg->con_ready);
        }
        return;
    }
    case PH_RUN:
        if (!lg->o.closed)
            pump_open(lg, now);
        if (!lg->o.quiet && now - lg->t_last_progress > 2000000000ull) {
            lg->t_last_progress = now;
            fprintf(stderr, "loadgen: t=%.0fs issued %llu replies %llu in flight %llu\n",
                    (double)(now - lg->t_start) / 1e9, (unsigned long long)lg->issued,
                    (unsigned long long)lg->replies, (unsigned long long)gw_inflight(lg));
        }
        if (now >= lg->t_end || (lg->o.max_requests && lg->issued >= lg->o.max_requests) ||
            lg->gw_dead >= lg->ngw) {
            lg->phase = PH_DRAIN;
            if (now < lg->t_end)
                lg->t_end = now;
            lg->t_drain_end = now + (uint64_t)(lg->o.drain * 1e9);
        }
        return;
    case PH_DRAIN:
        if ((gw_inflight(lg) == 0 && lg->pending_marks == 0) || now >= lg->t_drain_end) {
            lg->phase = PH_DONE;
            event_base_loopbreak(lg->base);
        }
        return;
    case PH_DONE:
        return;
    }
}

static void sig_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    interrupted = 1;
}

/* ---- set-up ----------------------------------------------------------------------------*/

static void add_phone(Lg *lg, const char *p, size_t *cap)
{
    if (lg->nphones == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        lg->phones = xrealloc(lg->phones, *cap * sizeof(char *));
    }
    lg->phones[lg->nphones++] = xstrdup(p);
}

static bool load_phones(Lg *lg)
{
    size_t cap = 0;
    if (lg->o.phones_file) {
        FILE *f = fopen(lg->o.phones_file, "r");
        if (!f) {
            fprintf(stderr, "loadgen: %s: %s\n", lg->o.phones_file, strerror(errno));
            return false;
        }
        char line[128];
        while (fgets(line, sizeof(line), f)) {
            line[strcspn(line, " \t\r\n")] = '\0';
            if (line[0] && line[0] != '#')
                add_phone(lg, line, &cap);
        }
        fclose(f);
    } else {
        PGconn *pg = PQconnectdb(lg->o.pg);
        if (PQstatus(pg) != CONNECTION_OK) {
            fprintf(stderr, "loadgen: PostgreSQL: %s", PQerrorMessage(pg));
            PQfinish(pg);
            return false;
        }
        PGresult *r = PQexec(pg, "SELECT phone FROM residents ORDER BY id");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "loadgen: residents: %s", PQresultErrorMessage(r));
            PQclear(r);
            PQfinish(pg);
            return false;
        }
        for (int i = 0; i < PQntuples(r); i++)
            add_phone(lg, PQgetvalue(r, i, 0), &cap);
        PQclear(r);
        PQfinish(pg);
    }
    if (lg->nphones == 0) {
        fprintf(stderr, "loadgen: no caller phones\n");
        return false;
    }
    return true;
}

/* Up to max station tokens from a tokens file (lines "station ID TOKEN NAME"). */
static char **station_tokens(const char *path, int max, int *n)
{
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char **out = xcalloc((size_t)max + 1, sizeof(char *));
    char line[512], role[32], tok[300];
    long sid;
    while (*n < max && fgets(line, sizeof(line), f))
        if (sscanf(line, "%31s %ld %299s", role, &sid, tok) == 3 && strcmp(role, "station") == 0)
            out[(*n)++] = xstrdup(tok);
    fclose(f);
    return out;
}

static void tomorrow(char out[16])
{
    time_t t = time(NULL) + 8 * 3600 + 24 * 3600; /* Asia/Shanghai has no DST */
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void print_hist(FILE *f, const char *label, const LgHist *h)
{
    fprintf(f, "%-22s n=%llu p50=%.3f p90=%.3f p99=%.3f p99.9=%.3f max=%.3f mean=%.3f ms\n", label,
            (unsigned long long)lg_hist_count(h), ms(lg_hist_quantile(h, 0.5)),
            ms(lg_hist_quantile(h, 0.9)), ms(lg_hist_quantile(h, 0.99)),
            ms(lg_hist_quantile(h, 0.999)), ms(lg_hist_max(h)), lg_hist_mean(h) / 1e6);
}

static void kv_hist(FILE *f, const char *p, const LgHist *h)
{
    fprintf(f,
            "%s_n=%llu\n%s_p50_ms=%.3f\n%s_p90_ms=%.3f\n%s_p99_ms=%.3f\n%s_p999_ms=%.3f\n"
            "%s_max_ms=%.3f\n",
            p, (unsigned long long)lg_hist_count(h), p, ms(lg_hist_quantile(h, 0.5)), p,
            ms(lg_hist_quantile(h, 0.9)), p, ms(lg_hist_quantile(h, 0.99)), p,
            ms(lg_hist_quantile(h, 0.999)), p, ms(lg_hist_max(h)));
}

static const char *enum_name(const ProtobufCEnumDescriptor *d, int v)
{
    const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value(d, v);
    return e ? e->name : "?";
}

static void report(Lg *lg, FILE *f, bool kv)
{
    double secs = (double)(lg->t_end - lg->t_warm) / 1e9;
    if (secs <= 0)
        secs = 1e-9;
    double tput = (double)lg->replies_measured / secs;
    uint64_t noreply = gw_inflight(lg);
    uint64_t errs = 0;
    for (int i = 0; i < 40; i++)
        errs += lg->errors[i];
    /* the generator fell behind its schedule by more than 100 ms worth of requests */
    bool lagged = !lg->o.closed && (double)lg->max_lag > lg->o.rate * 0.1 + 1;
    if (kv) {
        fprintf(f, "mode=%s\noffered_rate=%.0f\nconns=%d\nwindow=%d\nmeasured_s=%.3f\n",
                lg->o.closed ? "closed" : "open", lg->o.closed ? 0.0 : lg->o.rate, lg->ngw,
                lg->o.window, secs);
        fprintf(f,
                "issued=%llu\nreplies=%llu\nthroughput=%.0f\nerrors=%llu\nno_reply=%llu\n"
                "lost=%llu\ngen_lagged=%d\nmax_lag=%llu\n",
                (unsigned long long)lg->issued, (unsigned long long)lg->replies, tput,
                (unsigned long long)errs, (unsigned long long)noreply, (unsigned long long)lg->lost,
                lagged, (unsigned long long)lg->max_lag);
        for (int i = 1; i < 16; i++)
            if (lg->states[i])
                fprintf(f, "state_%s=%llu\n",
                        enum_name(&careline__v1__request_state__descriptor, i),
                        (unsigned long long)lg->states[i]);
        for (int i = 0; i < 40; i++)
            if (lg->errors[i])
                fprintf(f, "error_%s=%llu\n", enum_name(&careline__v1__error_code__descriptor, i),
                        (unsigned long long)lg->errors[i]);
        kv_hist(f, "submit", lg->h_submit);
        kv_hist(f, "push", lg->h_push);
        fprintf(f,
                "consoles=%d\nconsoles_ready=%d\nconsoles_closed=%d\nauth_failed=%d\n"
                "offers=%llu\noffers_matched=%llu\naccepted=%llu\ndelivered=%llu\n"
                "updates_ok=%llu\nupdates_err=%llu\n",
                lg->nconn - lg->ngw, lg->con_ready, lg->con_dead, lg->auth_failed,
                (unsigned long long)lg->offers, (unsigned long long)lg->offers_matched,
                (unsigned long long)lg->accepted, (unsigned long long)lg->delivered,
                (unsigned long long)lg->upd_ok, (unsigned long long)lg->upd_err);
        return;
    }
    if (lg->o.closed)
        fprintf(f, "loadgen: closed loop, %d connections x window %d, %.1f s measured\n", lg->ngw,
                lg->o.window, secs);
    else
        fprintf(f,
                "loadgen: open loop at %.0f req/s offered, %d connections x window %d, %.1f s "
                "measured%s\n",
                lg->o.rate, lg->ngw, lg->o.window, secs,
                lagged ? " (GENERATOR FELL BEHIND: every window was full)" : "");
    fprintf(f, "requests   issued %llu, replies %llu, errors %llu, no reply %llu, lost %llu\n",
            (unsigned long long)lg->issued, (unsigned long long)lg->replies,
            (unsigned long long)errs, (unsigned long long)noreply, (unsigned long long)lg->lost);
    fprintf(f, "throughput %.0f replies/s in the measured window\n", tput);
    fprintf(f, "states    ");
    for (int i = 1; i < 16; i++)
        if (lg->states[i])
            fprintf(f, " %s=%llu", enum_name(&careline__v1__request_state__descriptor, i),
                    (unsigned long long)lg->states[i]);
    fprintf(f, "\n");
    if (errs) {
        fprintf(f, "errors    ");
        for (int i = 0; i < 40; i++)
            if (lg->errors[i])
                fprintf(f, " %s=%llu", enum_name(&careline__v1__error_code__descriptor, i),
                        (unsigned long long)lg->errors[i]);
        fprintf(f, "\n");
    }
    print_hist(f, "submit -> reply", lg->h_submit);
    if (lg->nconn > lg->ngw) {
        print_hist(f, "QUEUED -> JobOffer", lg->h_push);
        fprintf(f,
                "consoles   %d of %d ready (%d closed, %d refused); offers %llu (%llu timed, "
                "%llu before the reply), accepted %llu, delivered %llu, updates ok %llu, "
                "refused %llu\n",
                lg->con_ready, lg->nconn - lg->ngw, lg->con_dead, lg->auth_failed,
                (unsigned long long)lg->offers, (unsigned long long)lg->offers_matched,
                (unsigned long long)lg->offers_first, (unsigned long long)lg->accepted,
                (unsigned long long)lg->delivered, (unsigned long long)lg->upd_ok,
                (unsigned long long)lg->upd_err);
    }
}

static bool parse_args(Opts *o, int argc, char **argv)
{
    *o = (Opts){.host = "127.0.0.1",
                .conns = 16,
                .window = 32,
                .duration = 10,
                .warmup = 2,
                .drain = 10,
                .connect_timeout = 60,
                .slot = "lunch",
                .accept = true,
                .seed = 0x5eed};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define ARG(name) (strcmp(a, name) == 0 && i + 1 < argc)
        if (ARG("--host"))
            o->host = argv[++i];
        else if (ARG("--port"))
            o->port = atoi(argv[++i]);
        else if (ARG("--token"))
            o->token = argv[++i];
        else if (ARG("--tokens"))
            o->tokens = argv[++i];
        else if (ARG("--console-tokens"))
            o->console_tokens = argv[++i];
        else if (ARG("--phones"))
            o->phones_file = argv[++i];
        else if (ARG("--pg"))
            o->pg = argv[++i];
        else if (ARG("--conns"))
            o->conns = atoi(argv[++i]);
        else if (ARG("--window"))
            o->window = atoi(argv[++i]);
        else if (ARG("--rate"))
            o->rate = strtod(argv[++i], NULL);
        else if (strcmp(a, "--closed") == 0)
            o->closed = true;
        else if (ARG("--duration"))
            o->duration = strtod(argv[++i], NULL);
        else if (ARG("--warmup"))
            o->warmup = strtod(argv[++i], NULL);
        else if (ARG("--settle"))
            o->settle = strtod(argv[++i], NULL);
        else if (ARG("--drain"))
            o->drain = strtod(argv[++i], NULL);
        else if (ARG("--connect-timeout"))
            o->connect_timeout = strtod(argv[++i], NULL);
        else if (ARG("--max-requests"))
            o->max_requests = strtoull(argv[++i], NULL, 10);
        else if (ARG("--consoles"))
            o->consoles = atoi(argv[++i]);
        else if (ARG("--date"))
            o->date = argv[++i];
        else if (ARG("--slot"))
            o->slot = argv[++i];
        else if (ARG("--care-pct"))
            o->care_pct = atoi(argv[++i]);
        else if (ARG("--run-id"))
            o->run_id = argv[++i];
        else if (ARG("--seed"))
            o->seed = strtoull(argv[++i], NULL, 10);
        else if (ARG("--report"))
            o->report = argv[++i];
        else if (strcmp(a, "--no-accept") == 0)
            o->accept = false;
        else if (strcmp(a, "--quiet") == 0)
            o->quiet = true;
        else
            return false;
#undef ARG
    }
    if (o->port <= 0 || o->port > 65535 || (!o->token && !o->tokens))
        return false;
    if (o->closed == (o->rate > 0)) {
        fprintf(stderr, "loadgen: give exactly one of --rate R and --closed\n");
        return false;
    }
    if (o->conns < 1 || o->window < 1 || o->window > MAX_WINDOW || o->consoles < 0 ||
        o->conns + o->consoles > MAX_CONNS || o->duration <= 0 || o->duration > MAX_DURATION_S ||
        o->warmup < 0 || o->warmup > 600 || o->drain < 0 || o->drain > 600 || o->settle < 0 ||
        o->settle > 600 || o->connect_timeout <= 0 || o->connect_timeout > 600 || o->rate > 1e7 ||
        o->care_pct < 0 || o->care_pct > 100) {
        fprintf(stderr,
                "loadgen: a value is out of range (conns+consoles <= %d, window <= %d, "
                "duration <= %d s)\n",
                MAX_CONNS, MAX_WINDOW, MAX_DURATION_S);
        return false;
    }
    if (strcmp(o->slot, "lunch") && strcmp(o->slot, "dinner") && strcmp(o->slot, "both"))
        return false;
    if (!o->phones_file && !o->pg) {
        fprintf(stderr, "loadgen: give --phones FILE or --pg CONNINFO\n");
        return false;
    }
    return true;
}

static void raise_nofile(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < (rlim_t)want) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)want ? rl.rlim_max : (rlim_t)want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)want)
        fprintf(stderr, "loadgen: warning: open files limited to %llu (need about %d)\n",
                (unsigned long long)rl.rlim_cur, want);
}

int main(int argc, char **argv)
{
    Lg lg_storage = {0};
    Lg *lg = &lg_storage;
    if (!parse_args(&lg->o, argc, argv))
        usage();
    Opts *o = &lg->o;
    signal(SIGPIPE, SIG_IGN);

    /* loopback only: this tool must never be pointed at someone else's server */
    lg->addr.sin_family = AF_INET;
    lg->addr.sin_port = htons((uint16_t)o->port);
    if (strcmp(o->host, "localhost") == 0)
        o->host = "127.0.0.1";
    if (inet_pton(AF_INET, o->host, &lg->addr.sin_addr) != 1 ||
        (ntohl(lg->addr.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "loadgen: --host must be a 127.x.x.x address (loopback only)\n");
        return 2;
    }

    char run_id[32];
    if (!o->run_id) {
        snprintf(run_id, sizeof(run_id), "%lx%x", (unsigned long)time(NULL), (unsigned)getpid());
        o->run_id = run_id;
    }
    lg->rng = o->seed ? o->seed : 1;
    if (o->date)
        snprintf(lg->date, sizeof(lg->date), "%s", o->date);
    else
        tomorrow(lg->date);

    char *gw_token = o->token ? xstrdup(o->token) : cl_token_from_file(o->tokens, "gateway", 0);
    if (!gw_token && o->tokens)
        gw_token = cl_token_from_file(o->tokens, "admin", 0);
    if (!gw_token) {
        fprintf(stderr, "loadgen: no gateway or admin token in %s\n", o->tokens);
        return 1;
    }
    int ncons = 0;
    char **ctoks = NULL;
    if (o->consoles > 0) {
        const char *path = o->console_tokens ? o->console_tokens : o->tokens;
        ctoks = path ? station_tokens(path, o->consoles, &ncons) : NULL;
        if (ncons < o->consoles) {
            fprintf(stderr, "loadgen: %d consoles asked for, %d station tokens in %s\n",
                    o->consoles, ncons, path ? path : "(no tokens file)");
            return 1;
        }
    }
    if (!load_phones(lg))
        return 1;
    raise_nofile(o->conns + ncons + 64);

    lg->h_submit = lg_hist_new();
    lg->h_push = lg_hist_new();
    lg->ring = xcalloc(JOB_RING, sizeof(JobMark));
    lg->ngw = o->conns;
    lg->nconn = o->conns + ncons;
    lg->conn = xcalloc((size_t)lg->nconn, sizeof(LgConn));
    for (int i = 0; i < lg->nconn; i++) {
        LgConn *c = &lg->conn[i];
        c->lg = lg;
        c->idx = i < lg->ngw ? i : i - lg->ngw;
        if (i < lg->ngw) {
            c->kind = LC_GATEWAY;
            c->token = gw_token;
            c->free_slots = xcalloc((size_t)o->window, sizeof(uint16_t));
            c->slot_t0 = xcalloc((size_t)o->window, sizeof(uint64_t));
            c->slot_gen = xcalloc((size_t)o->window, sizeof(uint32_t));
            for (int s = 0; s < o->window; s++)
                c->free_slots[c->nfree++] = (uint16_t)(o->window - 1 - s);
        } else {
            c->kind = LC_CONSOLE;
            c->token = ctoks[i - lg->ngw];
        }
    }

    lg->base = event_base_new();
    if (!lg->base) {
        fprintf(stderr, "loadgen: event_base_new failed\n");
        return 1;
    }
    lg->tick = event_new(lg->base, -1, EV_PERSIST, tick_cb, lg);
    struct timeval tv = {0, TICK_US};
    event_add(lg->tick, &tv);
    lg->sigint = evsignal_new(lg->base, SIGINT, sig_cb, lg);
    event_add(lg->sigint, NULL);
    struct event *sigterm = evsignal_new(lg->base, SIGTERM, sig_cb, lg);
    event_add(sigterm, NULL);

    /* consoles first, so they are there when the first jobs are pushed */
    lg->t_connect = now_ns();
    lg->t_last_progress = lg->t_connect;
    lg->phase = PH_CONNECT;
    start_connections(lg);
    event_base_dispatch(lg->base);
    uint64_t done = now_ns();
    if (lg->t_start && done < lg->t_end)
        lg->t_end = done;

    int rc = 0;
    if (!lg->t_start || lg->replies == 0) {
        fprintf(stderr, "loadgen: no replies: nothing was measured\n");
        rc = 1;
    }
    if (lg->t_start) {
        report(lg, stdout, false);
        if (o->report) {
            FILE *f = fopen(o->report, "w");
            if (!f) {
                fprintf(stderr, "loadgen: %s: %s\n", o->report, strerror(errno));
                rc = 1;
            } else {
                report(lg, f, true);
                fclose(f);
            }
        }
    }
    if (interrupted)
        rc = 130;

    for (int i = 0; i < lg->nconn; i++) {
        LgConn *c = &lg->conn[i];
        if (c->bev)
            bufferevent_free(c->bev);
        free(c->free_slots);
        free(c->slot_t0);
        free(c->slot_gen);
    }
    for (int i = 0; i < ncons; i++)
        free(ctoks[i]);
    free(ctoks);
    for (size_t i = 0; i < lg->nphones; i++)
        free(lg->phones[i]);
    free(lg->phones);
    free(lg->conn);
    free(lg->stations);
    free(lg->ring);
    free(gw_token);
    lg_hist_free(lg->h_submit);
    lg_hist_free(lg->h_push);
    event_free(lg->tick);
    event_free(lg->sigint);
    event_free(sigterm);
    event_base_free(lg->base);
    return rc;
}
