/*
 * ctl_csv: CSV for carelinectl — reading an import file (RFC 4180: a header line naming
 * the fields, then one record per line; fields may be quoted with "", a quote inside as
 * ""), and writing one CSV field. UTF-8 in, UTF-8 out; a BOM at the start is skipped.
 */
#ifndef CARELINE_CTL_CSV_H
#define CARELINE_CTL_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct {
    char **names; /* header fields */
    size_t ncols;
    char ***rows; /* rows[i][j]: record i, field j ("" when the line was short) */
    size_t nrows;
    size_t *lines; /* the file line each record starts on, for error reports */
} CtlCsv;

/* Reads path; false with a sentence in err (file, line and why) on a malformed file (a
 * record with more fields than the header, an unterminated quote, no header). */
bool ctl_csv_read(const char *path, CtlCsv *out, char *err, size_t errlen);
void ctl_csv_free(CtlCsv *c);
/* Writes s as one CSV field (quoted when it holds a comma, quote or line break). */
void ctl_csv_field(FILE *f, const char *s);

#endif
