/*
 * ctl_csv: a small RFC 4180 reader, field by field over the whole file in memory (import
 * files are a few thousand lines), and the matching writer.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "ctl_csv.h"

typedef struct {
    char **f;
    size_t n, cap;
} Fields;

static void push(Fields *fs, const char *s, size_t n)
{
    if (fs->n == fs->cap) {
        fs->cap = fs->cap ? fs->cap * 2 : 16;
        fs->f = xrealloc(fs->f, fs->cap * sizeof(char *));
    }
    fs->f[fs->n++] = xstrndup(s, n);
}

/* Parses one record starting at *p; advances *p and *line. false on a bad quote. */
static bool record(const char **p, const char *end, Fields *fs, size_t *line)
{
    const char *s = *p;
    char *buf = xmalloc((size_t)(end - s) + 1);
    for (;;) {
        size_t n = 0;
        if (s < end && *s == '"') {
            s++;
            for (;;) {
                if (s >= end) {
                    free(buf);
                    return false;
                }
                if (*s == '"' && s + 1 < end && s[1] == '"') {
                    buf[n++] = '"';
                    s += 2;
                } else if (*s == '"') {
                    s++;
                    break;
                } else {
                    if (*s == '\n')
                        (*line)++;
                    buf[n++] = *s++;
                }
            }
        }
        while (s < end && *s != ',' && *s != '\n' && *s != '\r')
            buf[n++] = *s++;
        push(fs, buf, n);
        if (s < end && *s == ',') {
            s++;
            continue;
        }
        if (s < end && *s == '\r')
            s++;
        if (s < end && *s == '\n') {
            s++;
            (*line)++;
        }
        break;
    }
    free(buf);
    *p = s;
    return true;
}

static void fields_free(Fields *fs)
{
    for (size_t i = 0; i < fs->n; i++)
        free(fs->f[i]);
    free(fs->f);
    memset(fs, 0, sizeof(*fs));
}

bool ctl_csv_read(const char *path, CtlCsv *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return false;
    }
    size_t cap = 1 << 16, len = 0;
    char *data = xmalloc(cap);
    size_t got;
    while ((got = fread(data + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap)
            data = xrealloc(data, cap *= 2);
    }
    fclose(f);
    const char *p = data, *end = data + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    size_t line = 1, start;
    Fields fs = {0};
    bool ok = true;
    while (p < end && ok) {
        start = line;
        if (*p == '\n' || *p == '\r') { /* blank line */
            p += (*p == '\r' && p + 1 < end && p[1] == '\n') ? 2 : 1;
            line++;
            continue;
        }
        if (!record(&p, end, &fs, &line)) {
            snprintf(err, errlen, "%s:%zu: unterminated quoted field", path, start);
            ok = false;
        } else if (!out->names) {
            out->names = fs.f;
            out->ncols = fs.n;
            memset(&fs, 0, sizeof(fs));
        } else if (fs.n > out->ncols) {
            snprintf(err, errlen, "%s:%zu: %zu fields, the header names %zu", path, start, fs.n,
                     out->ncols);
            ok = false;
        } else {
            while (fs.n < out->ncols)
                push(&fs, "", 0);
            out->rows = xrealloc(out->rows, (out->nrows + 1) * sizeof(char **));
            out->lines = xrealloc(out->lines, (out->nrows + 1) * sizeof(size_t));
            out->rows[out->nrows] = fs.f;
            out->lines[out->nrows++] = start;
            memset(&fs, 0, sizeof(fs));
        }
    }
    fields_free(&fs);
    free(data);
    if (ok && !out->names) {
        snprintf(err, errlen, "%s: empty file (the first line must name the fields)", path);
        ok = false;
    }
    if (!ok)
        ctl_csv_free(out);
    return ok;
}

void ctl_csv_free(CtlCsv *c)
{
    for (size_t i = 0; i < c->nrows; i++) {
        for (size_t j = 0; j < c->ncols; j++)
            free(c->rows[i][j]);
        free(c->rows[i]);
    }
    for (size_t j = 0; j < c->ncols; j++)
        free(c->names[j]);
    free(c->names);
    free(c->rows);
    free(c->lines);
    memset(c, 0, sizeof(*c));
}

void ctl_csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}
