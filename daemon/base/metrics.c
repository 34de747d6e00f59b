/*
 * metrics: counters are bumped where things happen; rendering walks them once. Error
 * labels come from the protobuf enum descriptor so a new ErrorCode needs no edit here.
 */
#include "base/metrics.h"

#include "careline.pb-c.h"
#include "common/log.h"

const char *metrics_error_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&careline__v1__error_code__descriptor, code);
    return v ? v->name : "UNKNOWN";
}

const double metrics_hist_bounds[METRICS_HIST_N] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                    0.25,  0.5,    1,     2.5,  5,     10};

void metrics_hist_observe(MetricsHist *h, double seconds)
{
    if (!(seconds >= 0))
        seconds = 0; /* a clock step or NaN never makes a negative bucket */
    size_t i = 0;
    while (i < METRICS_HIST_N && seconds > metrics_hist_bounds[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum += seconds;
}

void metrics_hist_render(struct evbuffer *out, const char *name, const char *help,
                         const char *labels, const MetricsHist *h)
{
    const char *sep = labels && labels[0] ? "," : "";
    const char *lab = labels ? labels : "";
    if (help)
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t i = 0; i <= METRICS_HIST_N; i++) {
        cum += h->bucket[i];
        if (i < METRICS_HIST_N)
            evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, lab, sep,
                                metrics_hist_bounds[i], (unsigned long long)cum);
        else
            evbuffer_add_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, lab, sep,
                                (unsigned long long)cum);
    }
    const char *open = lab[0] ? "{" : "", *close = lab[0] ? "}" : "";
    evbuffer_add_printf(out, "%s_sum%s%s%s %.6f\n%s_count%s%s%s %llu\n", name, open, lab, close,
                        h->sum, name, open, lab, close, (unsigned long long)h->count);
}

const char *metrics_submit_name(MetricsSubmit o)
{
    static const char *const names[MSUB_N] = {
        [MSUB_QUEUED] = "QUEUED",           [MSUB_WAITLISTED] = "WAITLISTED",
        [MSUB_REJECTED] = "REJECTED",       [MSUB_NOT_REGISTERED] = "NOT_REGISTERED",
        [MSUB_DEAD_LETTER] = "DEAD_LETTER", [MSUB_OTHER_STATE] = "OTHER_STATE",
        [MSUB_INVALID] = "INVALID",         [MSUB_CONFLICT] = "CONFLICT",
        [MSUB_NOT_FOUND] = "NOT_FOUND",     [MSUB_UNAVAILABLE] = "UNAVAILABLE",
        [MSUB_OVERLOADED] = "OVERLOADED",   [MSUB_ERROR] = "ERROR",
        [MSUB_CALLER_GONE] = "CALLER_GONE",
    };
    return o < MSUB_N ? names[o] : "?";
}

static void counter(struct evbuffer *out, const char *name, const char *help, uint64_t v)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                        (unsigned long long)v);
}

static void gauge(struct evbuffer *out, const char *name, const char *help, int64_t v)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name,
                        (long long)v);
}

/* Issue 13: submissions by outcome, latencies, queues and the breaker. */
static void metrics_render_oncall(const Metrics *m, struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP careline_submissions_total Gateway submissions, by how "
                             "they ended.\n# TYPE careline_submissions_total counter\n");
    for (int i = 0; i < MSUB_N; i++)
        evbuffer_add_printf(out, "careline_submissions_total{outcome=\"%s\"} %llu\n",
                            metrics_submit_name((MetricsSubmit)i),
                            (unsigned long long)m->submissions[i]);
    metrics_hist_render(out, "careline_submit_seconds",
                        "Gateway submissions, from the frame to the answer, in seconds.", NULL,
                        &m->submit_seconds);
    metrics_hist_render(out, "careline_pg_statement_seconds",
                        "PostgreSQL pool statements, from send to answer or failure, in seconds.",
                        NULL, &m->pg_seconds);
    counter(out, "careline_submit_dropped_total",
            "Submission steps never sent to PostgreSQL: the caller had gone or its deadline "
            "passed.",
            m->submit_dropped);
    gauge(out, "careline_pg_queue_depth", "Statements waiting for a PostgreSQL pool connection.",
          m->pg_queue_depth);
    gauge(out, "careline_pg_running", "Statements running on PostgreSQL pool connections.",
          m->pg_running);
    gauge(out, "careline_redis_inflight", "Redis commands in flight.", m->redis_inflight);
    gauge(out, "careline_consoles_connected", "Station consoles connected to this daemon.",
          m->consoles_current);
    gauge(out, "careline_waitlist_size",
          "Waitlisted requests of the county (-1 until first counted).", m->waitlist_size);
    gauge(out, "careline_pg_breaker_state",
          "PostgreSQL circuit breaker: 0 closed, 1 open (submissions refused), 2 half open.",
          m->pg_breaker_state);
    counter(out, "careline_pg_breaker_trips_total", "Times the PostgreSQL circuit breaker opened.",
            m->pg_breaker_trips);
}

void metrics_render(const Metrics *m, struct evbuffer *out, int pg_up, int redis_up)
{
    counter(out, "careline_connections_accepted_total", "Protocol connections accepted.",
            m->conns_accepted);
    counter(out, "careline_connections_refused_total",
            "Protocol connections refused (limit or shutdown).", m->conns_refused);
    gauge(out, "careline_connections", "Open protocol connections.", m->conns_current);
    counter(out, "careline_frames_in_total", "Frames received.", m->frames_in);
    counter(out, "careline_frames_out_total", "Frames sent.", m->frames_out);
    counter(out, "careline_bytes_in_total", "Protocol bytes received.", m->bytes_in);
    counter(out, "careline_bytes_out_total", "Protocol bytes sent.", m->bytes_out);
    counter(out, "careline_auth_ok_total", "Successful Hello.", m->auth_ok);
    counter(out, "careline_auth_failed_total", "Refused Hello.", m->auth_failed);
    counter(out, "careline_obuf_closes_total", "Connections closed for output-buffer limits.",
            m->obuf_closes);
    counter(out, "careline_timeouts_total", "Connections closed for hello or idle timeout.",
            m->timeouts);
    counter(out, "careline_http_requests_total", "HTTP requests.", m->http_requests);
    counter(out, "careline_http_errors_total", "HTTP 4xx/5xx answers.", m->http_errors);
    counter(out, "careline_pg_queries_total", "Statements sent to the PostgreSQL pool.",
            m->pg_queries);
    counter(out, "careline_auth_cache_hits_total", "Token checks answered by the positive cache.",
            m->auth_cache_hits);
    counter(out, "careline_auth_negative_hits_total",
            "Token checks refused by the negative cache (a recently failed token).",
            m->auth_negative_hits);
    counter(out, "careline_auth_lookups_total", "Token lookups sent to PostgreSQL.",
            m->auth_lookups);
    counter(out, "careline_auth_coalesced_total",
            "Token checks that joined a running lookup of the same token.", m->auth_coalesced);
    counter(out, "careline_auth_busy_total",
            "Token checks refused at once: the lookup budget and its queue were full.",
            m->auth_busy);
    counter(out, "careline_auth_locked_total",
            "Token checks refused at once: too many failures from the address.", m->auth_locked);
    counter(out, "careline_auth_lockouts_total",
            "Addresses locked out after too many failed authentications.", m->auth_lockouts);
    gauge(out, "careline_auth_lookups_inflight", "Token lookups running now.", m->auth_inflight);
    gauge(out, "careline_auth_lookups_waiting", "Token lookups waiting for the budget.",
          m->auth_waiting);
    counter(out, "careline_log_suppressed_total",
            "Log lines suppressed by rate limiting (hostile traffic).", log_suppressed_total());
    counter(out, "careline_orphans_released_total",
            "Capacity reservations given back because their request was never recorded.",
            m->orphans_released);
    counter(out, "careline_wake_rejected_total",
            "Wake-up messages from Redis pub/sub dropped as malformed or for an unknown station.",
            m->wake_rejected);
    counter(out, "careline_stream_rejected_total",
            "Station stream entries dropped as malformed, oversized or of another station.",
            m->stream_rejected);
    counter(out, "careline_redis_rebuilds_total",
            "Times this daemon rebuilt the county's Redis state from PostgreSQL.",
            m->redis_rebuilds);
    counter(out, "careline_sweeps_total", "Waitlist/received sweeps sent to PostgreSQL.",
            m->sweeps_sent);
    counter(out, "careline_sweeps_paused_total",
            "Sweeps skipped because the PostgreSQL breaker was open.", m->sweeps_paused);
    gauge(out, "careline_loop_lag_max_ms", "Worst event-loop lateness seen by the janitor.",
          (int64_t)m->loop_lag_max_ms);
    gauge(out, "careline_postgres_up", "PostgreSQL reachable (1) or not (0).", pg_up);
    gauge(out, "careline_redis_up", "Redis reachable (1) or not (0).", redis_up);
    /* TLS and the HTTP listener's limits */
    counter(out, "careline_tls_handshakes_total", "TLS handshakes completed.", m->tls_handshakes);
    evbuffer_add_printf(out, "# HELP careline_tls_refused_total Connections closed during the TLS "
                             "handshake, by reason.\n# TYPE careline_tls_refused_total counter\n");
    const char *tls_reason[] = {"plaintext", "handshake", "timeout", "no_client_cert"};
    uint64_t tls_n[] = {m->tls_plaintext_refused, m->tls_handshake_failed,
                        m->tls_handshake_timeouts, m->tls_cert_refused};
    for (int i = 0; i < 4; i++)
        evbuffer_add_printf(out, "careline_tls_refused_total{reason=\"%s\"} %llu\n", tls_reason[i],
                            (unsigned long long)tls_n[i]);
    gauge(out, "careline_http_connections", "Open HTTP connections.", m->http_conns_current);
    evbuffer_add_printf(out, "# HELP careline_http_refused_total HTTP connections closed by a "
                             "limit, by limit.\n# TYPE careline_http_refused_total counter\n");
    const char *http_reason[] = {"max_conns", "per_addr", "deadline"};
    uint64_t http_n[] = {m->http_conns_refused, m->http_addr_refused, m->http_deadline_closes};
    for (int i = 0; i < 3; i++)
        evbuffer_add_printf(out, "careline_http_refused_total{limit=\"%s\"} %llu\n", http_reason[i],
                            (unsigned long long)http_n[i]);
    metrics_render_oncall(m, out);
    evbuffer_add_printf(out, "# HELP careline_errors_total Error frames sent, by code.\n"
                             "# TYPE careline_errors_total counter\n");
    for (unsigned i = 1; i < careline__v1__error_code__descriptor.n_values; i++) {
        int code = careline__v1__error_code__descriptor.values[i].value;
        if (code < 0 || code >= METRICS_ERROR_CODES)
            continue;
        evbuffer_add_printf(out, "careline_errors_total{code=\"%s\"} %llu\n",
                            metrics_error_name(code), (unsigned long long)m->errors[code]);
    }
}
