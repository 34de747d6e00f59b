/*
 * console_link: one non-blocking, framed connection to dispatchd for a poll()-driven client
 * (bin/station-console). Unlike cl.h nothing here ever waits: connect() is started and
 * finished from the poll loop, sends are queued and flushed when the socket is writable,
 * and received bytes are cut into frames (4-byte big-endian length + one Envelope) as they
 * arrive. A link is either down (fd -1) or open; any failure is reported once with a reason
 * and the caller closes it (and schedules its own reconnect). With TLS the handshake runs
 * from the same poll loop after the TCP connect; the link is "established" once it is done.
 */
#ifndef CARELINE_CONSOLE_LINK_H
#define CARELINE_CONSOLE_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include "cl.h"
#include "common/util.h"

typedef struct ClinkConn ClinkConn;

/* tls: borrowed context for every connection of the link (it must outlive the link);
 * NULL = plaintext. */
ClinkConn *clink_new(TlsClient *tls);
/* Closes the link if open and frees it; clink_free(NULL) is a no-op. */
void clink_free(ClinkConn *l);

/* Starts a non-blocking connect to host:port (a numeric address or a name, resolved here
 * with getaddrinfo, which may block briefly for a name). Returns false with a reason in err
 * when it failed at once (e.g. ECONNREFUSED on loopback); true means "in progress or done":
 * watch clink_fd() for clink_events() and call clink_io(). */
bool clink_connect(ClinkConn *l, const char *host, int port, char *err, size_t errlen) MUSTCHECK;
/* Closes the socket and drops buffered input and output; the link is down again. */
void clink_close(ClinkConn *l);

/* The socket, or -1 while down. */
int clink_fd(const ClinkConn *l);
/* poll() events wanted now: POLLIN, plus POLLOUT while connecting or output is queued. */
short clink_events(const ClinkConn *l);
/* true once the TCP connection is established and, with TLS, its handshake done. */
bool clink_established(const ClinkConn *l);

/* Does the I/O poll() reported (revents). Returns false with a reason in err when the
 * connection failed or the peer closed it; the caller then calls clink_close(). Received
 * frames are taken out with clink_next(). A refused server certificate fails here, with
 * tls_client.h's sentence. */
bool clink_io(ClinkConn *l, short revents, char *err, size_t errlen) MUSTCHECK;

/* The next complete frame already received, or NULL. *bad is set (with err) when the bytes
 * are not a valid frame: the stream can no longer be trusted, close the link. The caller
 * frees the envelope with cl_free(). */
ClEnvelope *clink_next(ClinkConn *l, bool *bad, char *err, size_t errlen);

/* Queues env (seq as given) and tries to write at once. Returns false when the link is not
 * established or more than 1 MiB is already queued (a stuck peer). */
bool clink_send(ClinkConn *l, const ClEnvelope *env) MUSTCHECK;

#endif
