/*
 * cal: proleptic Gregorian day arithmetic (Howard Hinnant's days_from_civil) on a fixed
 * UTC+8 offset.
 */
#include "base/cal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static CalDay days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(CalDay z, int *y, int *m, int *d)
{
    z += 719468;
    int era = (z >= 0 ? z : z - 146096) / 146097;
    int doe = z - era * 146097;
    int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp + (mp < 10 ? 3 : -9);
    *y = yoe + era * 400 + (*m <= 2);
}

CalParse cal_parse_checked(const char *s, CalDay *out)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return CAL_MALFORMED;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return CAL_MALFORMED;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1] + (m == 2 && leap))
        return CAL_NO_SUCH_DAY;
    if (y < 1900 || y > 2999)
        return CAL_OUT_OF_RANGE;
    *out = days_from_civil(y, m, d);
    return CAL_OK;
}

bool cal_parse(const char *s, CalDay *out)
{
    return cal_parse_checked(s, out) == CAL_OK;
}

void cal_format(CalDay day, char out[11])
{
    int y, m, d;
    civil_from_days(day, &y, &m, &d);
    /* days come from cal_parse or the clock, so the year has 4 digits */
    snprintf(out, 11, "%04u-%02u-%02u", (unsigned)y % 10000u, (unsigned)m % 13u, (unsigned)d % 32u);
}

void cal_month_day(CalDay day, int *month, int *mday)
{
    int y;
    civil_from_days(day, &y, month, mday);
}

int cal_weekday(CalDay d)
{
    /* 1970-01-01 was a Thursday (4) */
    int w = (int)((d % 7 + 7) % 7);
    return (w + 3) % 7 + 1;
}

CalDay cal_day_of(int64_t unix_ms, int *minute_of_day)
{
    int64_t local_min = unix_ms / 60000 + CAL_UTC_OFFSET_MIN;
    if (unix_ms < 0 && unix_ms % 60000)
        local_min--;
    int64_t day = local_min >= 0 ? local_min / 1440 : -((-local_min + 1439) / 1440);
    if (minute_of_day)
        *minute_of_day = (int)(local_min - day * 1440);
    return (CalDay)day;
}

int64_t cal_unix_ms(CalDay d, int minute)
{
    return ((int64_t)d * 1440 + minute - CAL_UTC_OFFSET_MIN) * 60000;
}

bool cal_parse_hhmm(const char *s, int *out)
{
    int h, m, n = 0;
    if (sscanf(s, "%2d:%2d%n", &h, &m, &n) != 2 || h < 0 || h > 23 || m < 0 || m > 59)
        return false;
    *out = h * 60 + m;
    return true;
}
