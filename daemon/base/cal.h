/*
 * cal: calendar days and wall-clock minutes in the county's time zone. China has kept
 * UTC+8 without daylight saving since 1991, so a fixed offset is exact and needs no tzdata
 * (PostgreSQL's careline_local_date() uses Asia/Shanghai and agrees).
 */
#ifndef CARELINE_CAL_H
#define CARELINE_CAL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"

#define CAL_UTC_OFFSET_MIN (8 * 60)

/* A calendar day as days since 1970-01-01 (local). */
typedef int32_t CalDay;

/* Parses "YYYY-MM-DD" (a real date, 1900..2999); false otherwise. */
bool cal_parse(const char *s, CalDay *out) MUSTCHECK;

typedef enum {
    CAL_OK,           /* *out is the day */
    CAL_MALFORMED,    /* not YYYY-MM-DD */
    CAL_NO_SUCH_DAY,  /* YYYY-MM-DD, but no such day (2026-02-30, 2026-13-01) */
    CAL_OUT_OF_RANGE, /* a real day, outside 1900..2999 (9999-12-31) */
} CalParse;
/* cal_parse, saying what is wrong, so an error can call a date out of range rather than
 * not a date. */
CalParse cal_parse_checked(const char *s, CalDay *out) MUSTCHECK;
/* Writes "YYYY-MM-DD" (11 bytes with the NUL). */
void cal_format(CalDay d, char out[11]);
/* Month and day of month, for sentences ("3月5日"). */
void cal_month_day(CalDay d, int *month, int *mday);
/* ISO weekday, 1 = Monday .. 7 = Sunday. */
int cal_weekday(CalDay d);
/* The local day and minute of the day for a Unix time in ms. */
CalDay cal_day_of(int64_t unix_ms, int *minute_of_day);
/* Unix ms of local day d at minute m (m may exceed 1440 to roll over). */
int64_t cal_unix_ms(CalDay d, int minute);
/* Parses "HH:MM" into minutes since midnight; false otherwise. */
bool cal_parse_hhmm(const char *s, int *out) MUSTCHECK;

#endif
