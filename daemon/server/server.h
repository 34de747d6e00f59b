/*
 * server: the daemon's runtime state — config, event base, listeners, the connections, the
 * PostgreSQL pool and Redis link, the modules of the layers below wired together, the
 * janitor and signals. The top layer: nothing below includes it.
 * server_init binds and starts connecting to the backends without waiting for them
 * (/readyz tells when they are up); server_run runs the loop until a graceful stop ends.
 */
#ifndef CARELINE_SERVER_H
#define CARELINE_SERVER_H

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <stdbool.h>

#include "base/config.h"
#include "base/metrics.h"
#include "base/ready.h"
#include "core/env.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/session.h"
#include "net/tls.h"
#include "store/pg.h"
#include "store/rds.h"

typedef struct Server {
    Config cfg;            /* current config (reloadable keys change on SIGHUP) */
    char config_path[256]; /* for SIGHUP; empty = no file */
    int nargs;             /* the command line's key arguments, applied again on SIGHUP */
    char **args;           /* owned copies (server_keep_args) */
    char id[64];           /* server_id or host-pid */
    struct event_base *base;
    struct evconnlistener *lis; /* protocol listener */
    int proto_port;             /* bound port (after ephemeral resolution) */
    Metrics metrics;            /* this server's counters (lent to every module) */
    Ready ready; /* why not ready (lent to every module; polled ones by the janitor) */
    PgPool *pg;
    Rds *rds;
    ConnSet conns;          /* protocol connections */
    Sessions *sessions;     /* what frames mean: auth, roles, routes */
    Http *http;             /* HTTP listener and routes */
    Tls *tls;               /* both listeners' TLS; NULL = plaintext (loopback only) */
    Env env;                /* what the core and report modules borrow */
    bool listener_paused;   /* at max_clients */
    struct event *janitor;  /* EV_PERSIST, JANITOR_HZ */
    int64_t janitor_due_ms; /* for loop-lag measurement */
    struct event *sig_term, *sig_int, *sig_hup, *sig_pipe; /* server_handle_signals */
    bool shutting_down;
    int64_t shutdown_deadline_ms;
    struct Dispatch *dispatch; /* requests, matching, the sweep */
    struct Bureau *bureau;     /* coverage queries, snapshots */
    struct Admin *admin;       /* the admin API (residents, stations, tokens, settings) */
    struct Stations *station;  /* station consoles, job updates, offer expiry */

    struct Followups *followups; /* the follow-up list of callers not registered (admin/) */

    /* the settings rows followed live (server/settings_follow.c); "" = no row */
#define SETTINGS_FOLLOWED 2
    char settings[SETTINGS_FOLLOWED][16];
    int settings_base[SETTINGS_FOLLOWED]; /* the config's own values, where no row is */

    struct SchemaCheck *schema; /* the database's schema version check (store/schema.h) */
    int exit_code;              /* server_run's result: 0, or SCHEMA_EXIT_CODE if refused */
} Server;

#define JANITOR_HZ  10
#define PG_PROBE_MS 250 /* an open PostgreSQL breaker probes this often */

/* Sets everything up; on failure logs why and returns false (caller exits non-zero). Holds
 * no process-wide state: several servers may run in one process, each on its own base. */
bool server_init(Server *s, const Config *cfg, const char *config_path) MUSTCHECK;
/* Keeps copies of the command line's "--KEY=VALUE" / "--KEY VALUE" arguments: a SIGHUP
 * reloads defaults < file < environment < these, the order the config was made in at start,
 * so a key given on the command line keeps its value. */
void server_keep_args(Server *s, int nargs, char *const *args);
/* TERM/INT stop gracefully (a second one at once), HUP reloads, PIPE is ignored. Only one
 * event base per process can own signals, so only main calls this. */
void server_handle_signals(Server *s);
/* Runs the loop until stopped; returns the exit code. */
int server_run(Server *s);
/* Frees everything (also after a failed init). */
void server_free(Server *s);

/* Begins a graceful stop (as the first SIGTERM does). */
void server_shutdown(Server *s, const char *why);

/* /healthz, /readyz and /metrics on the server's Http (server/probes.c). */
void probes_install(Server *s);
/* Follows the admin's settings rows that override config keys (server/settings_follow.c):
 * start LISTENing; apply takes s->cfg's values as the config's own (a SIGHUP just made it)
 * and puts the last rows read over them. */
void settings_follow_start(Server *s);
void settings_follow_apply(Server *s);
/* Raises or clears the not-ready reasons the server polls (once per janitor tick). */
void probes_poll(Server *s);

#endif
