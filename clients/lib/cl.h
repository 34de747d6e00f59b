/*
 * cl: a small blocking client for the Careline protocol, for the command-line clients and
 * the tests. Every call that waits takes a timeout in milliseconds; nothing waits forever.
 * Not for use inside dispatchd (it blocks).
 */
#ifndef CARELINE_CL_H
#define CARELINE_CL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "careline.pb-c.h"
#include "tls_client.h"

typedef Careline__V1__Envelope ClEnvelope;
typedef struct ClConn ClConn;

/*
 * Starts a nonblocking TCP connect to host:port (numeric IP or a name resolved here) and
 * returns the socket (close-on-exec, TCP_NODELAY); *in_progress tells that the connect has
 * not completed yet (wait for POLLOUT, then read SO_ERROR). -1 with err on failure.
 */
int cl_dial(const char *host, int port, bool *in_progress, char *err, size_t errlen);

/* Connects to host:port (numeric IP or a name resolved here) and, with tls, completes the
 * TLS handshake within the same timeout (the certificate checked as tls_client.h says);
 * tls NULL = plaintext. NULL with err on failure (a refused certificate says why). tls is
 * borrowed and must outlive the connection. */
ClConn *cl_open(const char *host, int port, TlsClient *tls, int timeout_ms, char *err,
                size_t errlen);
/* cl_open with a TLS context built from o for this one connection (tlsc_new: --plaintext
 * only to a loopback host); the context is freed with the connection. */
ClConn *cl_open_opts(const char *host, int port, const TlsClientOpts *o, int timeout_ms, char *err,
                     size_t errlen);
/* cl_open without TLS (tests against a loopback daemon that allows plaintext). */
ClConn *cl_connect(const char *host, int port, int timeout_ms, char *err, size_t errlen);
void cl_close(ClConn *c);
/* The socket (raw reads and writes on it bypass TLS). */
int cl_fd(const ClConn *c);

/* Sends one frame (length prefix + packed env). */
bool cl_send(ClConn *c, const ClEnvelope *env);
/* Sends bytes as they are (tests of bad framing). */
bool cl_send_raw(ClConn *c, const void *buf, size_t len);

/* Up to len bytes as they come (through TLS when the connection has it): > 0 bytes read,
 * 0 when the peer closed, -1 on timeout or error (tests speaking HTTP over cl_open). */
long cl_recv_raw(ClConn *c, void *buf, size_t len, int timeout_ms);

/* Next frame, or NULL on timeout (err "timeout"), EOF (err "closed") or a bad frame.
 * Free with cl_free(). */
ClEnvelope *cl_recv(ClConn *c, int timeout_ms, char *err, size_t errlen);
void cl_free(ClEnvelope *env);

/* Sends env with a fresh seq and waits for the reply carrying that seq; pushes that arrive
 * meanwhile (seq 0) go to on_push if given, else are dropped. */
ClEnvelope *cl_call(ClConn *c, ClEnvelope *env, int timeout_ms, char *err, size_t errlen,
                    void (*on_push)(ClEnvelope *push, void *arg), void *arg);

/* Hello with the token; returns the reply (HelloOk or Error) or NULL on I/O failure. */
ClEnvelope *cl_hello(ClConn *c, const char *token, const char *client_name, int timeout_ms,
                     char *err, size_t errlen);

/* Reads a token for `role` (and station id when > 0) from a tokens file written by
 * deploy/make-tokens.sh (lines "ROLE STATION_ID TOKEN NAME"). Returns a malloc'd string. */
char *cl_token_from_file(const char *path, const char *role, long station_id);

#endif
