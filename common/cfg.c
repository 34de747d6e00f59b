/*
 * cfg: one setter per type, fed by every source (defaults too, so a default can never
 * bypass validation: pgbouncer's CF_ABS table, redis' createIntConfig). Files go through
 * inih, with our own line reader: it counts lines (Debian's inih gives the handler none),
 * drops '#' comments after values where the table asks for it, and keeps whole lines
 * longer than inih's fixed 200-byte buffer, whose values inih would see cut.
 */
#include "common/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "common/log.h"

bool cfg_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return false;
}

const CfgKey *cfg_key(const CfgTable *t, const char *name)
{
    char norm[64];
    size_t n = strlen(name);
    if (n >= sizeof(norm))
        return NULL;
    for (size_t i = 0; i <= n; i++)
        norm[i] = name[i] == '-' ? '_' : (char)tolower((unsigned char)name[i]);
    for (size_t i = 0; i < t->nkeys; i++)
        if (strcmp(t->keys[i].name, norm) == 0)
            return &t->keys[i];
    return NULL;
}

/* strtol/strtod accept leading blanks; trailing ones are allowed here too */
static bool at_end(const char *end)
{
    while (isspace((unsigned char)*end))
        end++;
    return *end == '\0';
}

bool cfg_set(const CfgTable *t, void *obj, const char *key, const char *value, const char *source,
             char *err, size_t errlen)
{
    const CfgKey *k = cfg_key(t, key);
    if (!k)
        return cfg_fail(err, errlen, "%s: unknown config key '%s'", source, key);
    char *field = (char *)obj + k->offset;
    char *end;
    errno = 0;
    if (k->type == CFG_STR) {
        if (strlen(value) >= k->size)
            return cfg_fail(err, errlen, "%s: value of '%s' is longer than %zu bytes", source,
                            k->name, k->size - 1);
        const char *want = k->check ? k->check(value) : NULL;
        if (want)
            return cfg_fail(err, errlen, "%s: %s must be %s, not '%s'", source, k->name, want,
                            value);
        snprintf(field, k->size, "%s", value);
    } else if (k->type == CFG_DOUBLE) {
        double dv = strtod(value, &end);
        if (errno || end == value || !at_end(end) ||
            !(dv >= (double)k->min && dv <= (double)k->max))
            return cfg_fail(err, errlen, "%s: '%s' needs a number within %ld..%ld, not '%s'",
                            source, k->name, k->min, k->max, value);
        memcpy(field, &dv, sizeof(dv));
    } else {
        long v = strtol(value, &end, 10);
        if (errno || end == value || !at_end(end))
            return cfg_fail(err, errlen, "%s: '%s' needs a whole number, not '%s'", source, k->name,
                            value);
        if (v < k->min || v > k->max)
            return cfg_fail(err, errlen, "%s: '%s' = %ld is outside %ld..%ld", source, k->name, v,
                            k->min, k->max);
        int iv = (int)v;
        memcpy(field, &iv, sizeof(iv));
    }
    return true;
}

void cfg_defaults(const CfgTable *t, void *obj)
{
    char err[256];
    memset(obj, 0, t->size);
    for (size_t i = 0; i < t->nkeys; i++) {
        bool ok = cfg_set(t, obj, t->keys[i].name, t->keys[i].def, "default", err, sizeof(err));
        if (!ok)
            log_error("%s", err);
        ASSERT(ok);
    }
}

/* ---- INI files ---- */

typedef struct {
    const CfgTable *t;
    void *obj;
    const char *path;
    FILE *f;
    char *line; /* the whole line read last (getline's buffer) */
    size_t cap;
    bool cut;      /* it did not fit inih's buffer: inih saw only its start */
    int lineno;    /* of that line */
    int fail_line; /* the first line a key failed on, 0 = none */
    char why[512];
} IniCtx;

/* a '#' after white space starts a comment: "7400   # the port" */
static void drop_hash_comment(char *s)
{
    if (!*s)
        return;
    for (char *h = s + 1; *h; h++)
        if (*h == '#' && (h[-1] == ' ' || h[-1] == '\t')) {
            *h = '\0';
            return;
        }
}

static char *ini_read(char *str, int num, void *stream)
{
    IniCtx *x = stream;
    if (getline(&x->line, &x->cap, x->f) < 0)
        return NULL;
    x->lineno++;
    if (x->t->hash_comments)
        drop_hash_comment(x->line);
    size_t n = strlen(x->line), room = (size_t)num - 1;
    x->cut = n > room;
    if (x->cut)
        n = room;
    memcpy(str, x->line, n);
    str[n] = '\0';
    return str;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* The value of a line inih saw cut, by inih's rules: after the first '=' or ':', up to an
 * inline ';' comment (one after white space), trimmed. */
static const char *whole_value(char *line)
{
    char *v = line + strcspn(line, "=:");
    if (!*v)
        return "";
    v = trim(v + 1);
    if (!*v)
        return v;
    for (char *p = v + 1; *p; p++)
        if (*p == ';' && isspace((unsigned char)p[-1])) {
            *p = '\0';
            break;
        }
    return trim(v);
}

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
    IniCtx *x = user;
    if (x->fail_line)
        return 0;
    char src[600];
    snprintf(src, sizeof(src), "%s:%d", x->path, x->lineno);
    bool ok;
    if (section[0] && strcmp(section, x->t->section) != 0)
        ok = cfg_fail(x->why, sizeof(x->why), "%s: unknown section [%s] (only [%s])", src, section,
                      x->t->section);
    else
        ok = cfg_set(x->t, x->obj, name, x->cut ? whole_value(x->line) : value, src, x->why,
                     sizeof(x->why));
    if (!ok)
        x->fail_line = x->lineno;
    return ok;
}

bool cfg_load_file(const CfgTable *t, void *obj, const char *path, char *err, size_t errlen)
{
    IniCtx x = {.t = t, .obj = obj, .path = path};
    x.f = fopen(path, "r");
    if (!x.f)
        return cfg_fail(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
    /* inih goes on after an error and returns the line of the first one */
    int rc = ini_parse_stream(ini_read, &x, ini_cb, &x);
    fclose(x.f);
    free(x.line);
    if (rc == 0)
        return true;
    if (rc > 0 && rc == x.fail_line)
        return cfg_fail(err, errlen, "%s", x.why);
    return cfg_fail(err, errlen, "%s:%d: malformed line (expected key = value)", path, rc);
}

/* ---- environment and command line ---- */

bool cfg_load_env(const CfgTable *t, void *obj, char *err, size_t errlen)
{
    if (!t->env_prefix)
        return true;
    for (size_t i = 0; i < t->nkeys; i++) {
        char name[80];
        int n = snprintf(name, sizeof(name), "%s%s", t->env_prefix, t->keys[i].name);
        for (int j = 0; j < n && j < (int)sizeof(name); j++)
            name[j] = (char)toupper((unsigned char)name[j]);
        const char *v = getenv(name);
        if (!v)
            continue;
        char src[100];
        snprintf(src, sizeof(src), "environment %s", name);
        if (!cfg_set(t, obj, t->keys[i].name, v, src, err, errlen))
            return false;
    }
    return true;
}

bool cfg_argv(const CfgTable *t, void *obj, int argc, char **argv, int *i, char *err, size_t errlen)
{
    const char *opt = argv[*i] + 2; /* past "--" */
    const char *eq = strchr(opt, '=');
    char key[128];
    size_t klen = eq ? (size_t)(eq - opt) : strlen(opt);
    if (klen >= sizeof(key))
        return cfg_fail(err, errlen, "option --%.40s... is too long", opt);
    memcpy(key, opt, klen);
    key[klen] = '\0';
    const char *val = eq ? eq + 1 : NULL;
    if (!val && cfg_key(t, key)) {
        if (*i + 1 >= argc)
            return cfg_fail(err, errlen, "option --%s needs a value (--%s=VALUE)", key, key);
        val = argv[++*i];
    }
    return cfg_set(t, obj, key, val ? val : "", "command line", err, errlen);
}

const char *cfg_config_arg(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config"))
            path = argv[++i];
    return path;
}

void cfg_apply_reloadable(const CfgTable *t, void *to, const void *from)
{
    for (size_t i = 0; i < t->nkeys; i++) {
        const CfgKey *k = &t->keys[i];
        if (k->reloadable)
            memcpy((char *)to + k->offset, (const char *)from + k->offset, k->size);
    }
}

/* ---- printing ---- */

void cfg_format(const CfgKey *k, const void *obj, char *buf, size_t n)
{
    const char *field = (const char *)obj + k->offset;
    if (k->type == CFG_STR) {
        snprintf(buf, n, "%s", field);
    } else if (k->type == CFG_DOUBLE) {
        double dv;
        memcpy(&dv, field, sizeof(dv));
        snprintf(buf, n, "%g", dv);
    } else {
        int iv;
        memcpy(&iv, field, sizeof(iv));
        snprintf(buf, n, "%d", iv);
    }
}

void cfg_print(const CfgTable *t, const void *obj, FILE *out, bool with_help)
{
    for (size_t i = 0; i < t->nkeys; i++) {
        const CfgKey *k = &t->keys[i];
        char v[1100];
        cfg_format(k, obj, v, sizeof(v));
        if (with_help)
            fprintf(out, "# %s (default: %s%s%s)%s\n", k->help ? k->help : k->name,
                    k->def[0] ? "" : "\"", k->def, k->def[0] ? "" : "\"",
                    k->reloadable ? " [reloadable]" : "");
        fprintf(out, "%s = %s\n", k->name, v);
        if (with_help)
            fputc('\n', out);
    }
}

void cfg_print_columns(const CfgTable *t, const void *obj, FILE *out)
{
    for (size_t i = 0; i < t->nkeys; i++) {
        const CfgKey *k = &t->keys[i];
        char v[64];
        cfg_format(k, obj, v, sizeof(v));
        fprintf(out, "  %-22s %-22s %s\n", k->name, v, k->help ? k->help : "");
    }
}

const char *cfg_check_log_level(const char *value)
{
    LogLevel l;
    return log_level_parse(value, &l) ? NULL : "error, warn, info or debug";
}
