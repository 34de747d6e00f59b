/*
 * log: one line per message on stderr, "YYYY-mm-ddTHH:MM:SS.mmmZ LEVEL message".
 * Masking helpers keep phone numbers and names out of logs in full.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

LogLevel log_level = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

bool log_level_parse(const char *s, LogLevel *out)
{
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (LogLevel)i;
            return true;
        }
    }
    return false;
}

const char *log_level_name(LogLevel l)
{
    return (unsigned)l < ARRAY_LEN(level_names) ? level_names[l] : "?";
}

static void log_vmsg(LogLevel l, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);
static void log_vmsg(LogLevel l, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000L,
                  log_level_name(l));
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    /* one fputs per line so concurrent writers (tests) do not interleave mid-line */
    size_t len = strlen(line);
    if (len + 1 < sizeof(line)) {
        line[len] = '\n';
        line[len + 1] = '\0';
    }
    fputs(line, stderr);
}

void log_msg(LogLevel l, const char *fmt, ...)
{
    if (l > log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(l, fmt, ap);
    va_end(ap);
}

/* Every call site's limiter once used (static storage, never freed), and the total count:
 * the log is one per process, so its limits are too. */
static LogLimit *limits;
static uint64_t suppressed_total;

bool log_limit_pass(LogLimit *l, int64_t now_ms)
{
    if (!l->started) {
        l->started = true;
        l->tokens = LOG_LIMIT_BURST;
        l->last_ms = now_ms;
    } else if (now_ms > l->last_ms) {
        l->tokens += (double)(now_ms - l->last_ms) / LOG_LIMIT_REFILL_MS;
        if (l->tokens > LOG_LIMIT_BURST)
            l->tokens = LOG_LIMIT_BURST;
        l->last_ms = now_ms;
    }
    if (l->tokens >= 1) {
        l->tokens -= 1;
        return true;
    }
    if (l->suppressed++ == 0)
        l->first_ms = now_ms;
    suppressed_total++;
    return false;
}

uint64_t log_limit_take(LogLimit *l, int64_t now_ms, bool force)
{
    if (l->suppressed == 0 || (!force && now_ms - l->first_ms < LOG_LIMIT_REPORT_MS))
        return 0;
    uint64_t n = l->suppressed;
    l->suppressed = 0;
    return n;
}

static void report(LogLimit *l, int64_t now_ms, bool force)
{
    int64_t since = l->first_ms;
    uint64_t n = log_limit_take(l, now_ms, force);
    if (n)
        log_msg(LOG_WARN, "log: suppressed %llu similar lines from %s in %lld s (\"%.80s\")",
                (unsigned long long)n, l->site, (long long)((now_ms - since + 999) / 1000), l->fmt);
}

void log_limited_msg(LogLimit *l, LogLevel lv, const char *fmt, ...)
{
    if (lv > log_level)
        return;
    if (!l->registered) {
        l->registered = true;
        l->next = limits;
        limits = l;
    }
    int64_t now = util_now_ms();
    report(l, now, false);
    if (!log_limit_pass(l, now))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(lv, fmt, ap);
    va_end(ap);
}

void log_limit_flush(int64_t now_ms, bool force)
{
    for (LogLimit *l = limits; l; l = l->next)
        report(l, now_ms, force);
}

uint64_t log_suppressed_total(void)
{
    return suppressed_total;
}

const char *log_mask_phone(const char *phone, char out[LOG_MASK_BUF])
{
    size_t n = phone ? strlen(phone) : 0;
    if (n >= LOG_MASK_BUF)
        n = LOG_MASK_BUF - 1;
    size_t keep_head = n >= 11 ? 3 : 0;
    size_t keep_tail = n >= 7 ? 4 : (n >= 3 ? 2 : 0);
    for (size_t i = 0; i < n; i++)
        out[i] = (i < keep_head || i >= n - keep_tail) ? phone[i] : '*';
    out[n] = '\0';
    return out;
}

const char *log_mask_name(const char *name, char out[LOG_MASK_BUF])
{
    if (!name || !*name) {
        out[0] = '\0';
        return out;
    }
    size_t first = 1;
    unsigned char c = (unsigned char)name[0];
    if (c >= 0xF0)
        first = 4;
    else if (c >= 0xE0)
        first = 3;
    else if (c >= 0xC0)
        first = 2;
    if (first > strlen(name))
        first = strlen(name);
    memcpy(out, name, first);
    size_t o = first;
    if (strlen(name) > first && o + 2 < LOG_MASK_BUF) {
        out[o++] = '*';
        out[o++] = '*';
    }
    out[o] = '\0';
    return out;
}
