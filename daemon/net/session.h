/*
 * session: what a connection's frames mean — Hello and token auth, Ping, the role check,
 * and routing each request to the module that serves it. Every rejected frame gets an
 * Error with a specific code; malformed frames never reach this module (conn filters them).
 */
#ifndef CARELINE_SESSION_H
#define CARELINE_SESSION_H

#include "net/conn.h"

/* Handles one frame; takes ownership of env. Called from conn's read path only. */
void session_handle(Conn *c, Envelope *env);

/* A module's handler for one message type; takes ownership of env. It must answer the
 * request exactly once (reply or Error with env->seq), possibly later from a callback,
 * bracketing asynchronous work with conn_inflight_begin/end and conn_ref/unref. */
typedef void (*SessionHandler)(Conn *c, Envelope *env);

/* Installs the handler for a body case (at start-up, before the loop runs). */
void session_route(Careline__V1__Envelope__BodyCase body, SessionHandler h);

/* Called by conn when the connection ends (for modules that track sessions, e.g. stations). */
typedef void (*SessionCloseHook)(Conn *c);
void session_on_close(SessionCloseHook h);
void session_closed(Conn *c);

/* Called after a successful Hello (e.g. a station's backlog is pushed from here). */
typedef void (*SessionAuthHook)(Conn *c);
void session_on_auth(SessionAuthHook h);

#endif
