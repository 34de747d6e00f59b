/*
 * util: allocation wrappers that abort on OOM, the always-on assert, clocks and a
 * strict UTF-8 validator (protobuf-c does not validate proto3 strings).
 */
#include "common/util.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <time.h>

void util_assert_fail(const char *expr, const char *file, int line)
{
    log_error("assertion failed: %s at %s:%d", expr, file, line);
    abort();
}

static _Noreturn void oom(size_t n)
{
    log_error("out of memory allocating %zu bytes", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom(nmemb * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void util_timer_ms(struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(ev, &tv);
}

static uint32_t xorshift32(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

int util_backoff_next(int *step_ms, int max_ms, uint32_t *rng)
{
    int delay = *step_ms + (int)(xorshift32(rng) % (uint32_t)(*step_ms / 4 + 1));
    *step_ms = *step_ms * 2 > max_ms ? max_ms : *step_ms * 2;
    return delay;
}

uint32_t util_rng_seed(const void *salt)
{
    /* different per process and per object, so reconnecting clients do not move in step */
    uint32_t s = (uint32_t)util_now_ms() ^ (uint32_t)(uintptr_t)salt ^ 0x9e3779b9u;
    return s ? s : 1;
}

/* The length of the well-formed UTF-8 sequence at s[0..n), n > 0; 0 if there is none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    else if ((c & 0xE0) == 0xC0)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

size_t util_utf8_prefix(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { /* ASCII: the common case, one compare a byte */
            i++;
            continue;
        }
        size_t len = utf8_seq(s + i, n - i);
        if (len == 0)
            break;
        i += len;
    }
    return i;
}

bool util_utf8_valid(const char *str, size_t n)
{
    return util_utf8_prefix(str, n) == n;
}

size_t util_utf8_escape(const char *str, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t o = 0;
    ASSERT(cap > 0);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(s + i, n - i);
        size_t need = len ? len : 4;
        if (o + need >= cap)
            break; /* never half a character or half an escape */
        if (len) {
            memcpy(out + o, s + i, len);
            i += len;
        } else {
            out[o] = '\\', out[o + 1] = 'x';
            out[o + 2] = hex[s[i] >> 4], out[o + 3] = hex[s[i] & 0xF];
            i++;
        }
        o += need;
    }
    out[o] = '\0';
    return o;
}

void util_vformat_utf8(char *out, size_t cap, const char *fmt, va_list ap)
{
    char raw[1024];
    ASSERT(cap <= sizeof(raw));
    int n = vsnprintf(raw, cap, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
    util_utf8_escape(raw, len, out, cap);
}
