/*
 * bureau_int.h: what the files of the bureau module share; nothing outside daemon/reports/
 * bureau*.c includes it. One request type (Req) serves both doors. A request comes in by
 * the protocol (bureau_proto.c) or HTTP (bureau_http.c, whose bearer token bureau_auth.c
 * checks), is validated (bureau_req.c), runs its SQL step (bureau_sql.c), is computed from
 * the directory (bureau_calc.c; the snapshot's rows in bureau_snapshot.c, which also owns
 * the daily timer) and is answered exactly once (bureau_reply.c), which frees it.
 *
 * Every function below that takes a Req either passes it on to the next step or answers it;
 * after one returns, the caller no longer touches r unless the contract says otherwise.
 */
#ifndef CARELINE_BUREAU_INT_H
#define CARELINE_BUREAU_INT_H

#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/auth.h"
#include "base/cal.h"
#include "core/directory.h"
#include "net/conn.h"
#include "reports/bureau.h"
#include "reports/coverage.h"

#define SCOPE(x) CARELINE__V1__COVERAGE_SCOPE__SCOPE_##x
#define ERRC(x)  CARELINE__V1__ERROR_CODE__##x
typedef Careline__V1__CoverageScope Scope;
typedef Careline__V1__CoverageReport Report;

struct Bureau {
    const Env *env;      /* borrowed from the server */
    Dispatch *dispatch;  /* borrowed: directory and travel model */
    struct event *timer; /* the daily snapshot */
};

/* ---- the request (bureau_req.c) ---------------------------------------------------------- */

typedef struct {
    void **p; /* every block a report points to, freed at once with the request */
    size_t n, cap;
} Arena;

typedef enum {
    OUT_PROTO, /* a CoverageReport frame to c */
    OUT_JSON,  /* HTTP */
    OUT_CSV,   /* HTTP */
    OUT_NONE,  /* the daily snapshot: log only */
} OutKind;

typedef struct {
    char town[16];
    long long stations, with_session, equipped;
} TermRow;

typedef struct Req {
    Bureau *b;
    Scope scope;
    char town[16];   /* "" = the whole county */
    int covered;     /* SCOPE_VILLAGES: -1 all, 0 uncovered only, 1 covered only */
    CalDay from, to; /* history, realized, terminal period */
    double target;   /* 0 = the setting */
    CalDay day;      /* SCOPE_SNAPSHOT */
    OutKind out;
    Conn *c; /* OUT_PROTO: ref held, inflight counted */
    uint64_t seq;
    struct evhttp_request *hreq; /* OUT_JSON/CSV; NULL once its connection went away */
    BureauAuthThen pass_then;    /* bureau_http_authorize: whom to hand hreq to */
    void *pass_arg;
    /* from the database */
    double tgt_cov, tgt_term, tgt_cert;
    TermRow *term;
    size_t nterm;
    Arena ar;
    Report rep;
} Req;

/* A request with the default targets and no town; the caller fills the fields of its door. */
Req *bureau_req_new(Bureau *b, OutKind out);
/* Frees r, its arena and its term rows; releases its Conn (ref and inflight) and detaches
 * from its HTTP connection. Only bureau_reply.c and a door that never started r call it. */
void bureau_req_free(Req *r);
/* Zeroed memory and string copies that live as long as r (its report points into them). */
void *bureau_req_alloc(Req *r, size_t size);
char *bureau_req_str(Req *r, const char *s);
/* Follows hreq's connection: if it closes first, r->hreq becomes NULL and nothing is sent. */
void bureau_req_watch_http(Req *r, struct evhttp_request *hreq);
/* Detaches from the HTTP connection before answering (the closecb must not outlive r);
 * returns the request to answer, or NULL if its connection went away. */
struct evhttp_request *bureau_req_take_http(Req *r);
/* Checks r's fields against the directory and fills the defaults; on a bad field answers
 * INVALID_ARGUMENT (r is freed) and returns false. from_s/to_s/day_s: as given ("" = none). */
bool bureau_req_check(Req *r, const char *from_s, const char *to_s, const char *day_s) MUSTCHECK;
/* The same against a given directory snapshot (NULL: not loaded) and day `now` (no I/O: the
 * fuzz harness calls it). */
bool bureau_req_check_at(Req *r, const DirSnap *snap, CalDay now, const char *from_s,
                         const char *to_s, const char *day_s) MUSTCHECK;

/* Today in Asia/Shanghai, and the wall time as "YYYY-MM-DDTHH:MM:SS+08:00". */
CalDay bureau_today(void);
void bureau_now_iso(char *out, size_t n);

/* ---- answers (bureau_reply.c): each frees r ---------------------------------------------- */

/* An Error frame (protocol), a JSON error (HTTP) or a log line (the daily snapshot). field
 * names the offending CoverageQuery field for INVALID_ARGUMENT (HTTP shows its own name). */
void bureau_req_fail(Req *r, int code, const char *field, const char *fmt, ...) PRINTF_LIKE(4, 5);
/* Sends r->rep: a CoverageReport frame, or JSON/CSV over HTTP. */
void bureau_req_reply(Req *r);

/* ---- the doors (bureau_proto.c, bureau_http.c, bureau_auth.c) --------------------------- */

/* The date strings of an HTTP query, as given ("" = none); bureau_req_check parses them. */
typedef struct {
    char from[16], to[16], day[16];
    bool fmt_given;
} BureauDates;
/* The HTTP door's scope for path, or -1 when path is not one of its routes. */
int bureau_http_route_scope(const char *path);
/* The HTTP door's query-string parsing for a request of r->scope (a route's): takes qs
 * (NULL = none) into r and d; on a malformed, unknown or bad parameter answers r
 * INVALID_ARGUMENT naming it (r is freed) and returns false. No I/O: the fuzz harness calls
 * it. */
bool bureau_http_parse_query(Req *r, const char *qs, BureauDates *d) MUSTCHECK;

/* Install the CoverageQuery route / the HTTP routes, with b as their arg. */
void bureau_proto_install(Bureau *b);
void bureau_http_install(Bureau *b);
/* Checks r's bearer token (net/http_bearer.h: the server's token checker with its caches,
 * per-address lockout and lookup budget). If the principal's role is in roles (a mask of
 * 1 << Role), calls then(r, arg, a) — at once on a cache hit, else from the lookup's callback;
 * a is borrowed for the call. Otherwise answers r (401, 403 "the ROLE role may not WHAT", 429
 * or 503, with Retry-After when retrying helps). */
typedef void (*BureauThen)(Req *r, const void *arg, const AuthAnswer *a);
void bureau_auth_check(Req *r, unsigned roles, const char *what, BureauThen then, const void *arg);
/* The roles that read coverage. */
#define BUREAU_READERS                                                                             \
    ((1u << CARELINE__V1__ROLE__ROLE_BUREAU) | (1u << CARELINE__V1__ROLE__ROLE_ADMIN))

/* ---- SQL (bureau_sql.c) ------------------------------------------------------------------ */

/* Runs r's first SQL step: targets and terminal figures (then bureau_req_compute), history
 * or realized figures (then the reply). */
void bureau_req_start(Req *r);
/* Upserts the snapshot rows (a JSON array of bureau_snapshot_rows) for r->day, then replies.
 * rows_json is borrowed until the call returns. */
void bureau_sql_write_snapshot(Req *r, const char *rows_json);

/* ---- the computation (bureau_calc.c) ----------------------------------------------------- */

/* Terminal shares and certified caregivers of one scope. */
typedef struct {
    double terminal, terminal_equipped, certified; /* values */
    long long stations;                            /* village stations counted */
} Extra;

/* Computes and fills r->rep for the coverage scopes (county, towns, villages, plan,
 * snapshot); then replies, or writes the snapshot first. */
void bureau_req_compute(Req *r);
/* The county's (town_ix < 0) or one town's extra indicators; t is its coverage tally. */
Extra bureau_extra_of(const Req *r, const DirSnap *snap, const char *county, int town_ix,
                      const CovTally *t);
/* A CoverageFigure of t in r's arena. */
Careline__V1__CoverageFigure *bureau_figure_new(Req *r, const CovTally *t);
bool bureau_in_county(const char *code, const char *county);
/* The town's index in snap, or -1. */
int bureau_town_index(const DirSnap *snap, const char *code);

/* ---- the snapshot (bureau_snapshot.c) ---------------------------------------------------- */

/* The upsert's rows — county first, then each town of the county — as a JSON array
 * (caller frees). cov is the county's coverage computed over snap. */
char *bureau_snapshot_rows(const Req *r, const DirSnap *snap, const char *county,
                           const CovReport *cov);
/* Creates b->timer and arms it for the next BUREAU_SNAPSHOT_MINUTE. */
void bureau_snapshot_schedule(Bureau *b);

/* The protocol door: a CoverageQuery copied into a Req (env freed) and checked against
 * snap as of now. Returns the Req, ready for bureau_req_start, or NULL when it was answered
 * (an Error). The fuzz harness calls it with its own directory. */
Req *bureau_proto_accept(Bureau *b, Conn *c, Envelope *env, const DirSnap *snap, CalDay now);

#endif
