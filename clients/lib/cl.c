/*
 * cl: poll()-bounded blocking I/O over one TCP socket, in TLS (tls_client.h) or plaintext.
 * Frames are cut and built by common/frame's flat-buffer functions, the daemon's own codec.
 */
#include "cl.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/frame.h"

struct ClConn {
    int fd;
    SSL *ssl;       /* NULL = plaintext */
    TlsClient *own; /* cl_open_opts' context, freed with the connection */
    uint64_t next_seq;
    uint8_t *buf; /* received bytes not yet returned */
    size_t len, cap;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cl_dial(const char *host, int port, bool *in_progress, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char ports[16];
    snprintf(ports, sizeof(ports), "%d", port);
    int rc = getaddrinfo(host, ports, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    int saved = errno; /* freeaddrinfo may change errno */
    freeaddrinfo(ai);
    if (rc != 0 && saved != EINPROGRESS) {
        snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port, strerror(saved));
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *in_progress = rc != 0;
    return fd;
}

/* Waits up to the deadline for events on fd; false on timeout. */
static bool wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int left = (int)(deadline - now_ms());
        if (left <= 0)
            return false;
        struct pollfd p = {fd, events, 0};
        int rc = poll(&p, 1, left);
        if (rc > 0)
            return true;
        if (rc < 0 && errno != EINTR)
            return false;
    }
}

static bool tls_handshake(ClConn *c, TlsClient *tls, const char *host, int port, int64_t deadline,
                          char *err, size_t errlen)
{
    c->ssl = tlsc_ssl(tls, host, err, errlen);
    if (!c->ssl)
        return false;
    SSL_set_fd(c->ssl, c->fd);
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return true;
        int e = SSL_get_error(c->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            tlsc_explain(tls, c->ssl, host, err, errlen);
            return false;
        }
        if (!wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
            snprintf(err, errlen, "TLS handshake with %s:%d timed out", host, port);
            return false;
        }
    }
}

ClConn *cl_open(const char *host, int port, TlsClient *tls, int timeout_ms, char *err,
                size_t errlen)
{
    int64_t deadline = now_ms() + timeout_ms;
    bool in_progress;
    int fd = cl_dial(host, port, &in_progress, err, errlen);
    if (fd < 0)
        return NULL;
    if (in_progress) {
        struct pollfd p = {fd, POLLOUT, 0};
        int rc = poll(&p, 1, timeout_ms);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (rc == 1)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (rc != 1 || soerr) {
            snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port,
                     rc == 0 ? "timed out" : strerror(soerr ? soerr : errno));
            close(fd);
            return NULL;
        }
    }
    ClConn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = fd;
    c->next_seq = 1;
    if (tls && !tls_handshake(c, tls, host, port, deadline, err, errlen)) {
        cl_close(c);
        return NULL;
    }
    return c;
}

ClConn *cl_open_opts(const char *host, int port, const TlsClientOpts *o, int timeout_ms, char *err,
                     size_t errlen)
{
    TlsClient *tls;
    if (!tlsc_new(o, host, &tls, err, errlen))
        return NULL;
    ClConn *c = cl_open(host, port, tls, timeout_ms, err, errlen);
    if (!c)
        tlsc_free(tls);
    else
        c->own = tls;
    return c;
}

ClConn *cl_connect(const char *host, int port, int timeout_ms, char *err, size_t errlen)
{
    return cl_open(host, port, NULL, timeout_ms, err, errlen);
}

void cl_close(ClConn *c)
{
    if (!c)
        return;
    if (c->ssl) {
        SSL_shutdown(c->ssl); /* best effort close_notify; the socket is nonblocking */
        SSL_free(c->ssl);
    }
    tlsc_free(c->own);
    close(c->fd);
    free(c->buf);
    free(c);
}

int cl_fd(const ClConn *c)
{
    return c->fd;
}

bool cl_send_raw(ClConn *c, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    int64_t deadline = now_ms() + 10000;
    while (len > 0) {
        size_t n = 0;
        short want;
        TlscIo r = tlsc_io(c->ssl, c->fd, true, (void *)p, len, &n, &want);
        if (r == TLSC_IO_DONE) {
            p += n;
            len -= n;
            continue;
        }
        if (r != TLSC_IO_WAIT || !wait_fd(c->fd, want, deadline))
            return false;
    }
    return true;
}

long cl_recv_raw(ClConn *c, void *buf, size_t len, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        size_t n = 0;
        short ev;
        TlscIo r = tlsc_io(c->ssl, c->fd, false, buf, len, &n, &ev);
        if (r == TLSC_IO_DONE)
            return (long)n;
        if (r == TLSC_IO_EOF)
            return 0;
        if (r == TLSC_IO_ERROR || !wait_fd(c->fd, ev, deadline))
            return -1;
    }
}

bool cl_send(ClConn *c, const ClEnvelope *env)
{
    size_t n;
    uint8_t *b = frame_encode(env, &n);
    bool ok = cl_send_raw(c, b, n);
    free(b);
    return ok;
}

static bool fill(ClConn *c, size_t want, int64_t deadline, char *err, size_t errlen)
{
    while (c->len < want) {
        if (c->cap < want) {
            size_t cap = want < 4096 ? 4096 : want;
            uint8_t *nb = realloc(c->buf, cap);
            if (!nb) {
                snprintf(err, errlen, "out of memory");
                return false;
            }
            c->buf = nb;
            c->cap = cap;
        }
        size_t n = 0;
        short ev;
        TlscIo r = tlsc_io(c->ssl, c->fd, false, c->buf + c->len, c->cap - c->len, &n, &ev);
        if (r == TLSC_IO_DONE) {
            c->len += n;
            continue;
        }
        if (r == TLSC_IO_EOF) {
            snprintf(err, errlen, "closed");
            return false;
        }
        if (r == TLSC_IO_ERROR) {
            snprintf(err, errlen, "recv: %s", strerror(errno));
            return false;
        }
        if (!wait_fd(c->fd, ev, deadline)) {
            snprintf(err, errlen, "timeout");
            return false;
        }
    }
    return true;
}

ClEnvelope *cl_recv(ClConn *c, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = now_ms() + timeout_ms;
    ClEnvelope *env;
    size_t need;
    uint32_t n;
    FrameStatus st;
    while ((st = frame_parse(c->buf, c->len, FRAME_MAX_PAYLOAD, &env, &need, &n)) ==
           FRAME_NEED_MORE) {
        if (!fill(c, need, deadline, err, errlen))
            return NULL;
    }
    if (st == FRAME_EMPTY || st == FRAME_TOO_LARGE) {
        snprintf(err, errlen, "bad frame length %u from server", n);
        return NULL;
    }
    memmove(c->buf, c->buf + FRAME_HEADER + n, c->len - FRAME_HEADER - n);
    c->len -= FRAME_HEADER + (size_t)n;
    if (!env)
        snprintf(err, errlen, "server sent a frame that is not an Envelope");
    return env;
}

void cl_free(ClEnvelope *env)
{
    if (env)
        careline__v1__envelope__free_unpacked(env, NULL);
}

ClEnvelope *cl_call(ClConn *c, ClEnvelope *env, int timeout_ms, char *err, size_t errlen,
                    void (*on_push)(ClEnvelope *push, void *arg), void *arg)
{
    env->seq = c->next_seq++;
    if (!cl_send(c, env)) {
        snprintf(err, errlen, "send failed: %s", strerror(errno));
        return NULL;
    }
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - now_ms());
        if (left <= 0) {
            snprintf(err, errlen, "timeout");
            return NULL;
        }
        ClEnvelope *r = cl_recv(c, left, err, errlen);
        if (!r)
            return NULL;
        if (r->seq == env->seq)
            return r;
        /* a fatal Error with seq 0 (e.g. TIMEOUT) also ends the call */
        if (r->seq == 0 && r->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR && r->error->fatal)
            return r;
        if (on_push)
            on_push(r, arg);
        else
            cl_free(r);
    }
}

ClEnvelope *cl_hello(ClConn *c, const char *token, const char *client_name, int timeout_ms,
                     char *err, size_t errlen)
{
    Careline__V1__Hello h = CARELINE__V1__HELLO__INIT;
    h.protocol_version = 1;
    h.token = (char *)token;
    h.client_name = (char *)client_name;
    ClEnvelope env = CARELINE__V1__ENVELOPE__INIT;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    return cl_call(c, &env, timeout_ms, err, errlen, NULL, NULL);
}

char *cl_token_from_file(const char *path, const char *role, long station_id)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char line[512], r[32], tok[300];
    long sid;
    char *found = NULL;
    while (!found && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%31s %ld %299s", r, &sid, tok) == 3 && strcmp(r, role) == 0 &&
            (station_id <= 0 || sid == station_id))
            found = strdup(tok);
    }
    fclose(f);
    return found;
}
