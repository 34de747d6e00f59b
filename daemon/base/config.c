/*
 * config: dispatchd's keys, the single definition of each (name, type, default, bounds,
 * reloadable, meaning), and the checks that span keys. Loading, the environment, the
 * command line and printing are common/cfg's, shared with the clients.
 */
#include "base/config.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "common/cfg.h"

#define INT_KEY(n, d, lo, hi, rl, h) CFG_INT_KEY(Config, n, d, lo, hi, rl, h)
#define DBL_KEY(n, d, lo, hi, rl, h) CFG_DBL_KEY(Config, n, d, lo, hi, rl, h)
#define STR_KEY(n, d, rl, h)         CFG_STR_KEY(Config, n, d, rl, h)

static const char *check_client_certs(const char *v)
{
    return strcmp(v, "off") == 0 || strcmp(v, "optional") == 0 || strcmp(v, "required") == 0
               ? NULL
               : "off, optional or required";
}

static const CfgKey keys[] = {
    STR_KEY(listen_addr, "127.0.0.1", false, "protocol listener address (IPv4 or IPv6 literal)"),
    INT_KEY(listen_port, "7400", 0, 65535, false, "protocol listener port; 0 = any free port"),
    STR_KEY(http_addr, "127.0.0.1", false, "HTTP address for /healthz, /readyz, /metrics"),
    INT_KEY(http_port, "7401", 0, 65535, false, "HTTP port; 0 = any free port"),
    STR_KEY(port_file, "", false, "write the bound ports here once listening (tests)"),
    STR_KEY(server_id, "", false, "this instance's name in logs and HelloOk; empty = host-pid"),
    CFG_CHECKED_STR_KEY(Config, log_level, "info", true, "error | warn | info | debug",
                        cfg_check_log_level),
    STR_KEY(pg_conninfo, "host=127.0.0.1 port=55432 dbname=careline user=careline_app", false,
            "libpq conninfo; host must be an IP or a socket directory (no DNS on the loop); "
            "secrets via PGPASSFILE/PGPASSWORD, never here"),
    INT_KEY(pg_pool_size, "4", 1, 64, false, "PostgreSQL connections"),
    INT_KEY(pg_query_timeout_ms, "5000", 50, 600000, true,
            "a query slower than this fails and its connection is reset"),
    INT_KEY(pg_max_queue, "10000", 1, 1000000, false,
            "queries waiting for a connection before OVERLOADED"),
    STR_KEY(redis_host, "127.0.0.1", false, "Redis IP address (no DNS)"),
    INT_KEY(redis_port, "56379", 1, 65535, false, "Redis port"),
    INT_KEY(redis_op_timeout_ms, "2000", 50, 600000, true,
            "a Redis reply later than this resets the link"),
    INT_KEY(redis_max_inflight, "100000", 1, 10000000, false,
            "Redis commands in flight before OVERLOADED"),
    INT_KEY(max_frame_bytes, "65536", 64, 16777216, false, "largest frame payload accepted"),
    INT_KEY(max_clients, "10000", 1, 1000000, false,
            "protocol connections; the listener pauses while at the limit"),
    INT_KEY(hello_timeout_ms, "10000", 100, 3600000, true,
            "a new connection must send Hello within this"),
    INT_KEY(idle_timeout_ms, "120000", 100, 86400000, true,
            "a connection that sends nothing for this long is closed"),
    INT_KEY(heartbeat_interval_ms, "30000", 100, 3600000, true,
            "advertised in HelloOk; clients Ping at least this often"),
    INT_KEY(obuf_soft_bytes, "1048576", 1024, INT_MAX, true,
            "output buffered above this pauses reading from the peer"),
    INT_KEY(obuf_hard_bytes, "8388608", 1024, INT_MAX, true,
            "output buffered above this closes the connection"),
    INT_KEY(obuf_soft_seconds, "10", 1, 3600, true,
            "output above the soft limit for this long closes the connection"),
    INT_KEY(max_inflight_per_conn, "64", 1, 100000, true,
            "requests awaiting PostgreSQL/Redis per connection before reading pauses"),
    INT_KEY(so_sndbuf_bytes, "0", 0, 64 * 1024 * 1024, false,
            "kernel send buffer per protocol connection (bounds kernel memory per console); "
            "0 = the kernel's default"),
    INT_KEY(frames_per_wakeup, "32", 1, 100000, true,
            "frames handled per read event before yielding to other connections"),
    INT_KEY(http_timeout_ms, "5000", 100, 600000, false, "HTTP request timeout"),
    INT_KEY(shutdown_timeout_ms, "10000", 0, 600000, true,
            "SIGTERM: in-flight work gets this long before connections are forced closed"),
    STR_KEY(county_code, "330281", false, "6-digit county code (Yuyao 330281)"),
    DBL_KEY(circle_minutes, "15", 1, 240, false, "service circle in travel minutes"),
    DBL_KEY(detour_urban, "1.3", 1, 5, false, "road km per great-circle km, urban areas"),
    DBL_KEY(detour_rural, "1.4", 1, 5, false, "road km per great-circle km, rural areas"),
    DBL_KEY(detour_mountain, "1.8", 1, 5, false, "road km per great-circle km, mountain areas"),
    DBL_KEY(speed_urban_kmh, "20", 1, 200, false, "mean travel speed, urban areas"),
    DBL_KEY(speed_rural_kmh, "30", 1, 200, false, "mean travel speed, rural areas"),
    DBL_KEY(speed_mountain_kmh, "20", 1, 200, false, "mean travel speed, mountain areas"),
    STR_KEY(lunch_window, "11:00-12:30", false, "local time lunch is delivered (HH:MM-HH:MM)"),
    STR_KEY(dinner_window, "17:00-18:30", false, "local time dinner is delivered (HH:MM-HH:MM)"),
    INT_KEY(care_window_minutes, "120", 15, 1440, true, "length of a home-care visit's window"),
    INT_KEY(care_lead_minutes, "30", 0, 1440, true,
            "earliest start of a home-care visit after the call"),
    INT_KEY(care_visits_per_caregiver, "4", 1, 50, true,
            "home-care visits per caregiver per day (a station's care capacity)"),
    INT_KEY(priority_reserve_pct, "10", 0, 100, true,
            "share of each capacity held back for priority residents (alone, disabled, 80+)"),
    INT_KEY(booking_days, "7", 0, 60, true, "how many days ahead a meal may be booked"),
    INT_KEY(match_candidates, "8", 1, 64, true, "nearest eligible stations tried per request"),
    INT_KEY(offer_timeout_s, "180", 5, 86400, true,
            "a station must accept an offered job within this"),
    INT_KEY(max_attempts, "3", 1, 20, true,
            "stations a request is offered to before it goes to the dead-letter list"),
    INT_KEY(console_refresh_ms, "10000", 200, 600000, true,
            "each station console's jobs are re-read this often, in case a wake-up was lost"),
    INT_KEY(reconcile_interval_ms, "2000", 100, 600000, true,
            "how often unfinished and waitlisted requests are swept"),
    INT_KEY(reconcile_age_ms, "3000", 0, 600000, true,
            "an unfinished request this old is resumed by the sweep"),
    INT_KEY(orphan_grace_ms, "60000", 1000, 3600000, true,
            "a reservation whose request was never recorded is given back when this old "
            "(> 2 x pg_query_timeout_ms + 2000)"),
    STR_KEY(fault_point, "", false,
            "TESTS ONLY: crash at this point (after_begin, "
            "after_enqueue, after_finish); empty = never"),
    INT_KEY(fault_after, "0", 0, INT_MAX, false,
            "TESTS ONLY: crash the Nth time fault_point is reached"),
    /* TLS and the HTTP listener's limits (net/tls.h, net/http.c) */
    STR_KEY(tls_cert_file, "", false,
            "server certificate chain (PEM) for both listeners; empty = no TLS, which only "
            "allow_plaintext_loopback permits"),
    STR_KEY(tls_key_file, "", false, "private key of tls_cert_file (PEM); empty = in that file"),
    STR_KEY(tls_ca_file, "", false,
            "CA certificate(s) that sign client certificates (needed by tls_client_certs)"),
    CFG_CHECKED_STR_KEY(Config, tls_client_certs, "off", false,
                        "off | optional | required: client certificates on the protocol port "
                        "(verified against tls_ca_file when given; required = a station's "
                        "Hello is refused without one)",
                        check_client_certs),
    INT_KEY(allow_plaintext_loopback, "0", 0, 1, false,
            "1 = without tls_cert_file serve plaintext, only if listen_addr and http_addr are "
            "loopback addresses (development, tests)"),
    INT_KEY(http_max_conns, "256", 1, 100000, true,
            "open HTTP connections; further ones are closed at once"),
    INT_KEY(http_max_conns_per_addr, "32", 1, 100000, true,
            "open HTTP connections from one IP address; further ones are closed at once"),
    INT_KEY(http_request_deadline_ms, "10000", 100, 600000, true,
            "an HTTP request must arrive whole (TLS handshake, headers, body) within this"),
};

const CfgTable config_table = {
    .section = "dispatchd",
    .env_prefix = "CARELINE_",
    .keys = keys,
    .nkeys = ARRAY_LEN(keys),
    .size = sizeof(Config),
};

bool config_set(Config *c, const char *key, const char *value, const char *source, char *err,
                size_t errlen)
{
    return cfg_set(&config_table, c, key, value, source, err, errlen);
}

void config_defaults(Config *c)
{
    cfg_defaults(&config_table, c);
}

bool config_load_file(Config *c, const char *path, char *err, size_t errlen)
{
    return cfg_load_file(&config_table, c, path, err, errlen);
}

bool config_load_env(Config *c, char *err, size_t errlen)
{
    return cfg_load_env(&config_table, c, err, errlen);
}

bool config_validate(const Config *c, char *err, size_t errlen)
{
    if (c->obuf_soft_bytes >= c->obuf_hard_bytes)
        return cfg_fail(err, errlen, "obuf_soft_bytes (%d) must be below obuf_hard_bytes (%d)",
                        c->obuf_soft_bytes, c->obuf_hard_bytes);
    if (c->obuf_hard_bytes < c->max_frame_bytes + 4)
        return cfg_fail(err, errlen, "obuf_hard_bytes (%d) must hold one full frame (%d)",
                        c->obuf_hard_bytes, c->max_frame_bytes + 4);
    int h1, m1, h2, m2;
    const char *win[] = {c->lunch_window, c->dinner_window};
    for (int i = 0; i < 2; i++) {
        if (sscanf(win[i], "%d:%d-%d:%d", &h1, &m1, &h2, &m2) != 4 || h1 < 0 || h1 > 23 || m1 < 0 ||
            m1 > 59 || h2 < 0 || h2 > 23 || m2 < 0 || m2 > 59 || h1 * 60 + m1 >= h2 * 60 + m2)
            return cfg_fail(err, errlen, "%s '%s' must be HH:MM-HH:MM with start before end",
                            i ? "dinner_window" : "lunch_window", win[i]);
    }
    if (strlen(c->county_code) != 6 || strspn(c->county_code, "0123456789") != 6)
        return cfg_fail(err, errlen, "county_code '%s' must be 6 digits", c->county_code);
    if (!c->pg_conninfo[0])
        return cfg_fail(err, errlen, "pg_conninfo must be set");
    /* a record statement may wait one query timeout for its batch and run another (plus the
     * server's statement_timeout margin): only after that is a pending reservation orphaned */
    if (c->orphan_grace_ms <= 2 * c->pg_query_timeout_ms + 2000)
        return cfg_fail(err, errlen,
                        "orphan_grace_ms (%d) must exceed 2 x pg_query_timeout_ms + 2000 (%d)",
                        c->orphan_grace_ms, 2 * c->pg_query_timeout_ms + 2000);
    return true;
}

void config_apply_reloadable(Config *to, const Config *from)
{
    cfg_apply_reloadable(&config_table, to, from);
}

void config_print(const Config *c, FILE *out, bool with_help)
{
    cfg_print(&config_table, c, out, with_help);
}
