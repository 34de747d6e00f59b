/*
 * cl: poll()-bounded blocking I/O over one TCP socket. Frames are cut and built by
 * common/frame's flat-buffer functions, the daemon's own codec.
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

#include "common/frame.h"

struct ClConn {
    int fd;
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

ClConn *cl_connect(const char *host, int port, int timeout_ms, char *err, size_t errlen)
{
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
    return c;
}

void cl_close(ClConn *c)
{
    if (!c)
        return;
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
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return false;
        int left = (int)(deadline - now_ms());
        struct pollfd pf = {c->fd, POLLOUT, 0};
        if (left <= 0 || poll(&pf, 1, left) <= 0)
            return false;
    }
    return true;
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
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            continue;
        }
        if (n == 0) {
            snprintf(err, errlen, "closed");
            return false;
        }
        if (errno != EAGAIN && errno != EINTR) {
            snprintf(err, errlen, "recv: %s", strerror(errno));
            return false;
        }
        int left = (int)(deadline - now_ms());
        struct pollfd pf = {c->fd, POLLIN, 0};
        if (left <= 0 || poll(&pf, 1, left) == 0) {
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
