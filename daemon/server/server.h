/*
 * server: the daemon's runtime state (one per process) — config, event base, listeners,
 * the connection list, the PostgreSQL pool and Redis link, the janitor and signals.
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
#include "net/conn.h"
#include "store/pg.h"
#include "store/rds.h"

typedef struct Server {
    Config cfg;            /* current config (reloadable keys change on SIGHUP) */
    char config_path[256]; /* for SIGHUP; empty = no file */
    char id[64];           /* server_id or host-pid */
    struct event_base *base;
    struct evconnlistener *lis; /* protocol listener */
    struct evhttp *http;
    int proto_port, http_port; /* bound ports (after ephemeral resolution) */
    PgPool *pg;
    Rds *rds;
    Conn *conns; /* open, draining and closing connections */
    size_t nconns;
    uint64_t next_conn_id;
    bool listener_paused;   /* at max_clients */
    struct event *janitor;  /* EV_PERSIST, JANITOR_HZ */
    int64_t janitor_due_ms; /* for loop-lag measurement */
    struct event *sig_term, *sig_int, *sig_hup, *sig_pipe;
    bool shutting_down;
    int64_t shutdown_deadline_ms;
    struct event *reaper;      /* frees CONN_CLOSED conns with refs == 0 */
    Conn *dead;                /* closed conns waiting for the reaper */
    struct Dispatch *dispatch; /* requests, matching, the sweep */
    struct Bureau *bureau;     /* coverage queries, snapshots */
    struct Stations *station;  /* station consoles, job updates, offer expiry */

    struct SchemaCheck *schema; /* the database's schema version check (store/schema.h) */
    int exit_code;              /* server_run's result: 0, or SCHEMA_EXIT_CODE if refused */
} Server;

#define JANITOR_HZ 10

/* Sets everything up; on failure logs why and returns false (caller exits non-zero). */
bool server_init(Server *s, const Config *cfg, const char *config_path) MUSTCHECK;
/* Runs the loop until stopped; returns the exit code. */
int server_run(Server *s);
/* Frees everything (also after a failed init). */
void server_free(Server *s);

/* Begins a graceful stop (as the first SIGTERM does). */
void server_shutdown(Server *s, const char *why);

/* Called by conn when a slot frees or a conn closes. */
void server_conn_closed(Server *s, Conn *c);

#endif
