/*
 * ihttp: a small blocking HTTP/1.1 client for the integration tests: one request per
 * connection (Connection: close), any method, extra headers and a body; every wait is
 * bounded. Not for production code.
 */
#ifndef CARELINE_IHTTP_H
#define CARELINE_IHTTP_H

#include <stddef.h>

typedef struct {
    int status; /* HTTP status, or -1 when no valid response arrived */
    char *body; /* NUL-terminated response body (malloc'd; ihttp_free) */
    size_t body_len;
    char content_type[128];
    int retry_after; /* the Retry-After header's seconds; 0 when absent */
} IhttpResp;

/* Sends METHOD path to 127.0.0.1:port with headers ("Name: value" strings, NULL-terminated
 * list, may be NULL) and body (len bytes; NULL/0 for none; Content-Length is added), waits
 * up to timeout_ms for the whole response. Returns the status (also in r->status). */
int ihttp_request(int port, const char *method, const char *path, const char *const *headers,
                  const char *body, size_t len, int timeout_ms, IhttpResp *r);
void ihttp_free(IhttpResp *r);

#endif
