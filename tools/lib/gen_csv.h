/*
 * gen_csv: careline-gen's files. Output CSVs are written as NAME.tmp and renamed when
 * complete; input CSVs are our own checked-in files (comma-separated, no quoting), read
 * line by line with their header checked. Every failure logs FILE[:LINE] and exits 1.
 */
#ifndef CARELINE_GEN_CSV_H
#define CARELINE_GEN_CSV_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define GEN_LINE_MAX   4096
#define GEN_FIELDS_MAX 16

typedef struct {
    FILE *f;
    char path[1024];
    char tmp[1040];
    uint64_t rows;
} Out;

/* Creates DIR/NAME.tmp and writes the header line. */
void gen_out_open(Out *o, const char *dir, const char *name, const char *header);
/* Closes and renames to DIR/NAME. */
void gen_out_close(Out *o);
/* "true" / "false" */
const char *gen_tf(bool b);

typedef struct {
    FILE *f;
    const char *path;
    int line;
    char buf[GEN_LINE_MAX];
    char *field[GEN_FIELDS_MAX];
    int nfield;
} CsvIn;

/* Opens DIR/NAME and checks its header line is exactly header. */
void gen_csv_open(CsvIn *c, const char *dir, const char *name, const char *header);
/* Reads the next line into c->field[0..nfield); false at the end of the file. */
bool gen_csv_next(CsvIn *c);

/* true when s is 12 digits (a village or town code). */
bool gen_is_code12(const char *s);
/* Parses a number within lo..hi. */
bool gen_parse_coord(const char *s, double lo, double hi, double *out);

#endif
