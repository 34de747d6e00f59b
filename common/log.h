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

/* Writes "138****5678"-style masking of phone into out (keeps the first 3 and last 4
 * digits only when the number is long enough, otherwise all but the last 2 are masked).
 * Returns out. */
#define LOG_MASK_BUF 32
const char *log_mask_phone(const char *phone, char out[LOG_MASK_BUF]);
/* Keeps the first UTF-8 character of a name and replaces the rest with '*'. */
const char *log_mask_name(const char *name, char out[LOG_MASK_BUF]);

#endif
