/*
 * tls_client: one SSL_CTX per client process (TLS 1.2+, peer verification on, the CA file
 * given or var/tls/ca.pem), one SSL per connection with the dialled host pinned into its
 * verify parameters, so a wrong host fails inside the handshake with its own verify code and
 * tlsc_explain can name it like the other reasons.
 */
#include "tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <openssl/err.h>
#include <signal.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct TlsClient {
    SSL_CTX *ctx;
    char ca_file[512];
};

bool tlsc_arg(TlsClientOpts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (strcmp(a, "--plaintext") == 0) {
        o->plaintext = true;
        return true;
    }
    const char **slot = strcmp(a, "--ca") == 0     ? &o->ca_file
                        : strcmp(a, "--cert") == 0 ? &o->cert_file
                        : strcmp(a, "--key") == 0  ? &o->key_file
                                                   : NULL;
    if (!slot || *i + 1 >= argc)
        return false;
    *slot = argv[++*i];
    return true;
}

bool tlsc_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* The first error on OpenSSL's queue as text (the queue is cleared). */
static void ssl_error_text(char *out, size_t len, const char *none)
{
    unsigned long e = ERR_peek_last_error();
    if (e) {
        char b[256];
        ERR_error_string_n(e, b, sizeof(b));
        /* "error:0A000086:SSL routines::certificate verify failed" -> after the last ':' */
        const char *r = strrchr(b, ':');
        snprintf(out, len, "%.150s", r && r[1] ? r + 1 : b);
    } else {
        snprintf(out, len, "%s", none);
    }
    ERR_clear_error();
}

bool tlsc_new(const TlsClientOpts *o, const char *host, TlsClient **out, char *err, size_t errlen)
{
    *out = NULL;
    if (o->plaintext) {
        if (tlsc_is_loopback(host))
            return true;
        snprintf(err, errlen,
                 "--plaintext is allowed only for a daemon on a loopback address (127.0.0.1, "
                 "::1), not %s: use TLS (--ca FILE)",
                 host);
        return false;
    }
    /* OpenSSL writes with write(2): a peer gone mid-write must be EPIPE, not a signal */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    const char *ca = o->ca_file && o->ca_file[0] ? o->ca_file : TLSC_DEFAULT_CA;
    TlsClient *t = xcalloc(1, sizeof(*t));
    snprintf(t->ca_file, sizeof(t->ca_file), "%s", ca);
    char why[200];
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx) {
        ssl_error_text(why, sizeof(why), "out of memory");
        snprintf(err, errlen, "TLS: cannot make a context: %s", why);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    /* a peer closing without close_notify reads as a plain end of stream */
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* the loop's buffers move between writes (memmove, realloc) and may be written in parts */
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    errno = 0;
    if (access(ca, R_OK) != 0 || SSL_CTX_load_verify_locations(t->ctx, ca, NULL) != 1) {
        if (errno)
            snprintf(why, sizeof(why), "%s", strerror(errno));
        else
            ssl_error_text(why, sizeof(why), "not a PEM certificate");
        snprintf(err, errlen,
                 "TLS: cannot read the CA file %s (%s): give --ca FILE (`make run` writes %s), "
                 "or --plaintext for a loopback daemon without TLS",
                 ca, why, TLSC_DEFAULT_CA);
        goto fail;
    }
    if (o->cert_file && o->cert_file[0]) {
        /* no --key: NAME.key beside NAME.pem (make-tls.sh's layout), else the --cert file */
        char sibling[600];
        size_t n = strlen(o->cert_file);
        snprintf(sibling, sizeof(sibling), "%.*s.key", (int)(n > 4 ? n - 4 : n), o->cert_file);
        const char *key = o->key_file && o->key_file[0] ? o->key_file
                          : n > 4 && !strcmp(o->cert_file + n - 4, ".pem") && !access(sibling, R_OK)
                              ? sibling
                              : o->cert_file;
        if (SSL_CTX_use_certificate_chain_file(t->ctx, o->cert_file) != 1) {
            ssl_error_text(why, sizeof(why), "unreadable");
            snprintf(err, errlen, "TLS: cannot load the client certificate %s: %s", o->cert_file,
                     why);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(t->ctx) != 1) {
            ssl_error_text(why, sizeof(why), "unreadable");
            snprintf(err, errlen, "TLS: cannot use the key %s with %s: %s", key, o->cert_file, why);
            goto fail;
        }
    }
    *out = t;
    return true;
fail:
    tlsc_free(t);
    return false;
}

void tlsc_free(TlsClient *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

const char *tlsc_ca_file(const TlsClient *t)
{
    return t->ca_file;
}

SSL *tlsc_ssl(TlsClient *t, const char *host, char *err, size_t errlen)
{
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl) {
        snprintf(err, errlen, "TLS: SSL_new failed");
        return NULL;
    }
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host)
                   : SSL_set_tlsext_host_name(ssl, host) && SSL_set1_host(ssl, host);
    if (ok != 1) {
        snprintf(err, errlen, "TLS: cannot check the certificate against '%s'", host);
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

void tlsc_explain(const TlsClient *t, const SSL *ssl, const char *host, char *err, size_t errlen)
{
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    const char *ca = t ? t->ca_file : TLSC_DEFAULT_CA;
    char why[200];
    switch (v) {
    case X509_V_OK:
        ssl_error_text(why, sizeof(why), "the connection ended during the handshake");
        snprintf(err, errlen,
                 "TLS handshake with %s failed: %s (a daemon without TLS, or one that wants a "
                 "client certificate, ends it this way)",
                 host, why);
        return;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        snprintf(err, errlen, "TLS: the certificate of %s has expired (refused)", host);
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        snprintf(err, errlen, "TLS: the certificate of %s is not valid yet (refused)", host);
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        snprintf(err, errlen,
                 "TLS: the certificate presented is not valid for %s (wrong host; refused)", host);
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        snprintf(err, errlen,
                 "TLS: the certificate of %s is not signed by a CA in %s (unknown CA; refused)",
                 host, ca);
        break;
    default:
        snprintf(err, errlen, "TLS: the certificate of %s was refused: %s", host,
                 X509_verify_cert_error_string(v));
        break;
    }
    ERR_clear_error();
}

TlscIo tlsc_io(SSL *ssl, int fd, bool wr, void *buf, size_t len, size_t *n, short *want)
{
    *want = wr ? POLLOUT : POLLIN;
    if (!ssl) {
        ssize_t r = wr ? send(fd, buf, len, MSG_NOSIGNAL) : recv(fd, buf, len, 0);
        if (r > 0) {
            *n = (size_t)r;
            return TLSC_IO_DONE;
        }
        if (r == 0 && !wr)
            return TLSC_IO_EOF;
        return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? TLSC_IO_WAIT
                                                                                    : TLSC_IO_ERROR;
    }
    ERR_clear_error();
    int r = wr ? SSL_write(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len)
               : SSL_read(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (r > 0) {
        *n = (size_t)r;
        return TLSC_IO_DONE;
    }
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        *want = POLLIN;
        return TLSC_IO_WAIT;
    case SSL_ERROR_WANT_WRITE:
        *want = POLLOUT;
        return TLSC_IO_WAIT;
    case SSL_ERROR_ZERO_RETURN:
        return TLSC_IO_EOF;
    default:
        if (errno == 0)
            errno = EPROTO;
        return TLSC_IO_ERROR;
    }
}
