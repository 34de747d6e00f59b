/*
 * t: the in-repo test harness. A test binary lists its cases in a TCase table and calls
 * t_main(); each case runs in its own forked process with an alarm() bound and its own
 * temporary directory (t_tmpdir()), so a crash or hang fails that case only. The binary
 * prints "ok NAME" / "FAIL NAME: why" per case and ends with "N passed, N failed".
 * Run one case with: BINARY NAME   (or a prefix of names: BINARY frame_).
 */
#ifndef CARELINE_T_H
#define CARELINE_T_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const char *name;
    void (*fn)(void);
    unsigned timeout_s; /* 0 = default (60 s) */
} TCase;

int t_main(int argc, char **argv, const TCase *cases);

/* Fails the current case with a message (file:line added). Does not return. */
void t_fail(const char *file, int line, const char *fmt, ...) __attribute__((noreturn))
__attribute__((format(printf, 3, 4)));

/* The current case's private directory (removed after the case passes). */
const char *t_tmpdir(void);

/* Environment the integration runner (tests/run.sh) provides; fails the case if unset. */
const char *t_env(const char *name);

/* Under LeakSanitizer: fails the case if memory leaked so far (the report is printed above
 * the failure). Without ASan it does nothing. For cases that free everything they made and
 * want the leak check at that point rather than only at exit. */
void t_leak_check(void);

/* Lines of the file at path that contain needle (every line when needle is NULL); fails
 * the case if the file cannot be read. For counting what a process logged. */
long t_count_lines(const char *path, const char *needle);

#define T_ASSERT(c)                                                                                \
    do {                                                                                           \
        if (!(c))                                                                                  \
            t_fail(__FILE__, __LINE__, "assertion failed: %s", #c);                                \
    } while (0)
#define T_EQ_INT(a, b)                                                                             \
    do {                                                                                           \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                                    \
        if (t_a_ != t_b_)                                                                          \
            t_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, t_a_, #b, t_b_);     \
    } while (0)
#define T_EQ_STR(a, b)                                                                             \
    do {                                                                                           \
        const char *t_a_ = (a), *t_b_ = (b);                                                       \
        if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0)                                             \
            t_fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #a,                        \
                   t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)");                                \
    } while (0)
#define T_NEAR(a, b, eps)                                                                          \
    do {                                                                                           \
        double t_a_ = (a), t_b_ = (b);                                                             \
        if (!(t_a_ - t_b_ <= (eps) && t_b_ - t_a_ <= (eps)))                                       \
            t_fail(__FILE__, __LINE__, "%s == %.9g, expected %.9g", #a, t_a_, t_b_);               \
    } while (0)

#endif
