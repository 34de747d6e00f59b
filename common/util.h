/*
 * util: small always-on helpers shared by every module.
 * Allocation wrappers abort on OOM (the bounded buffers are the real memory control),
 * ASSERT is never compiled out, clocks are in milliseconds.
 */
#ifndef CARELINE_UTIL_H
#define CARELINE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdbool.h>

#define MUSTCHECK         __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define ARRAY_LEN(a)      (sizeof(a) / sizeof((a)[0]))

/* Logs file:line and the expression, then aborts. Never compiled out. */
#define ASSERT(e) ((e) ? (void)0 : util_assert_fail(#e, __FILE__, __LINE__))
_Noreturn void util_assert_fail(const char *expr, const char *file, int line);

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Monotonic milliseconds, for deadlines and durations. */
int64_t util_now_ms(void);
/* Wall-clock milliseconds since the Unix epoch, for timestamps shown to people. */
int64_t util_wall_ms(void);

struct event;
/* Arms a libevent timer to fire in ms milliseconds (event_add with a relative timeout). */
void util_timer_ms(struct event *ev, int64_t ms);

/* Reconnect backoff with jitter: returns the delay to wait now (the current step plus up to a
 * quarter of it at random) and doubles *step_ms, capped at max_ms. *rng is xorshift32 state,
 * seeded by util_rng_seed (never 0). */
int util_backoff_next(int *step_ms, int max_ms, uint32_t *rng);
uint32_t util_rng_seed(const void *salt);

/* true when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool util_utf8_valid(const char *s, size_t n);
/* The length of the longest well-formed UTF-8 prefix of s[0..n) (n when all of it is). */
size_t util_utf8_prefix(const char *s, size_t n);
/* Copies s[0..n) into out (cap > 0 bytes, always NUL-terminated) so that the copy is valid
 * UTF-8: well-formed characters as they are, each other byte as the four characters \xNN.
 * What does not fit is left off at a character boundary, never inside one or an escape.
 * Returns the bytes written (without the NUL). For echoing client bytes in replies and logs. */
size_t util_utf8_escape(const char *s, size_t n, char *out, size_t cap);
/* vsnprintf into out[cap] (cap <= 1024), then util_utf8_escape: a message that may quote
 * client bytes, made safe to send and log. */
void util_vformat_utf8(char *out, size_t cap, const char *fmt, va_list ap) PRINTF_LIKE(3, 0);

#endif
