/*
 * lg_state: bin/loadgen's state, shared by its modules: the run's options and phase, its
 * connections (gateways submitting, consoles receiving offers) and what is measured. One
 * libevent loop owns it all. lg_conn.c: connections, requests and replies; lg_report.c:
 * the results; loadgen.c: options, set-up and the phases.
 */
#ifndef CARELINE_LG_STATE_H
#define CARELINE_LG_STATE_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cl.h"
#include "common/frame.h"
#include "common/util.h"
#include "lg_hist.h"

#define S(x)    CARELINE__V1__##x
#define BODY(x) CARELINE__V1__ENVELOPE__BODY_##x

#define MAX_WINDOW     4096         /* per connection; slot numbers fit in 16 bits */
#define HELLO_SEQ      0xFFFFull    /* slot 0xFFFF is never a request slot */
#define UPDATE_SEQ     (1ull << 62) /* console JobUpdates */
#define MAX_CONNS      20000        /* gateway + consoles */
#define MAX_DURATION_S 3600
#define MAX_FRAME      FRAME_MAX_PAYLOAD
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
    int console_port; /* the consoles' daemon (--console-port; 0 = port) */
    bool no_resume;   /* consoles send no StationResume (daemons older than it) */
    double rate, duration, warmup, drain, connect_timeout, settle;
    bool closed, accept, quiet;
    uint64_t max_requests, seed;
    TlsClientOpts tls; /* --ca, --cert, --key, --plaintext */
} Opts;

struct Lg {
    Opts o;
    struct event_base *base;
    struct event *tick, *sigint;
    struct sockaddr_in addr, console_addr; /* the gateways' and the consoles' daemon */
    TlsClient *tls;                        /* NULL = plaintext (--plaintext) */
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

/* ---- lg_conn.c ---- */
/* Monotonic nanoseconds. */
uint64_t lg_now_ns(void);
/* xorshift64 over lg->rng. */
uint64_t lg_rnd(Lg *lg);
/* Requests in flight over all gateway connections. */
uint64_t lg_gw_inflight(const Lg *lg);
/* Open loop: issues the requests whose intended send time has come. */
void lg_pump_open(Lg *lg, uint64_t now);
/* Fills c's window (closed loop) or issues what is due (open loop). */
void lg_pump(Lg *lg, LgConn *c, uint64_t now);
/* qsort order of int64_t. */
int lg_cmp_i64(const void *a, const void *b);
/* Opens connections up to CONNECTING_MAX in connect/Hello at once. */
void lg_start_connections(Lg *lg);
/* ---- lg_report.c ---- */
/* The run's results: a table for people, or KEY=VALUE lines (kv) for scripts. */
void lg_report(Lg *lg, FILE *f, bool kv);

#endif
