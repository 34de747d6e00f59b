/*
 * config: dispatchd's keys, the single definition of each (name, type, default, bounds,
 * reloadable, meaning), and the checks that span keys. Loading, the environment, the
 * command line and printing are common/cfg's, shared with the clients.
 */
#include "base/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

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
            "libpq conninfo; a host name is resolved once at start (hostaddr= added); "
            "secrets via PGPASSFILE/PGPASSWORD, never here"),
    INT_KEY(pg_pool_size, "4", 1, 64, false, "PostgreSQL connections"),
    INT_KEY(pg_query_timeout_ms, "5000", 50, 600000, false,
            "a query slower than this fails and its connection is reset (not reloadable: "
            "work in flight and the batch queues keep the value they started with)"),
    INT_KEY(pg_max_queue, "10000", 1, 1000000, false,
            "queries waiting for a connection before OVERLOADED"),
    INT_KEY(pg_stall_ms, "500", 0, 600000, false,
            "statements running and no answer from PostgreSQL for this long (a probe is sent "
            "half-way), or no healthy connection, opens the circuit breaker: submissions get "
            "UNAVAILABLE at once and /readyz 503 until PostgreSQL answers; 0 = no breaker"),
    INT_KEY(submit_deadline_ms, "4000", 100, 600000, true,
            "a submission is answered within this (or the client's shorter deadline_ms): "
            "UNAVAILABLE saying what was recorded, and work not yet sent is dropped"),
    INT_KEY(session_lease_ms, "30000", 300, 3600000, false,
            "terminal sessions of a daemon that has not renewed its lease for this long are "
            "closed by any other daemon; renewed every third of it"),
    STR_KEY(redis_host, "127.0.0.1", false, "Redis address; a host name is resolved once at start"),
    INT_KEY(redis_port, "56379", 1, 65535, false, "Redis port"),
    INT_KEY(redis_op_timeout_ms, "2000", 50, 600000, true,
            "a Redis reply later than this resets the link"),
    INT_KEY(redis_max_inflight, "100000", 1, 10000000, false,
            "Redis commands in flight before OVERLOADED"),
    /* Redis AUTH (issue 12) */
    STR_KEY(redis_user, "careline", false,
            "Redis ACL user sent with AUTH; empty = Redis' default user"),
    STR_KEY(redis_password_file, "", false,
            "file whose first line is the Redis password (mode 600; re-read on every "
            "reconnect); empty = no AUTH"),
    INT_KEY(max_frame_bytes, "65536", 64, 16777216, false, "largest frame payload accepted"),
    INT_KEY(max_clients, "10000", 1, 1000000, false,
            "protocol connections; the listener pauses while at the limit"),
    INT_KEY(hello_timeout_ms, "10000", 100, 3600000, true,
            "a new connection must send Hello within this"),
    INT_KEY(idle_timeout_ms, "120000", 100, 86400000, true,
            "a connection that sends nothing for this long is closed"),
    INT_KEY(heartbeat_interval_ms, "30000", 100, 3600000, true,
            "advertised in HelloOk; clients Ping at least this often (the daemon pings a quiet "
            "station console about as often, looked at once a second)"),
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
    /* ---- token checks and abuse limits (net/authcache.c) ---- */
    INT_KEY(auth_cache_ttl_ms, "10000", 0, 3600000, true,
            "a token that passed is trusted this long without a query, so a revoked token "
            "still opens sessions at most this long; 0 = no cache"),
    INT_KEY(auth_negative_ttl_ms, "5000", 0, 600000, true,
            "a token that failed is refused this long without a query; 0 = no cache"),
    INT_KEY(auth_cache_entries, "1024", 16, 1000000, false,
            "entries in each token cache (passed, failed); the oldest makes room"),
    INT_KEY(auth_max_inflight, "4", 1, 64, true,
            "token lookups in PostgreSQL at once (ahead of the pool queue, not in it)"),
    INT_KEY(auth_max_waiting, "1024", 0, 1000000, true,
            "token lookups waiting for that budget; beyond, OVERLOADED / HTTP 503 at once"),
    INT_KEY(auth_fail_limit, "20", 0, 1000000, true,
            "failed authentications from one address within auth_fail_window_ms that lock "
            "it out (AUTH_FAILED / HTTP 429, no query); 0 = no limit"),
    INT_KEY(auth_fail_window_ms, "60000", 1000, 86400000, true,
            "the window failed authentications are counted in"),
    INT_KEY(auth_lockout_ms, "60000", 1000, 86400000, true,
            "how long a locked-out address is refused"),
    INT_KEY(auth_addr_entries, "4096", 16, 1000000, false,
            "addresses tracked for failed authentications; the oldest makes room"),
    /* ---- end of token checks ---- */
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
            "each station console's stream is read this often, in case a wake-up was lost"),
    INT_KEY(reconcile_interval_ms, "2000", 100, 600000, false,
            "how often unfinished and waitlisted requests are swept (not reloadable: the "
            "sweep's timer is set at start)"),
    INT_KEY(reconcile_age_ms, "3000", 0, 600000, true,
            "an unfinished request this old is resumed by the sweep"),
    INT_KEY(orphan_grace_ms, "60000", 1000, 3600000, true,
            "a reservation whose request was never recorded is given back when this old "
            "(> 2 x pg_query_timeout_ms + 2000)"),
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
    /* ---- personal data (issue 12) ---- */
    STR_KEY(phone_hash_key_file, "", false,
            "file holding the HMAC-SHA256 key of caller-phone hashes (>= 32 bytes, mode 600; "
            "deploy/run-dev.sh makes one); required. Changing it orphans earlier hashes"),
/* ---- end personal data ---- */
#ifdef CARELINE_TESTING /* CONFIG_TEST_ONLY_KEYS: last in the table */
    STR_KEY(fault_point, "", false,
            "TESTS ONLY: crash at this point (after_begin, before_enqueue, "
            "after_enqueue, after_finish); empty = never"),
    INT_KEY(fault_after, "0", 0, INT_MAX, false,
            "TESTS ONLY: crash the Nth time fault_point is reached"),
#endif
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
    unsigned char key[CONFIG_KEY_MAX];
    size_t klen;
    bool key_ok = config_read_phone_key(c, key, &klen, err, errlen);
    OPENSSL_cleanse(key, sizeof(key));
    if (!key_ok)
        return false;
    if (c->orphan_grace_ms <= 2 * c->pg_query_timeout_ms + 2000)
        return cfg_fail(err, errlen,
                        "orphan_grace_ms (%d) must exceed 2 x pg_query_timeout_ms + 2000 (%d)",
                        c->orphan_grace_ms, 2 * c->pg_query_timeout_ms + 2000);
    return true;
}

bool config_read_phone_key(const Config *c, unsigned char key[CONFIG_KEY_MAX], size_t *len,
                           char *err, size_t errlen)
{
    const char *path = c->phone_hash_key_file;
    if (!path[0])
        return cfg_fail(err, errlen,
                        "phone_hash_key_file must be set: a file of at least %d random bytes "
                        "(e.g. head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > FILE; "
                        "chmod 600 FILE)",
                        CONFIG_KEY_MIN);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return cfg_fail(err, errlen, "phone_hash_key_file %s: %s", path, strerror(e));
    }
    ssize_t n = 0;
    if (!S_ISREG(st.st_mode) || (st.st_mode & S_IROTH) || (st.st_mode & S_IWOTH) ||
        (st.st_mode & S_IWGRP)) {
        close(fd);
        return cfg_fail(err, errlen,
                        "phone_hash_key_file %s must be a regular file that others cannot read or "
                        "write (chmod 600 %s)",
                        path, path);
    }
    n = read(fd, key, CONFIG_KEY_MAX);
    /* one more byte would mean a longer file than any key */
    unsigned char more;
    bool longer = n == CONFIG_KEY_MAX && read(fd, &more, 1) == 1;
    int e = errno;
    close(fd);
    if (n < 0)
        return cfg_fail(err, errlen, "phone_hash_key_file %s: %s", path, strerror(e));
    while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r'))
        n--;
    if (n < CONFIG_KEY_MIN || longer)
        return cfg_fail(err, errlen,
                        "phone_hash_key_file %s holds %s; a key is %d..%d bytes (a short key "
                        "makes phone hashes guessable)",
                        path, longer ? "too many bytes" : "too few bytes", CONFIG_KEY_MIN,
                        CONFIG_KEY_MAX);
    *len = (size_t)n;
    return true;
}

/* Appends s[0..n) to out (cap bytes, NUL-terminated), cutting what does not fit. */
static void put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    size_t room = cap - 1 - *o;
    n = n < room ? n : room;
    memcpy(out + *o, s, n);
    *o += n;
    out[*o] = '\0';
}

/* A conninfo's password as "****", in place (s holds cap bytes): key=value form
 * ("password=x", "password = 'a b'") and URI form ("postgresql://user:x@host"). */
static void mask_conninfo(char *s, size_t cap)
{
    char out[CONFIG_STR_MAX];
    ASSERT(cap >= sizeof(out));
    size_t o = 0;
    out[0] = '\0';
    const char *p = s, *user = strstr(s, "://"), *at = NULL, *colon = NULL;
    if (user) {
        user += 3;
        at = strchr(user, '@');
        const char *slash = strchr(user, '/');
        if (at && slash && slash < at)
            at = NULL; /* an '@' in the path or the parameters, not userinfo */
        colon = at ? memchr(user, ':', (size_t)(at - user)) : NULL;
    }
    while (*p) {
        if (colon && p == colon + 1) { /* URI userinfo: user:PASSWORD@ */
            put(out, sizeof(out), &o, "****", 4);
            p = at;
            continue;
        }
        const char *v = p + 8;
        if (strncasecmp(p, "password", 8) == 0 && (p == s || isspace((unsigned char)p[-1]))) {
            while (*v == ' ')
                v++;
            if (*v == '=') {
                v++;
                while (*v == ' ')
                    v++;
                const char *end = v;
                if (*v == '\'') {
                    for (end = v + 1; *end && *end != '\''; end++)
                        if (*end == '\\' && end[1])
                            end++;
                    if (*end)
                        end++;
                } else {
                    while (*end && !isspace((unsigned char)*end))
                        end++;
                }
                put(out, sizeof(out), &o, p, (size_t)(v - p));
                put(out, sizeof(out), &o, "****", 4);
                p = end;
                continue;
            }
        }
        put(out, sizeof(out), &o, p, 1);
        p++;
    }
    memcpy(s, out, o + 1);
}

void config_apply_reloadable(Config *to, const Config *from)
{
    cfg_apply_reloadable(&config_table, to, from);
}

bool config_load(Config *c, const char *path, int nargs, char *const *args, char *err,
                 size_t errlen)
{
    config_defaults(c);
    if (path && !config_load_file(c, path, err, errlen))
        return false;
    if (!config_load_env(c, err, errlen))
        return false;
    for (int i = 0; i < nargs; i++) {
        if (strncmp(args[i], "--", 2) != 0)
            return cfg_fail(err, errlen, "unexpected argument '%s'", args[i]);
        if (!cfg_argv(&config_table, c, nargs, (char **)args, &i, err, errlen))
            return false;
    }
    return true;
}

/* ---- host names ---- */

static bool is_ip(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* The first address of the host name as text into ip. Blocks on DNS. */
static bool resolve_one(const char *key, const char *host, char *ip, size_t iplen, char *err,
                        size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc != 0 || !ai)
        return cfg_fail(err, errlen,
                        "%s: cannot resolve host name '%s' at start (%s); give an IP address or "
                        "a name that resolves",
                        key, host, rc ? gai_strerror(rc) : "no address");
    const void *a = ai->ai_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
    bool ok = inet_ntop(ai->ai_family, a, ip, (socklen_t)iplen) != NULL;
    freeaddrinfo(ai);
    return ok || cfg_fail(err, errlen, "%s: cannot print the address of '%s'", key, host);
}

/* Appends "'value'" to out with libpq's quoting (\' and \\). */
static void conninfo_quote(char *out, size_t n, const char *v)
{
    size_t len = strlen(out);
    if (len + 1 < n)
        out[len++] = '\'';
    for (; *v && len + 2 < n; v++) {
        if (*v == '\'' || *v == '\\')
            out[len++] = '\\';
        out[len++] = *v;
    }
    if (len + 1 < n)
        out[len++] = '\'';
    out[len < n ? len : n - 1] = '\0';
}

/* The hostaddr list for a host list: "" for a socket directory or an empty entry, the address
 * for an IP or a name. *named tells whether any entry was a name. */
static bool hostaddr_list(const char *hosts, char *addrs, size_t n, char *note, size_t notelen,
                          bool *named, char *err, size_t errlen)
{
    char list[CONFIG_STR_MAX];
    snprintf(list, sizeof(list), "%s", hosts);
    addrs[0] = '\0';
    *named = false;
    char *p = list;
    for (int i = 0;; i++) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        char ip[INET6_ADDRSTRLEN];
        const char *addr = ""; /* a socket directory or the default */
        if (*p && *p != '/' && *p != '@') {
            addr = p;
            if (!is_ip(p)) {
                if (!resolve_one("pg_conninfo", p, ip, sizeof(ip), err, errlen))
                    return false;
                size_t len = strlen(note);
                snprintf(note + len, notelen - len, "%spg_conninfo host %s = hostaddr %s",
                         len ? "; " : "", p, ip);
                addr = ip;
                *named = true;
            }
        }
        size_t len = strlen(addrs), alen = strlen(addr);
        if (len + 1 + alen >= n)
            return cfg_fail(err, errlen, "pg_conninfo: the host list is too long");
        if (i)
            addrs[len++] = ',';
        memcpy(addrs + len, addr, alen + 1);
        if (!comma)
            break;
        p = comma + 1;
    }
    return true;
}

static bool resolve_conninfo(Config *c, char *note, size_t notelen, char *err, size_t errlen)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(c->pg_conninfo, &msg);
    if (!opts) {
        bool r = cfg_fail(err, errlen, "pg_conninfo: %s", msg ? msg : "cannot parse");
        PQfreemem(msg);
        return r;
    }
    const char *host = NULL, *hostaddr = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!strcmp(o->keyword, "host") && o->val && o->val[0])
            host = o->val;
        if (!strcmp(o->keyword, "hostaddr") && o->val && o->val[0])
            hostaddr = o->val;
    }
    bool from_env = !host && !hostaddr && !getenv("PGHOSTADDR") && getenv("PGHOST");
    if (from_env)
        host = getenv("PGHOST");
    char addrs[CONFIG_STR_MAX];
    bool named = false, ok = true;
    if (host && !hostaddr)
        ok = hostaddr_list(host, addrs, sizeof(addrs), note, notelen, &named, err, errlen);
    if (ok && named) {
        /* the same keywords, quoted, plus host (if from PGHOST) and hostaddr */
        char out[2 * CONFIG_STR_MAX] = "";
        for (PQconninfoOption *o = opts; o->keyword; o++) {
            if (!o->val)
                continue;
            size_t len = strlen(out);
            snprintf(out + len, sizeof(out) - len, "%s%s=", len ? " " : "", o->keyword);
            conninfo_quote(out, sizeof(out), o->val);
        }
        size_t len = strlen(out);
        if (from_env) {
            snprintf(out + len, sizeof(out) - len, "%shost=", len ? " " : "");
            conninfo_quote(out, sizeof(out), host);
            len = strlen(out);
        }
        snprintf(out + len, sizeof(out) - len, " hostaddr=");
        conninfo_quote(out, sizeof(out), addrs);
        len = strlen(out);
        if (len >= sizeof(c->pg_conninfo) - 1)
            ok =
                cfg_fail(err, errlen, "pg_conninfo is longer than %zu bytes once hostaddr is added",
                         sizeof(c->pg_conninfo) - 1);
        else
            memcpy(c->pg_conninfo, out, len + 1);
    }
    PQconninfoFree(opts);
    return ok;
}

bool config_resolve_hosts(Config *c, char *note, size_t notelen, char *err, size_t errlen)
{
    note[0] = '\0';
    if (!is_ip(c->redis_host)) {
        char ip[INET6_ADDRSTRLEN];
        if (!resolve_one("redis_host", c->redis_host, ip, sizeof(ip), err, errlen))
            return false;
        snprintf(note, notelen, "redis_host %s = %s", c->redis_host, ip);
        snprintf(c->redis_host, sizeof(c->redis_host), "%s", ip);
    }
    return resolve_conninfo(c, note, notelen, err, errlen);
}

/* Appends name to a "a, b" list (cut short, never overflowing). */
static void list_add(char *list, size_t n, const char *name)
{
    size_t len = strlen(list);
    snprintf(list + len, n - len, "%s%s", len ? ", " : "", name);
}

bool config_reload(const Config *cur, const Config *fresh, Config *next, ConfigReload *out)
{
    memset(out, 0, sizeof(*out));
    *next = *cur;
    config_apply_reloadable(next, fresh);
    for (size_t i = 0; i < config_table.nkeys; i++) {
        const CfgKey *k = &config_table.keys[i];
        char a[CONFIG_STR_MAX], b[CONFIG_STR_MAX];
        cfg_format(k, cur, a, sizeof(a));
        cfg_format(k, fresh, b, sizeof(b));
        if (strcmp(a, b) != 0) {
            if (k->reloadable)
                list_add(out->changed, sizeof(out->changed), k->name);
            else
                list_add(out->restart, sizeof(out->restart), k->name);
        }
    }
    return config_validate(next, out->err, sizeof(out->err));
}

void config_print(const Config *c, FILE *out, bool with_help)
{
    Config shown = *c;
    mask_conninfo(shown.pg_conninfo, sizeof(shown.pg_conninfo));
    cfg_print(&config_table, &shown, out, with_help);
}
