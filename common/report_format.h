/*
 * report_format: CoverageReport (proto/careline.proto) as JSON or CSV.
 */
#ifndef CARELINE_REPORT_FORMAT_H
#define CARELINE_REPORT_FORMAT_H

#include <stddef.h>
#include <jansson.h>
#include <stdio.h>

#include "careline.pb-c.h"

/* The bureau's report (as the daemon sends it in CoverageReport) as JSON or CSV, for the
 * HTTP endpoints and `bureau --format json|csv`, so both print the same shapes.
 * JSON: one object with the parts the scope fills ("county", "indicators", "towns",
 * "villages", "history", "plan", "realized", "unmet"). CSV: one table per scope, a header line then
 * one line per row (county: the county or asked-for town; towns: the county line first).
 * Returns a malloc'd NUL-terminated string (*len, when given, gets its length). */
char *report_json(const Careline__V1__CoverageReport *r, Careline__V1__CoverageScope scope,
                  size_t *len);
char *report_csv(const Careline__V1__CoverageReport *r, Careline__V1__CoverageScope scope,
                 size_t *len);

/* Appends s to f as one CSV field (quoted when it holds a comma, quote, CR or LF). */
void report_csv_field(FILE *f, const char *s);
/* json_dumps(o, flags) with a trailing newline, as the JSON answers end; takes o (decref'd).
 * *len (if len) gets the length. Never NULL. */
char *report_json_line(json_t *o, size_t flags, size_t *len);

#endif
