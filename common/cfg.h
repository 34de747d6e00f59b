/*
 * cfg: the table-driven settings loader shared by dispatchd and the clients. A program
 * describes its settings struct with one CfgTable (per key: name, type, field offset,
 * default as text, bounds, reloadable, help) and the loader fills the struct from, later
 * winning: the defaults, an INI file (`key = value`, '#' or ';' comments, one optional
 * [section]), the environment (<prefix><KEY>) and the command line (--key=value or
 * --key value). '-' and '_' in key names are interchangeable, case is ignored. An unknown
 * key, a value out of range or a malformed number is an error naming the key and where it
 * came from ("FILE:LINE", "environment NAME", "command line"). Nothing here allocates
 * memory that outlives a call, logs, or exits.
 */
#ifndef CARELINE_CFG_H
#define CARELINE_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/util.h"

typedef enum {
    CFG_INT,    /* int, whole number within min..max */
    CFG_DOUBLE, /* double, number within min..max */
    CFG_STR,    /* char[size], at most size - 1 bytes */
} CfgType;

typedef struct {
    const char *name; /* lower case, words joined by '_' */
    CfgType type;
    size_t offset;    /* of the field in the settings struct */
    size_t size;      /* of the field (CFG_STR: the buffer, NUL included) */
    const char *def;  /* the default, as text: set through cfg_set like any other value */
    long min, max;    /* CFG_INT, CFG_DOUBLE: inclusive bounds */
    bool reloadable;  /* copied by cfg_apply_reloadable (SIGHUP) */
    const char *help; /* one line for --help; NULL = none */
    /* CFG_STR: NULL when value is acceptable, else what it must be ("error, warn, info or
     * debug"); NULL = any string that fits */
    const char *(*check)(const char *value);
} CfgKey;

#define CFG_INT_KEY(T, f, def, lo, hi, rl, help)                                                   \
    {                                                                                              \
#f, CFG_INT, offsetof(T, f), sizeof(int), def, lo, hi, rl, help, NULL                      \
    }
#define CFG_DBL_KEY(T, f, def, lo, hi, rl, help)                                                   \
    {                                                                                              \
#f, CFG_DOUBLE, offsetof(T, f), sizeof(double), def, lo, hi, rl, help, NULL                \
    }
#define CFG_STR_KEY(T, f, def, rl, help)                                                           \
    {                                                                                              \
#f, CFG_STR, offsetof(T, f), sizeof(((T *)0)->f), def, 0, 0, rl, help, NULL                \
    }

/* a CFG_STR key whose values check() must accept */
#define CFG_CHECKED_STR_KEY(T, f, def, rl, help, check)                                            \
    {                                                                                              \
#f, CFG_STR, offsetof(T, f), sizeof(((T *)0)->f), def, 0, 0, rl, help, check               \
    }

typedef struct {
    const char *section;    /* the one [section] a file may use, e.g. "dispatchd" */
    const char *env_prefix; /* "CARELINE_": keys are read from CARELINE_<KEY>; NULL = none */
    bool hash_comments;     /* '#' after white space ends a value ("7400   # note") */
    const CfgKey *keys;
    size_t nkeys;
    size_t size; /* sizeof the settings struct */
} CfgTable;

/* The key called name ('-' = '_', any case), or NULL. */
const CfgKey *cfg_key(const CfgTable *t, const char *name);

/* Zeroes obj and sets every key to its default. The defaults must be valid (asserted). */
void cfg_defaults(const CfgTable *t, void *obj);

/* Sets one key from text. source names where it came from and starts the error message
 * ("SOURCE: 'KEY' = 70000 is outside 0..65535"). On error obj is unchanged. */
bool cfg_set(const CfgTable *t, void *obj, const char *key, const char *value, const char *source,
             char *err, size_t errlen) MUSTCHECK;

/* Loads an INI file over obj (read with inih; lines of any length). Errors start with
 * "PATH:LINE: ". Keys before the failing line stay applied. */
bool cfg_load_file(const CfgTable *t, void *obj, const char *path, char *err,
                   size_t errlen) MUSTCHECK;

/* Applies <env_prefix><KEY> environment variables over obj; true at once without a prefix. */
bool cfg_load_env(const CfgTable *t, void *obj, char *err, size_t errlen) MUSTCHECK;

/* argv[*i] is "--KEY=VALUE", or "--KEY" with the value in argv[*i + 1] (then *i is
 * advanced past it). Sets the key with source "command line". */
bool cfg_argv(const CfgTable *t, void *obj, int argc, char **argv, int *i, char *err,
              size_t errlen) MUSTCHECK;

/* The file named by "-c FILE" or "--config FILE" in argv, or NULL (a file is read before the
 * other arguments, which override it). */
const char *cfg_config_arg(int argc, char **argv);

/* Copies the keys marked reloadable from `from` into `to`. */
void cfg_apply_reloadable(const CfgTable *t, void *to, const void *from);

/* The key's current value in obj as text (what cfg_set would take back). */
void cfg_format(const CfgKey *k, const void *obj, char *buf, size_t n);

/* Every key as "key = value" lines, INI style; with_help adds "# help (default: D)" above
 * each and a blank line below (dispatchd's --help, example-config tests). */
void cfg_print(const CfgTable *t, const void *obj, FILE *out, bool with_help);

/* Every key as one "  key  value  help" line in columns, values cut to 63 bytes. */
void cfg_print_columns(const CfgTable *t, const void *obj, FILE *out);

/* Writes the message into err and returns false: for a table owner's cross-field checks. */
bool cfg_fail(char *err, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* A CfgKey.check for log levels: error | warn | info | debug. */
const char *cfg_check_log_level(const char *value);

#endif
