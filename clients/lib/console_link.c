/*
 * console_link: a non-blocking TCP (and TLS) link with an input buffer cut into frames and
 * an output queue flushed on POLLOUT. The owner's poll loop drives it; nothing here waits,
 * so a console stays responsive to its operator while dispatchd is slow or unreachable.
 */
#include "console_link.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/frame.h"

#define CLINK_MAX_QUEUED (1u << 20) /* output queued before we call the peer stuck */

typedef struct {
    uint8_t *b;
    size_t len, cap; /* b[0..len) holds data; len <= cap */
} Buf;

struct ClinkConn {
    int fd;           /* -1 while down */
    bool tcp_up;      /* connect() finished */
    bool established; /* connect() finished and, with TLS, the handshake too */
    TlsClient *tls;   /* borrowed; NULL = plaintext */
    SSL *ssl;         /* this connection's, while fd >= 0 and tls */
    short hs_want;    /* the handshake waits for these poll events */
    char host[256];   /* dialled, for the certificate check and messages */
    Buf in;           /* received bytes not yet returned as frames */
    Buf out;          /* queued frames not yet written */
    char broken[128]; /* a send failed outside clink_io: reported by the next clink_io */
};

static void buf_reserve(Buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    b->b = xrealloc(b->b, cap);
    b->cap = cap;
}

static void buf_consume(Buf *b, size_t n)
{
    memmove(b->b, b->b + n, b->len - n);
    b->len -= n;
}

ClinkConn *clink_new(TlsClient *tls)
{
    ClinkConn *l = xcalloc(1, sizeof(*l));
    l->fd = -1;
    l->tls = tls;
    return l;
}

void clink_close(ClinkConn *l)
{
    if (l->ssl)
        SSL_free(l->ssl);
    l->ssl = NULL;
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    l->tcp_up = false;
    l->established = false;
    l->in.len = 0;
    l->out.len = 0;
    l->broken[0] = '\0';
}

void clink_free(ClinkConn *l)
{
    if (!l)
        return;
    clink_close(l);
    free(l->in.b);
    free(l->out.b);
    free(l);
}

bool clink_connect(ClinkConn *l, const char *host, int port, char *err, size_t errlen)
{
    clink_close(l);
    bool in_progress;
    int fd = cl_dial(host, port, &in_progress, err, errlen);
    if (fd < 0)
        return false;
    l->fd = fd;
    snprintf(l->host, sizeof(l->host), "%s", host);
    if (l->tls) {
        l->ssl = tlsc_ssl(l->tls, host, err, errlen);
        if (!l->ssl) {
            clink_close(l);
            return false;
        }
        SSL_set_fd(l->ssl, fd);
        l->hs_want = POLLOUT; /* the first step writes the ClientHello */
    }
    l->tcp_up = !in_progress;
    l->established = l->tcp_up && !l->tls;
    return true;
}

int clink_fd(const ClinkConn *l)
{
    return l->fd;
}

bool clink_established(const ClinkConn *l)
{
    return l->fd >= 0 && l->established;
}

short clink_events(const ClinkConn *l)
{
    if (l->fd < 0)
        return 0;
    if (!l->tcp_up || l->broken[0])
        return POLLOUT;
    if (!l->established)
        return l->hs_want;
    return (short)(POLLIN | (l->out.len ? POLLOUT : 0));
}

static bool flush_out(ClinkConn *l, char *err, size_t errlen)
{
    while (l->out.len) {
        size_t n = 0;
        short want;
        TlscIo r = tlsc_io(l->ssl, l->fd, true, l->out.b, l->out.len, &n, &want);
        if (r == TLSC_IO_DONE) {
            buf_consume(&l->out, n);
            continue;
        }
        if (r == TLSC_IO_WAIT)
            return true; /* POLLOUT tells us when to go on */
        snprintf(err, errlen, "send: %s", strerror(errno));
        return false;
    }
    return true;
}

/* One step of the TLS handshake; true while it goes on or is done. */
static bool handshake(ClinkConn *l, char *err, size_t errlen)
{
    ERR_clear_error();
    int r = SSL_connect(l->ssl);
    if (r == 1) {
        l->established = true;
        return flush_out(l, err, errlen);
    }
    int e = SSL_get_error(l->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        l->hs_want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return true;
    }
    tlsc_explain(l->tls, l->ssl, l->host, err, errlen);
    return false;
}

bool clink_io(ClinkConn *l, short revents, char *err, size_t errlen)
{
    if (l->fd < 0) {
        snprintf(err, errlen, "not connected");
        return false;
    }
    if (l->broken[0]) {
        snprintf(err, errlen, "%s", l->broken);
        return false;
    }
    if (!l->tcp_up) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
            return true;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            soerr = errno;
        if (soerr) {
            snprintf(err, errlen, "%s", strerror(soerr));
            return false;
        }
        l->tcp_up = true;
        if (!l->tls) {
            l->established = true;
            return flush_out(l, err, errlen);
        }
        return handshake(l, err, errlen);
    }
    if (!l->established)
        return !(revents & (POLLIN | POLLOUT | POLLERR | POLLHUP)) || handshake(l, err, errlen);
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        for (;;) {
            buf_reserve(&l->in, 16384);
            size_t room = l->in.cap - l->in.len, n = 0;
            short want;
            TlscIo r = tlsc_io(l->ssl, l->fd, false, l->in.b + l->in.len, room, &n, &want);
            if (r == TLSC_IO_DONE) {
                l->in.len += n;
                if (n < room && !(l->ssl && SSL_pending(l->ssl)))
                    break; /* drained what the kernel (and OpenSSL) had */
                continue;
            }
            if (r == TLSC_IO_EOF) {
                snprintf(err, errlen, "dispatchd closed the connection");
                return false;
            }
            if (r == TLSC_IO_WAIT)
                break;
            snprintf(err, errlen, "recv: %s", strerror(errno));
            return false;
        }
    }
    if (revents & POLLOUT)
        return flush_out(l, err, errlen);
    return true;
}

ClEnvelope *clink_next(ClinkConn *l, bool *bad, char *err, size_t errlen)
{
    *bad = false;
    ClEnvelope *env;
    size_t need;
    uint32_t n;
    FrameStatus st = frame_parse(l->in.b, l->in.len, FRAME_MAX_PAYLOAD, &env, &need, &n);
    if (st == FRAME_NEED_MORE)
        return NULL;
    if (st == FRAME_EMPTY || st == FRAME_TOO_LARGE) {
        snprintf(err, errlen, "bad frame length %u from dispatchd", n);
        *bad = true;
        return NULL;
    }
    buf_consume(&l->in, FRAME_HEADER + (size_t)n);
    if (!env) {
        snprintf(err, errlen, "dispatchd sent a frame that is not an Envelope");
        *bad = true;
    }
    return env;
}

bool clink_send(ClinkConn *l, const ClEnvelope *env)
{
    if (!clink_established(l) || l->out.len > CLINK_MAX_QUEUED)
        return false;
    buf_reserve(&l->out, frame_size(env));
    l->out.len += frame_pack(env, l->out.b + l->out.len);
    /* a failure here is kept for the next clink_io, so the poll loop handles every failure
     * of the link in one place */
    if (!flush_out(l, l->broken, sizeof(l->broken)) && !l->broken[0])
        snprintf(l->broken, sizeof(l->broken), "send failed");
    return true;
}
