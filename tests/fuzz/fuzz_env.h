/*
 * fuzz_env: what the libFuzzer harnesses share — a daemon environment with no server behind
 * it. The PostgreSQL pool refuses every query (max_queue 0) and the Redis link never comes
 * up, so a handler given input it accepts answers OVERLOADED or UNAVAILABLE at once instead
 * of waiting for a backend; the loop never runs, so nothing connects. Connections are real
 * Conns on one end of a socketpair: what a handler sends stays in the output buffer, where
 * fuzz_replies() decodes it and checks every frame.
 *
 * FUZZ_STRICT in the environment adds the checks issue 12 asks for and the daemon does not
 * meet everywhere yet: "utf8", no Error holds invalid UTF-8; "field", every INVALID_ARGUMENT
 * names its field; "1", both. FUZZ_LOG=debug|info|warn turns the daemon's logging on (off:
 * error).
 */
#ifndef CARELINE_FUZZ_ENV_H
#define CARELINE_FUZZ_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/cal.h"
#include "core/directory.h"
#include "core/env.h"
#include "net/conn.h"

typedef struct {
    struct event_base *base;
    Config cfg; /* defaults, with pg_max_queue 0 */
    Metrics metrics;
    Env env;
    ConnSet set;
    DirSnap *snap; /* a small county: two towns of county 330281 and one outside it */
    CalDay today;
    unsigned strict; /* FUZZ_STRICT_* bits */
} Fuzz;

enum { FUZZ_STRICT_UTF8 = 1, FUZZ_STRICT_FIELD = 2 };

/* The process's environment, made on first use. */
Fuzz *fuzz_env(void);

/* A new open connection (2 refs: its own and the caller's) with role and station_id
 * (ROLE_UNSPECIFIED: not authenticated) on one end of a socketpair; *peer gets the other end (NULL:
 * closed now). Its output is never written to the socket: replies stay for fuzz_replies. */
Conn *fuzz_conn(Fuzz *f, Role role, int64_t station_id, int *peer);
/* Closes c and lets the set free it. */
void fuzz_conn_close(Fuzz *f, Conn *c);

/* One frame c sent, decoded. */
typedef void (*FuzzReplyFn)(const Envelope *env, void *arg);
/* Takes every frame c has sent off its output buffer (aborting unless each is a whole,
 * well-formed Envelope), checks every Error in it (fuzz_check_error) and calls fn (may be
 * NULL) on each; returns how many there were. */
size_t fuzz_replies(Conn *c, FuzzReplyFn fn, void *arg);
/* An Error's invariants: a known code, a sentence; in strict mode UTF-8 throughout and a
 * field for INVALID_ARGUMENT. */
void fuzz_check_error(const Fuzz *f, const Careline__V1__Error *e);

/* Aborts with the message when cond is false (libFuzzer then saves the input). */
#define FUZZ_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                     \
    } while (0)
_Noreturn void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

/* A copy of data[0..n) with a NUL after it (free()). */
char *fuzz_strndup(const uint8_t *data, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
