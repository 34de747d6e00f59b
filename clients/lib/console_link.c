/*
 * console_link: a non-blocking TCP link with an input buffer cut into frames and an output
 * queue flushed on POLLOUT. The owner's poll loop drives it; nothing here waits, so a
 * console stays responsive to its operator while dispatchd is slow or unreachable.
 */
#include "console_link.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/frame.h"

#define CLINK_MAX_QUEUED (1u << 20) /* output queued before we call the peer stuck */

typedef struct {
    uint8_t *b;
    size_t len, cap; /* b[0..len) holds data; len <= cap */
} Buf;

struct ClinkConn {
    int fd;           /* -1 while down */
    bool established; /* connect() finished */
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

ClinkConn *clink_new(void)
{
    ClinkConn *l = xcalloc(1, sizeof(*l));
    l->fd = -1;
    return l;
}

void clink_close(ClinkConn *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
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
    l->established = !in_progress;
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
    if (!l->established || l->broken[0])
        return POLLOUT;
    return (short)(POLLIN | (l->out.len ? POLLOUT : 0));
}

static bool flush_out(ClinkConn *l, char *err, size_t errlen)
{
    while (l->out.len) {
        ssize_t n = send(l->fd, l->out.b, l->out.len, MSG_NOSIGNAL);
        if (n > 0) {
            buf_consume(&l->out, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return true; /* POLLOUT tells us when to go on */
        snprintf(err, errlen, "send: %s", strerror(errno));
        return false;
    }
    return true;
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
    if (!l->established) {
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
        l->established = true;
        return flush_out(l, err, errlen);
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        for (;;) {
            buf_reserve(&l->in, 16384);
            size_t room = l->in.cap - l->in.len;
            ssize_t n = recv(l->fd, l->in.b + l->in.len, room, 0);
            if (n > 0) {
                l->in.len += (size_t)n;
                if ((size_t)n < room)
                    break; /* drained what the kernel had */
                continue;
            }
            if (n == 0) {
                snprintf(err, errlen, "dispatchd closed the connection");
                return false;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
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
