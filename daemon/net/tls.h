/*
 * tls: the daemon's TLS server side for both listeners (protocol and HTTP) — one SSL_CTX
 * with the certificate, key and (for client certificates) CA from the config, TLS 1.2 at
 * least with OpenSSL's secure defaults, and the rule for plaintext: only when every
 * listener is on a loopback address and allow_plaintext_loopback = 1; otherwise a missing
 * certificate is a start-up error. Handshakes run inside libevent's OpenSSL bufferevents
 * (never blocking the loop); their failures are sorted here (plaintext sent to a TLS port,
 * or another handshake failure) and logged at a bounded rate.
 */
#ifndef CARELINE_TLS_H
#define CARELINE_TLS_H

#include <event2/bufferevent.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "base/metrics.h"

typedef struct Tls Tls;

typedef enum {
    TLS_PORT_PROTO, /* the protocol listener: client certificates as tls_client_certs says */
    TLS_PORT_HTTP,  /* the HTTP listener: never asks for a client certificate */
} TlsPort;

/* Applies the plaintext rule to cfg and loads the certificate, key and CA. *out = NULL when
 * plaintext is allowed and no certificate is configured. Returns false with a sentence in
 * err (missing or unreadable file, key not matching, plaintext refused) — a start-up error.
 * m is borrowed for the counters. Not reloadable (SIGHUP keeps the loaded files). */
bool tls_new(const Config *cfg, Metrics *m, Tls **out, char *err, size_t errlen) MUSTCHECK;
/* tls_free(NULL) is a no-op; every SSL made by tls_ssl_new must be freed first. */
void tls_free(Tls *t);

/* A server SSL for one accepted connection on port; NULL if OpenSSL is out of memory. */
SSL *tls_ssl_new(Tls *t, TlsPort port);

/* Empties the OpenSSL bufferevent's error list and returns its most telling error (an
 * SSL library reason when there is one), 0 when there is none. */
unsigned long tls_bev_error(struct bufferevent *bev);

/* A handshake on a connection from peer ("ip:port") failed with OpenSSL error e (0 = the
 * peer closed or the socket failed): counts it (tls_plaintext_refused when the peer spoke
 * something other than TLS, else tls_handshake_failed) and logs it — at most a few lines per
 * 10 s, with a count of the lines suppressed. */
void tls_handshake_failed(Tls *t, const char *peer, unsigned long e);
/* A handshake completed. */
void tls_handshake_done(Tls *t);

/* true when the peer of ssl presented a certificate that verified against tls_ca_file. */
bool tls_peer_cert_verified(const SSL *ssl);

/* true when addr is 127.0.0.0/8 or ::1 (an IP literal; anything else is false). */
bool tls_addr_is_loopback(const char *addr);

#endif
