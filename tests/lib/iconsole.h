/*
 * iconsole: bin/station-console as a child process of an integration test, with pipes on
 * its stdin and stdout: the test reads its lines (JSON events, or the text screen) with a
 * bounded poll and drives it through stdin. Plus the daemon side its cases share. A failure
 * prints the console's output and stderr and the daemon's log, then fails the case.
 */
#ifndef CARELINE_ICONSOLE_H
#define CARELINE_ICONSOLE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "itest.h"
#include "t.h"

typedef struct {
    pid_t pid;          /* the console; 0 once it has exited and been reaped */
    int in;             /* write end of its stdin; -1 when it got /dev/null */
    int out;            /* read end of its stdout */
    char buf[1 << 16];  /* stdout read but not yet split into lines */
    size_t len;         /* bytes in buf */
    json_t *seen;       /* every JSON line read so far, in order (owned) */
    char err_path[600]; /* its stderr, in the case's temporary directory */
    const Daemon *d;    /* whose log a failure prints (borrowed; may not be running) */
} IconProc;

/* Prints what k showed so far and d's log, then fails the case with the message. */
#define ICON_FAIL(k, ...)                                                                          \
    do {                                                                                           \
        icon_dump(k);                                                                              \
        itest_daemon_dump_log((k)->d);                                                             \
        t_fail(__FILE__, __LINE__, __VA_ARGS__);                                                   \
    } while (0)

/* Starts bin/station-console with args (NULL-terminated, after the program name; at most 37
 * are passed), its stdin a pipe (icon_say) when with_stdin, else /dev/null. d is borrowed
 * for failure reports. */
void icon_start(IconProc *k, const Daemon *d, bool with_stdin, const char *const *args);
/* Prints the JSON lines seen so far and the console's stderr. */
void icon_dump(const IconProc *k);
/* The next line of output (without the newline) into out, or false after timeout_ms or at
 * EOF. JSON lines are also appended to k->seen. */
bool icon_line(IconProc *k, int timeout_ms, char *out, size_t n);
/* Reads lines until a JSON event `event` (with job_id when job > 0, and state when given)
 * shows up; fails the case (ICON_FAIL) after timeout_ms. Returns it (borrowed from
 * k->seen). */
json_t *icon_wait(IconProc *k, int timeout_ms, const char *event, int64_t job, const char *state);
/* Counts the lines seen so far matching event (and job, and state when given). */
int icon_count(const IconProc *k, const char *event, int64_t job, const char *state);
/* Writes one command line (printf format, the newline added) to the console's stdin. */
void icon_say(IconProc *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Waits up to timeout_ms for the console to exit; its exit status, or -1 if it still runs. */
int icon_wait_exit(IconProc *k, int timeout_ms);
/* SIGTERM; the console must leave cleanly (exit 0) within 5 s. Closes the pipes and frees
 * k->seen. */
void icon_stop(IconProc *k);

/* A string member of a JSON line ("" when absent or not a string; borrowed). */
const char *icon_jstr(const json_t *j, const char *key);
/* An integer member of a JSON line (0 when absent). */
int64_t icon_jint(const json_t *j, const char *key);

/* Submits a lunch for tomorrow (note "少盐 less salt") as the gateway gw under key for
 * phone; fails the case unless the request is QUEUED at station. Returns the job id, and
 * the request id into *request_id when not NULL. */
int64_t icon_submit_meal(const Daemon *d, ClConn *gw, const char *key, const char *phone,
                         int64_t station, int64_t *request_id);
/* The first column of the first row of sql with one text parameter p1, copied into out
 * ("(none)" when there is no row). Returns out. */
char *icon_sql_text(PGconn *pg, const char *sql, const char *p1, char *out, size_t n);
/* port in decimal, into buf. Returns buf. */
const char *icon_port_arg(char *buf, size_t n, int port);

#endif
