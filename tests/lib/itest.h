/*
 * itest: helpers for integration tests against the real servers that tests/run.sh started
 * (environment: CARELINE_BIN, CARELINE_PG_ADMIN, CARELINE_APP_CONNINFO, CARELINE_REDIS_*).
 * Start a real bin/dispatchd on ephemeral ports, make principals, run SQL, GET over HTTP.
 * Everything waits with a bound and fails the test case (t_fail) on error.
 */
#ifndef CARELINE_ITEST_H
#define CARELINE_ITEST_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <sys/types.h>

#include "cl.h"

typedef struct {
    pid_t pid;
    int proto_port;
    int http_port;
    char log_path[512];
    char port_file[512];
} Daemon;

/* Starts dispatchd with the test backends plus extra "--key=value" args (NULL-terminated;
 * a key given again overrides). Waits (bounded) until its port file appears. */
void itest_daemon_start(Daemon *d, const char *const *extra_args);
/* Starts dispatchd as itest_daemon_start does, without waiting for anything. */
void itest_daemon_spawn(Daemon *d, const char *const *extra_args);
/* Waits up to timeout_ms for dispatchd to exit by itself (no signal sent); returns its exit
 * status (128 + N when killed by signal N), or -1 while it still runs. */
int itest_daemon_wait_exit(Daemon *d, int timeout_ms);
/* Waits (bounded) until /readyz says PostgreSQL, Redis and the directory are ready. */
void itest_daemon_wait_ready(const Daemon *d);
/* itest_daemon_start + itest_daemon_wait_ready. */
void itest_daemon_up(Daemon *d, const char *const *extra_args);
/* Graceful stop that must exit 0 within 15 s; otherwise dumps the log and fails the case. */
void itest_daemon_down(Daemon *d);
/* The same with its own bound: SIGTERM, exit 0 within timeout_ms or the case fails. */
void itest_daemon_down_within(Daemon *d, int timeout_ms);
/* SIGTERM, then wait up to timeout_ms; returns the exit status (or -1 if it had to be
 * killed). */
int itest_daemon_stop(Daemon *d, int timeout_ms);
/* Prints the daemon's log (on failure, for diagnosis). */
void itest_daemon_dump_log(const Daemon *d);
/* Lines of the daemon's log that contain needle (0 when there is no log yet). */
int itest_log_count(const Daemon *d, const char *needle);
/* true while the process runs. */
bool itest_daemon_alive(const Daemon *d);

/* A blocking admin connection (superuser on the test cluster). */
PGconn *itest_pg(void);
/* Runs SQL with text params; fails the case on error; returns the result (PQclear it). */
PGresult *itest_sql(PGconn *pg, const char *sql, int n, const char *const *params);
/* itest_sql, then the first column of the first row as an integer (-1 when there is no
 * row; 0 for NULL). For counts, ids and RETURNING id. */
long long itest_sql_ll(PGconn *pg, const char *sql, int n, const char *const *params);
/* itest_sql_ll again every 10 ms until it returns want or timeout_ms has passed; returns the
 * last value (for what the daemon writes in the background). */
long long itest_wait_sql_ll(PGconn *pg, const char *sql, int n, const char *const *params,
                            long long want, int timeout_ms);
/* Creates a principal with a fresh random token; returns the token (static buffer per
 * call site: copy it). station_id <= 0 for non-station roles. */
const char *itest_make_token(PGconn *pg, const char *role, long station_id, char out[64]);

/* Connects to the daemon's protocol port (nothing sent); fails the case if it cannot. */
ClConn *itest_connect(const Daemon *d);
/* Connects to the daemon and says Hello; fails the case unless HelloOk. */
ClConn *itest_login(const Daemon *d, const char *token);

/* GET path over HTTP/1.0; returns the status, body copied into body (NUL-terminated). */
int itest_http_get(int port, const char *path, char *body, size_t bodylen);

/* GET path over HTTPS (tls, e.g. from tlsc_new) or plaintext (tls NULL) on 127.0.0.1:port;
 * the status (-1 when the connection failed: err says why), the body copied into body. */
int itest_https_get(int port, TlsClient *tls, const char *path, char *body, size_t bodylen,
                    char *err, size_t errlen);
/* Metric value from /metrics over HTTPS (itest_metric's lookup); -1 if absent. */
long long itest_metric_tls(int http_port, TlsClient *tls, const char *name);

/* Waits up to timeout_ms for the file descriptor to be closed by the peer. */
bool itest_wait_closed(ClConn *c, int timeout_ms);

/* Metric value from /metrics (a full line prefix such as
 * "careline_errors_total{code=\"AUTH_FAILED\"}"); -1 if absent. */
long long itest_metric(int http_port, const char *name);
/* The same lookup in a /metrics text already fetched (any Prometheus text exposition). */
long long itest_metric_in(const char *text, const char *name);

/* The hex HMAC-SHA256 of a normalised phone under the test stack's phone-hash key
 * (CARELINE_PHONE_HASH_KEY_FILE): what dispatchd stores in requests.caller_phone_hash. */
void itest_phone_hash(const char *phone, char hex[65]);
/* Runs cmd with sh, its stdout and stderr into out (n bytes, NUL-terminated, cut to fit);
 * returns its exit status (-1 if it did not exit). For programs that check and exit. */
int itest_sh(const char *cmd, char *out, size_t n);

#endif
