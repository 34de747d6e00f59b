/*
 * gen_csv: the files careline-gen reads and writes. Output goes through large stdio
 * buffers (a national set is gigabytes) and appears under its name only when complete.
 */
#include "gen_csv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

void gen_out_open(Out *o, const char *dir, const char *name, const char *header)
{
    snprintf(o->path, sizeof(o->path), "%s/%s", dir, name);
    snprintf(o->tmp, sizeof(o->tmp), "%s.tmp", o->path);
    o->f = fopen(o->tmp, "w");
    if (!o->f) {
        log_error("cannot create %s: %s", o->tmp, strerror(errno));
        exit(1);
    }
    static char bufs[8][1 << 20];
    static int nbuf;
    if (nbuf < 8)
        setvbuf(o->f, bufs[nbuf++], _IOFBF, sizeof(bufs[0]));
    fprintf(o->f, "%s\n", header);
    o->rows = 0;
}

void gen_out_close(Out *o)
{
    bool bad = ferror(o->f) != 0;
    if (fclose(o->f) != 0 || bad) {
        log_error("write error on %s", o->tmp);
        exit(1);
    }
    if (rename(o->tmp, o->path) != 0) {
        log_error("cannot rename %s: %s", o->tmp, strerror(errno));
        exit(1);
    }
}

const char *gen_tf(bool b)
{
    return b ? "true" : "false";
}

bool gen_csv_next(CsvIn *c)
{
    if (!fgets(c->buf, sizeof(c->buf), c->f))
        return false;
    c->line++;
    size_t n = strlen(c->buf);
    if (n && c->buf[n - 1] != '\n' && !feof(c->f)) {
        log_error("%s:%d: line too long", c->path, c->line);
        exit(1);
    }
    while (n && (c->buf[n - 1] == '\n' || c->buf[n - 1] == '\r'))
        c->buf[--n] = '\0';
    if (strchr(c->buf, '"')) {
        log_error("%s:%d: quoted fields are not supported", c->path, c->line);
        exit(1);
    }
    c->nfield = 0;
    char *p = c->buf;
    for (;;) {
        if (c->nfield == GEN_FIELDS_MAX) {
            log_error("%s:%d: too many fields", c->path, c->line);
            exit(1);
        }
        c->field[c->nfield++] = p;
        char *comma = strchr(p, ',');
        if (!comma)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    return true;
}

void gen_csv_open(CsvIn *c, const char *dir, const char *name, const char *header)
{
    static char path[2][1024];
    static int np;
    char *pbuf = path[np++ % 2];
    snprintf(pbuf, sizeof(path[0]), "%s/%s", dir, name);
    c->path = pbuf;
    c->line = 0;
    c->f = fopen(pbuf, "r");
    if (!c->f) {
        log_error("cannot open %s: %s", pbuf, strerror(errno));
        exit(1);
    }
    if (!gen_csv_next(c)) {
        log_error("%s: empty file", pbuf);
        exit(1);
    }
    /* the header was split in place; compare field by field */
    const char *h = header;
    for (int i = 0; i < c->nfield; i++) {
        size_t len = strlen(c->field[i]);
        if (strncmp(h, c->field[i], len) != 0 || (h[len] != ',' && h[len] != '\0')) {
            log_error("%s: unexpected header (want \"%s\")", pbuf, header);
            exit(1);
        }
        h += len + (h[len] == ',');
    }
    if (*h) {
        log_error("%s: unexpected header (want \"%s\")", pbuf, header);
        exit(1);
    }
}

bool gen_is_code12(const char *s)
{
    if (strlen(s) != 12)
        return false;
    for (int i = 0; i < 12; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool gen_parse_coord(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}
