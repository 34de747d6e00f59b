/*
 * tls: one server SSL_CTX shared by both listeners. Certificates are read once at start;
 * each accepted connection gets its own SSL, handed to an OpenSSL bufferevent that runs the
 * handshake on the loop. Hostile or confused peers (plaintext on a TLS port, scanners) are
 * counted on every connection but logged at a bounded rate, so a flood cannot fill the log.
 */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define TLS_LOG_WINDOW_MS 10000 /* at most TLS_LOG_LINES handshake failures logged per window */
#define TLS_LOG_LINES     5
/* TLS 1.2 suites: forward secret AEAD only; TLS 1.3 keeps OpenSSL's defaults (all AEAD) */
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"

struct Tls {
    SSL_CTX *ctx;
    Metrics *metrics;        /* borrowed */
    int client_certs;        /* 0 off, 1 optional, 2 required (tls_client_certs) */
    int64_t log_window_ms;   /* start of the current logging window */
    unsigned log_lines;      /* failures logged in it */
    uint64_t log_suppressed; /* failures not logged in it */
};

bool tls_addr_is_loopback(const char *addr)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, addr, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static int client_certs_mode(const char *s)
{
    return strcmp(s, "required") == 0 ? 2 : strcmp(s, "optional") == 0 ? 1 : 0;
}

/* The reason of OpenSSL's last error, for start-up messages (the queue is cleared). */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, len, "%s", r ? r : errno ? strerror(errno) : "unknown error");
    ERR_clear_error();
    return buf;
}

static bool plaintext_allowed(const Config *cfg, char *err, size_t errlen)
{
    const char *addrs[] = {cfg->listen_addr, cfg->http_addr};
    const char *keys[] = {"listen_addr", "http_addr"};
    if (!cfg->allow_plaintext_loopback) {
        snprintf(err, errlen,
                 "tls_cert_file is not set: dispatchd serves TLS only (give tls_cert_file and "
                 "tls_key_file; `make run` makes development ones under var/tls/). For a "
                 "loopback-only development daemon set allow_plaintext_loopback = 1");
        return false;
    }
    for (int i = 0; i < 2; i++) {
        if (!tls_addr_is_loopback(addrs[i])) {
            snprintf(err, errlen,
                     "tls_cert_file is not set and %s = %s is not a loopback address: "
                     "allow_plaintext_loopback covers only 127.0.0.1 and ::1; give "
                     "tls_cert_file and tls_key_file",
                     keys[i], addrs[i]);
            return false;
        }
    }
    if (client_certs_mode(cfg->tls_client_certs)) {
        snprintf(err, errlen,
                 "tls_client_certs = %s needs TLS: give tls_cert_file and tls_key_file",
                 cfg->tls_client_certs);
        return false;
    }
    return true;
}

bool tls_new(const Config *cfg, Metrics *m, Tls **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->tls_cert_file[0]) {
        if (!plaintext_allowed(cfg, err, errlen))
            return false;
        log_warn("TLS is off: plaintext on loopback only (allow_plaintext_loopback = 1)");
        return true;
    }
    char why[256];
    Tls *t = xcalloc(1, sizeof(*t));
    t->metrics = m;
    t->client_certs = client_certs_mode(cfg->tls_client_certs);
    const char *key = cfg->tls_key_file[0] ? cfg->tls_key_file : cfg->tls_cert_file;
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (!t->ctx) {
        snprintf(err, errlen, "TLS: cannot make a context: %s", ssl_reason(why, sizeof(why)));
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                    SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(t->ctx, TLS12_CIPHERS) != 1) {
        snprintf(err, errlen, "TLS: cipher list: %s", ssl_reason(why, sizeof(why)));
        goto fail;
    }
    errno = 0;
    if (SSL_CTX_use_certificate_chain_file(t->ctx, cfg->tls_cert_file) != 1) {
        snprintf(err, errlen, "tls_cert_file %s: cannot load the certificate: %s",
                 cfg->tls_cert_file, ssl_reason(why, sizeof(why)));
        goto fail;
    }
    errno = 0;
    if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "tls_key_file %s: cannot load the key: %s", key,
                 ssl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_check_private_key(t->ctx) != 1) {
        snprintf(err, errlen, "tls_key_file %s does not match tls_cert_file %s: %s", key,
                 cfg->tls_cert_file, ssl_reason(why, sizeof(why)));
        goto fail;
    }
    if (t->client_certs) {
        if (!cfg->tls_ca_file[0]) {
            snprintf(err, errlen,
                     "tls_client_certs = %s needs tls_ca_file (the CA that signs client "
                     "certificates)",
                     cfg->tls_client_certs);
            goto fail;
        }
        errno = 0;
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_ca_file);
        if (!names || SSL_CTX_load_verify_locations(t->ctx, cfg->tls_ca_file, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            snprintf(err, errlen, "tls_ca_file %s: cannot load the CA: %s", cfg->tls_ca_file,
                     ssl_reason(why, sizeof(why)));
            goto fail;
        }
        SSL_CTX_set_client_CA_list(t->ctx, names);
    }
    log_info("TLS on both listeners (certificate %s; client certificates %s)", cfg->tls_cert_file,
             cfg->tls_client_certs);
    *out = t;
    return true;
fail:
    tls_free(t);
    return false;
}

void tls_free(Tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

SSL *tls_ssl_new(Tls *t, TlsPort port)
{
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl)
        return NULL;
    /* asked for, verified when given; "required" is enforced per role at Hello (conn.h) */
    if (port == TLS_PORT_PROTO && t->client_certs)
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    else
        SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    return ssl;
}

/* Reasons OpenSSL gives when the first bytes are not a TLS record: an HTTP request, our
 * own length-prefixed frames, anything else. */
static bool not_tls(unsigned long e)
{
    if (ERR_GET_LIB(e) != ERR_LIB_SSL)
        return false;
    switch (ERR_GET_REASON(e)) {
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
        return true;
    default:
        return false;
    }
}

unsigned long tls_bev_error(struct bufferevent *bev)
{
    /* libevent stores SSL_get_error's code (a small number, no library) and then the
     * error queue; it pops them last first */
    unsigned long best = 0, e;
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        if (ERR_GET_LIB(e) == ERR_LIB_SSL || (ERR_GET_LIB(e) && !best))
            best = e;
    }
    return best;
}

void tls_handshake_failed(Tls *t, const char *peer, unsigned long e)
{
    bool plain = not_tls(e);
    if (plain)
        t->metrics->tls_plaintext_refused++;
    else
        t->metrics->tls_handshake_failed++;
    int64_t now = util_now_ms();
    if (now - t->log_window_ms >= TLS_LOG_WINDOW_MS) {
        if (t->log_suppressed)
            log_warn("TLS: %llu more failed handshakes in the last %d s were not logged",
                     (unsigned long long)t->log_suppressed, TLS_LOG_WINDOW_MS / 1000);
        t->log_window_ms = now;
        t->log_lines = 0;
        t->log_suppressed = 0;
    }
    if (t->log_lines >= TLS_LOG_LINES) {
        t->log_suppressed++;
        return;
    }
    t->log_lines++;
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    log_warn("TLS handshake from %s failed: %s%s", peer,
             plain ? "not TLS (plaintext sent to a TLS port): " : "", r ? r : "connection closed");
}

void tls_handshake_done(Tls *t)
{
    t->metrics->tls_handshakes++;
}

bool tls_peer_cert_verified(const SSL *ssl)
{
    X509 *peer = SSL_get0_peer_certificate(ssl);
    return peer && SSL_get_verify_result(ssl) == X509_V_OK;
}
