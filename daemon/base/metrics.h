/*
 * metrics: one server's counters and gauges, rendered in the Prometheus text format for
 * /metrics. Each Server owns one Metrics and lends it to its modules; they bump fields on
 * the event-loop thread, so plain integers suffice.
 */
#ifndef CARELINE_METRICS_H
#define CARELINE_METRICS_H

#include <event2/buffer.h>
#include <stdint.h>

#define METRICS_ERROR_CODES 64 /* ErrorCode values are < this */

/*
 * A Prometheus histogram of durations in seconds with fixed bucket bounds
 * (metrics_hist_bounds: 1 ms .. 10 s, then +Inf). Observe on the loop thread.
 */
#define METRICS_HIST_N 13
extern const double metrics_hist_bounds[METRICS_HIST_N];
typedef struct MetricsHist {
    uint64_t bucket[METRICS_HIST_N + 1]; /* non-cumulative; the last is above every bound */
    uint64_t count;
    double sum; /* seconds */
} MetricsHist;
void metrics_hist_observe(MetricsHist *h, double seconds);
/* Appends name_bucket{le=...} (cumulative, +Inf last), name_sum and name_count, with HELP
 * and TYPE lines. labels: extra labels for every line ("op=\"x\"") or NULL; a labelled family
 * rendered several times wants help NULL after the first. */
void metrics_hist_render(struct evbuffer *out, const char *name, const char *help,
                         const char *labels, const MetricsHist *h);

/* How a gateway's submission ended, for careline_submissions_total{outcome}. */
typedef enum MetricsSubmit {
    MSUB_QUEUED,
    MSUB_WAITLISTED,
    MSUB_REJECTED,
    MSUB_NOT_REGISTERED,
    MSUB_DEAD_LETTER,
    MSUB_OTHER_STATE, /* a duplicate found in a later state (accepted, done, ...) */
    MSUB_INVALID,     /* INVALID_ARGUMENT */
    MSUB_CONFLICT,    /* idempotency key used for other content */
    MSUB_NOT_FOUND,   /* unknown resident */
    MSUB_UNAVAILABLE, /* a backend failed, the breaker was open or the deadline passed */
    MSUB_OVERLOADED,  /* the queues were full */
    MSUB_ERROR,       /* any other error code */
    MSUB_CALLER_GONE, /* the connection closed first: dropped, nobody to answer */
    MSUB_N
} MetricsSubmit;
const char *metrics_submit_name(MetricsSubmit o);

typedef struct Metrics {
    uint64_t conns_accepted; /* protocol connections accepted */
    uint64_t conns_refused;  /* closed at once: over max_clients or shutting down */
    int64_t conns_current;   /* open protocol connections */
    uint64_t frames_in;      /* well-formed frames received */
    uint64_t frames_out;     /* frames sent */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t errors[METRICS_ERROR_CODES]; /* Error frames sent, by ErrorCode */
    uint64_t auth_ok;
    uint64_t auth_failed;
    uint64_t obuf_closes; /* connections closed for output-buffer limits */
    uint64_t timeouts;    /* hello and idle timeouts */
    uint64_t http_requests;
    uint64_t http_errors;      /* HTTP 4xx/5xx answers */
    uint64_t loop_lag_max_ms;  /* worst janitor tick lateness since start */
    uint64_t orphans_released; /* reservations given back: their request was never recorded */
    uint64_t pg_queries;       /* statements queued to the PostgreSQL pool */
    /* token checks (net/authcache.c), by how each was answered */
    uint64_t auth_cache_hits;    /* from the positive cache: no query */
    uint64_t auth_negative_hits; /* a recently failed token again: refused with no query */
    uint64_t auth_lookups;       /* queries sent to PostgreSQL */
    uint64_t auth_coalesced;     /* waited for a lookup of the same token already running */
    uint64_t auth_busy;          /* refused at once: the lookup budget and its queue were full */
    uint64_t auth_locked;        /* refused at once: the address is locked out */
    uint64_t auth_lockouts;      /* addresses locked out after too many failures */
    int64_t auth_inflight;       /* lookups running now (gauge) */
    int64_t auth_waiting;        /* lookups waiting for a slot of the budget (gauge) */
    /* ---- issue 12: Redis pub/sub ---- */
    uint64_t wake_rejected;  /* wake-up messages dropped by validation (station_wake.c) */
    uint64_t redis_rebuilds; /* Redis state rebuilt from PostgreSQL by this daemon */
    uint64_t sweeps_sent;    /* sweep statements sent (core/sweep.c) */
    uint64_t sweeps_paused;  /* sweeps skipped: the PostgreSQL breaker was open */

    /* ---- issue 13: the station streams consoles are served from ---- */
    uint64_t stream_rejected; /* entries dropped by validation (core/station_stream.c) */
    /* TLS and the HTTP listener's limits (net/tls.c, net/http.c) */
    uint64_t tls_handshakes;         /* TLS handshakes completed (both listeners) */
    uint64_t tls_plaintext_refused;  /* connections that sent something other than TLS */
    uint64_t tls_handshake_failed;   /* other failed handshakes (bad client certificate, ...) */
    uint64_t tls_handshake_timeouts; /* no completed handshake within hello_timeout_ms */
    uint64_t tls_cert_refused;       /* station Hello without a client certificate (required) */
    int64_t http_conns_current;      /* open HTTP connections */
    uint64_t http_conns_refused;     /* closed at once: over http_max_conns */
    uint64_t http_addr_refused;      /* closed at once: over http_max_conns_per_addr */
    uint64_t http_deadline_closes;   /* request not complete within http_request_deadline_ms */
    /* ---- issue 13: what a person on call needs ---- */
    uint64_t submissions[MSUB_N]; /* gateway submissions by outcome */
    MetricsHist submit_seconds;   /* a gateway submission, frame in to answer */
    MetricsHist pg_seconds;       /* a PostgreSQL statement, sent to answered (or failed) */
    uint64_t submit_dropped;      /* steps never sent to PostgreSQL: caller gone or too late */
    int64_t pg_queue_depth;       /* statements waiting for a pool connection (gauge) */
    int64_t pg_running;           /* statements running on pool connections (gauge) */
    int64_t redis_inflight;       /* Redis commands in flight (gauge) */
    int64_t consoles_current;     /* station consoles connected to this daemon (gauge) */
    int64_t waitlist_size;        /* waitlisted requests of the county, -1 = not counted yet */
    int pg_breaker_state;         /* 0 closed, 1 open, 2 half open (store/breaker.h) */
    uint64_t pg_breaker_trips;    /* times the PostgreSQL breaker opened */
} Metrics;

/* Appends the whole exposition of m to out; pg_up/redis_up are the backends' current states. */
void metrics_render(const Metrics *m, struct evbuffer *out, int pg_up, int redis_up);

/* Name of an ErrorCode for labels and logs ("FRAME_TOO_LARGE"). */
const char *metrics_error_name(int code);

#endif
