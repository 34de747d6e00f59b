/*
 * log: leveled logging to stderr (journald adds its own timestamps when run by systemd;
 * we add ours so test logs read on their own). The level is checked before formatting.
 * Personal data never goes in full: use log_mask_phone() for phone numbers and
 * log_mask_name() for names.
 */
#ifndef CARELINE_LOG_H
#define CARELINE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

typedef enum {
    LOG_ERROR = 0,
    LOG_WARN = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
} LogLevel;

extern LogLevel log_level; /* current threshold; messages above it are dropped unformatted */

/* Parses "error", "warn", "info", "debug"; returns false on anything else. */
bool log_level_parse(const char *s, LogLevel *out) MUSTCHECK;
const char *log_level_name(LogLevel l);

void log_msg(LogLevel l, const char *fmt, ...) PRINTF_LIKE(2, 3);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  (log_level >= LOG_WARN ? log_msg(LOG_WARN, __VA_ARGS__) : (void)0)
#define log_info(...)  (log_level >= LOG_INFO ? log_msg(LOG_INFO, __VA_ARGS__) : (void)0)
#define log_debug(...) (log_level >= LOG_DEBUG ? log_msg(LOG_DEBUG, __VA_ARGS__) : (void)0)

/* ---- rate-limited lines ---------------------------------------------------------------------
 * For every line a remote peer can cause (a bad frame, a failed authentication, a refused
 * HTTP request): a token bucket per call site lets LOG_LIMIT_BURST lines through, then one
 * more every LOG_LIMIT_REFILL_MS; the rest are counted, and at most every LOG_LIMIT_REPORT_MS
 * one line says how many were suppressed at that site — from the next limited line there, or
 * from log_limit_flush(), which the daemon's janitor calls so a count is told even when the
 * flood stops. A line the level filters out is neither written nor counted. Loop thread only. */
#define LOG_LIMIT_BURST     10
#define LOG_LIMIT_REFILL_MS 5000
#define LOG_LIMIT_REPORT_MS 10000

typedef struct LogLimit {
    const char *site;      /* "file:line" of the call site (static storage) */
    const char *fmt;       /* its format, quoted in the report (static storage) */
    bool started;          /* tokens and last_ms are set */
    double tokens;         /* lines that may pass now, <= LOG_LIMIT_BURST */
    int64_t last_ms;       /* monotonic; last refill */
    uint64_t suppressed;   /* lines dropped since the last report */
    int64_t first_ms;      /* monotonic; when the first of them was dropped */
    bool registered;       /* on the list log_limit_flush walks */
    struct LogLimit *next; /* that list */
} LogLimit;

/* The bucket alone (no output): true when a line at now_ms may pass; otherwise counts it. */
bool log_limit_pass(LogLimit *l, int64_t now_ms);
/* When l has suppressed lines and the oldest is LOG_LIMIT_REPORT_MS old (or force), returns
 * their count and starts counting afresh; else 0. */
uint64_t log_limit_take(LogLimit *l, int64_t now_ms, bool force);
/* Writes the line if l lets it pass, after the report of what l suppressed if one is due. */
void log_limited_msg(LogLimit *l, LogLevel lv, const char *fmt, ...) PRINTF_LIKE(3, 4);
/* Writes the due "suppressed N similar lines" reports of every call site used so far; with
 * force, every pending count (at exit). */
void log_limit_flush(int64_t now_ms, bool force);
/* Lines suppressed by every limiter since the process started (for /metrics). */
uint64_t log_suppressed_total(void);

#define LOG_LIMIT_STR2(x) #x
#define LOG_LIMIT_STR(x)  LOG_LIMIT_STR2(x)
/* log_limited(LOG_INFO, "fmt", ...): a rate-limited log_msg with its own static bucket. */
#define log_limited(lv, f_, ...)                                                                   \
    do {                                                                                           \
        static LogLimit log_limit_ = {.site = __FILE__ ":" LOG_LIMIT_STR(__LINE__), .fmt = f_};    \
        if (log_level >= (lv))                                                                     \
            log_limited_msg(&log_limit_, (lv), f_, ##__VA_ARGS__);                                 \
    } while (0)

/* Writes "138****5678"-style masking of phone into out (keeps the first 3 and last 4
 * digits only when the number is long enough, otherwise all but the last 2 are masked).
 * Returns out. */
#define LOG_MASK_BUF 32
const char *log_mask_phone(const char *phone, char out[LOG_MASK_BUF]);
/* Keeps the first UTF-8 character of a name and replaces the rest with '*'. */
const char *log_mask_name(const char *name, char out[LOG_MASK_BUF]);

#endif
