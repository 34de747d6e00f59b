/*
 * ihttp: raw-socket HTTP/1.1 with poll() bounds. The response is read to EOF (we always ask
 * for Connection: close), then split at the blank line; Content-Length, when present,
 * trims the body. Chunked responses are not needed by our servers and not decoded.
 */
#include "ihttp.h"

#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_local(int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (errno != EINPROGRESS)
            goto fail;
        struct pollfd p = {fd, POLLOUT, 0};
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) ||
            soerr)
            goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

static int send_all(int fd, const char *p, size_t n, long long deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        struct pollfd pf = {fd, POLLOUT, 0};
        int left = (int)(deadline - now_ms());
        if (left <= 0 || poll(&pf, 1, left) <= 0)
            return -1;
    }
    return 0;
}

int ihttp_request(int port, const char *method, const char *path, const char *const *headers,
                  const char *body, size_t len, int timeout_ms, IhttpResp *r)
{
    memset(r, 0, sizeof(*r));
    r->status = -1;
    long long deadline = now_ms() + timeout_ms;
    int fd = connect_local(port, timeout_ms);
    if (fd < 0)
        return -1;
    size_t cap = 4096 + len;
    char *req = malloc(cap);
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n",
                     method, path, port);
    for (int i = 0; headers && headers[i]; i++) {
        size_t hl = strlen(headers[i]);
        if ((size_t)n + hl + 64 + len >= cap) {
            cap = (size_t)n + hl + 64 + len + 4096;
            req = xrealloc(req, cap);
        }
        n += snprintf(req + n, cap - (size_t)n, "%s\r\n", headers[i]);
    }
    if (body || len)
        n += snprintf(req + n, cap - (size_t)n, "Content-Length: %zu\r\n", len);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (len)
        memcpy(req + n, body, len);
    int rc = send_all(fd, req, (size_t)n + len, deadline);
    free(req);
    size_t got = 0, bcap = 8192;
    char *buf = malloc(bcap);
    while (rc == 0) {
        if (got + 1 >= bcap) {
            bcap *= 2;
            buf = xrealloc(buf, bcap);
        }
        ssize_t k = recv(fd, buf + got, bcap - got - 1, 0);
        if (k > 0) {
            got += (size_t)k;
            continue;
        }
        if (k == 0 || (errno != EAGAIN && errno != EINTR))
            break; /* EOF, or a reset after the reply (e.g. a refused oversized body) */
        struct pollfd pf = {fd, POLLIN, 0};
        int left = (int)(deadline - now_ms());
        if (left <= 0 || poll(&pf, 1, left) <= 0) {
            rc = -1;
            break;
        }
    }
    close(fd);
    buf[got] = '\0';
    int status = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    char *sep = strstr(buf, "\r\n\r\n");
    if (status < 0 || !sep) {
        free(buf);
        return -1;
    }
    *sep = '\0';
    for (char *line = strstr(buf, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        if (!strncasecmp(line + 2, "Content-Type:", 13)) {
            const char *v = line + 2 + 13;
            while (*v == ' ')
                v++;
            snprintf(r->content_type, sizeof(r->content_type), "%.*s", (int)strcspn(v, "\r"), v);
        }
        if (!strncasecmp(line + 2, "Retry-After:", 12))
            r->retry_after = atoi(line + 2 + 12);
    }
    char *b = sep + 4;
    size_t blen = got - (size_t)(b - buf);
    char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl) {
        size_t want = strtoul(cl + 17, NULL, 10);
        if (want < blen)
            blen = want;
    }
    r->body = malloc(blen + 1);
    memcpy(r->body, b, blen);
    r->body[blen] = '\0';
    r->body_len = blen;
    r->status = status;
    free(buf);
    return status;
}

void ihttp_free(IhttpResp *r)
{
    free(r->body);
    r->body = NULL;
}
