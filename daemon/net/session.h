/*
 * session: what a connection's frames mean — Hello and token auth, Ping, the role check,
 * and routing each request to the module that serves it. Every rejected frame gets an
 * Error with a specific code; malformed frames never reach this module (conn filters them).
 * One Sessions per server holds the routes and hooks that higher layers registered, so two
 * servers in one process never share them.
 */
#ifndef CARELINE_SESSION_H
#define CARELINE_SESSION_H

#include "base/config.h"
#include "base/metrics.h"
#include "net/authcache.h"
#include "net/conn.h"
#include "store/pg.h"

typedef struct Sessions Sessions;

/* pg (token lookups, through an AuthCache the Sessions own), cfg (limits announced in HelloOk),
 * server_id and m are borrowed and must outlive the Sessions. */
Sessions *sessions_new(PgPool *pg, const Config *cfg, const char *server_id, Metrics *m);
/* sessions_free(NULL) is a no-op. Free the PgPool first (every token lookup answered). */
void sessions_free(Sessions *ss);
/* The token checker the Sessions own, for the other doors (the HTTP bearer token). */
AuthCache *sessions_authcache(Sessions *ss);

/* Handles one frame; takes ownership of env. */
void session_handle(Sessions *ss, Conn *c, Envelope *env);
/* The connection ends: tells the close hooks. Called by the server's ConnClosedCb. */
void session_closed(Sessions *ss, Conn *c);

/* A module's handler for one message type; takes ownership of env. It must answer the
 * request exactly once (reply or Error with env->seq), possibly later from a callback,
 * bracketing asynchronous work with conn_inflight_begin/end and conn_ref/unref. arg is what
 * the module registered with the route. */
typedef void (*SessionHandler)(void *arg, Conn *c, Envelope *env);

/* Installs the handler for a body case (at start-up, before the loop runs). */
void session_route(Sessions *ss, Careline__V1__Envelope__BodyCase body, SessionHandler h,
                   void *arg);

/* For modules that track sessions (e.g. stations): after a successful Hello (a station's
 * backlog is pushed from here), and when an authenticated connection ends. One of each. */
typedef void (*SessionHook)(void *arg, Conn *c);
void session_on_auth(Sessions *ss, SessionHook h, void *arg);
void session_on_close(Sessions *ss, SessionHook h, void *arg);

#endif
