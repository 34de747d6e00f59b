/*
 * tls_client: the one TLS client setup every Careline client uses (careline-cli, bureau,
 * station-console, hotline-gw, loadgen and the tests): a context that verifies dispatchd's
 * certificate against a CA file (TLS 1.2 at least), a per-connection SSL that checks the
 * host name or IP address the client dialled, and one sentence saying why a handshake
 * failed (unknown CA, expired, wrong host, ...). Plaintext is only for a loopback daemon,
 * and only when asked for (--plaintext). Nothing here blocks or does I/O: the callers drive
 * the handshake on their own sockets (poll) or bufferevents (libevent).
 */
#ifndef CARELINE_TLS_CLIENT_H
#define CARELINE_TLS_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/util.h"

/* Where `make run` writes its development CA; the default of --ca. */
#define TLSC_DEFAULT_CA "var/tls/ca.pem"

/* Help lines for the options tlsc_arg() takes, for the clients' usage texts. */
#define TLSC_USAGE                                                                                 \
    "  --ca FILE       CA certificate(s) dispatchd's certificate must chain to\n"                  \
    "                  (default " TLSC_DEFAULT_CA ", written by `make run`)\n"                     \
    "  --cert FILE     client certificate (station consoles, when the daemon asks)\n"              \
    "  --key FILE      its private key (default: NAME.key beside NAME.pem, else the\n"             \
    "                  --cert file)\n"                                                             \
    "  --plaintext     no TLS: only for a daemon on 127.0.0.1/::1 that allows it\n"

typedef struct {
    const char *ca_file;   /* NULL or "" = TLSC_DEFAULT_CA */
    const char *cert_file; /* client certificate chain (PEM); NULL = none */
    const char *key_file;  /* its key; NULL = NAME.key beside NAME.pem, else cert_file */
    bool plaintext;        /* no TLS (refused unless the host is a loopback address) */
} TlsClientOpts;

typedef struct TlsClient TlsClient;

/* Takes argv[*i] if it is --ca/--cert/--key (with its value, advancing *i) or --plaintext;
 * returns false (nothing taken) otherwise or when the value is missing. */
bool tlsc_arg(TlsClientOpts *o, int argc, char **argv, int *i);

/* true for 127.0.0.0/8, ::1 and "localhost". */
bool tlsc_is_loopback(const char *host);

/* Builds the client context for connections to host. With o->plaintext, *out = NULL and
 * the call fails unless host is a loopback address. On failure returns false with a
 * sentence in err (unreadable CA file, bad certificate or key, ...). Sets SIGPIPE to
 * ignored when it has its default action (OpenSSL writes with write(2)). */
bool tlsc_new(const TlsClientOpts *o, const char *host, TlsClient **out, char *err,
              size_t errlen) MUSTCHECK;
/* tlsc_free(NULL) is a no-op. SSLs made from t must be freed first. */
void tlsc_free(TlsClient *t);
/* The CA file in use (for messages). */
const char *tlsc_ca_file(const TlsClient *t);

/* A fresh client SSL for one connection to host: SNI for a name, and the certificate must
 * be valid for host (X509_check_host) or the IP address (X509_check_ip_asc), checked during
 * the handshake. NULL with err on failure. The caller owns it (SSL_free, or hand it to a
 * bufferevent that frees it). */
SSL *tlsc_ssl(TlsClient *t, const char *host, char *err, size_t errlen);

/* After a failed handshake on ssl: one sentence naming the reason, e.g. "TLS: dispatchd's
 * certificate has expired", "... is not signed by a CA in var/tls/ca.pem (unknown CA)",
 * "... is not valid for 10.0.0.5 (wrong host)". Takes the OpenSSL error queue (cleared). */
void tlsc_explain(const TlsClient *t, const SSL *ssl, const char *host, char *err, size_t errlen);

typedef enum {
    TLSC_IO_DONE,  /* *n bytes moved */
    TLSC_IO_WAIT,  /* poll for *want (POLLIN or POLLOUT), then call again */
    TLSC_IO_EOF,   /* the peer closed the connection */
    TLSC_IO_ERROR, /* failed; errno says why */
} TlscIo;

/* One nonblocking send (wr) or recv of up to len bytes on fd, through ssl when it is not
 * NULL (plaintext otherwise). Never raises SIGPIPE. */
TlscIo tlsc_io(SSL *ssl, int fd, bool wr, void *buf, size_t len, size_t *n, short *want);

#endif
