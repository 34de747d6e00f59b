/*
 * careline-gen: deterministic synthetic data sets as CSV files ready for `\copy ... csv header`.
 * `yuyao` fills in the real Yuyao towns and villages (data/yuyao) with derived points,
 * synthetic elderly counts, stations and residents; `national` streams a country-sized set.
 * Every random choice comes from splitmix64 keyed by (seed, purpose, entity), and no libm
 * call feeds the output, so one seed gives the same bytes on every machine. This file is
 * the command line; the generators are in tools/lib/gen_*.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "gen_sets.h"

#define GEN_VERSION "careline-gen/1"

static void usage(FILE *f)
{
    fprintf(f, "usage: careline-gen yuyao [--data DIR] [--seed N] --out DIR\n"
               "       careline-gen national [--villages N] [--stations N] [--residents N]\n"
               "                             [--seed N] --out DIR\n"
               "       careline-gen --version | --help\n"
               "\n"
               "Writes towns.csv, villages.csv, stations.csv, station_service_area.csv and\n"
               "residents.csv (header line, ready for psql \\copy ... csv header) into DIR.\n"
               "The same arguments give the same bytes on every machine.\n"
               "\n"
               "  --data DIR       yuyao: directory with towns.csv and villages.csv\n"
               "                   (default data/yuyao)\n"
               "  --seed N         unsigned 64-bit seed (default 20261129)\n"
               "  --out DIR        output directory (created if missing)\n"
               "  --villages N     national: villages (default 600000)\n"
               "  --stations N     national: stations, one centre per town first (default N/3)\n"
               "  --residents N    national: residents, at most 100000000 (default 10000000)\n"
               "\n"
               "Everything generated is synthetic (marked synthetic=true, station names end in\n"
               "（模拟）, phones 1390000NNNN / 100NNNNNNNN); see data/yuyao/ATTRIBUTION.md.\n"
               "A summary goes to stderr.\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    GenOpts o = {.seed = 20261129,
                 .data_dir = "data/yuyao",
                 .villages = 600000,
                 .stations = -1,
                 .residents = 10000000};
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *mode = argv[1];
    if (strcmp(mode, "--help") == 0 || strcmp(mode, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(mode, "--version") == 0) {
        puts(GEN_VERSION);
        return 0;
    }
    bool national = strcmp(mode, "national") == 0;
    if (!national && strcmp(mode, "yuyao") != 0) {
        log_error("unknown data set \"%s\" (yuyao or national)", mode);
        usage(stderr);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n = 0;
        if (!v) {
            log_error("%s needs a value", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--data") == 0 && !national) {
            o.data_dir = v;
        } else if (strcmp(a, "--out") == 0) {
            o.out_dir = v;
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_u64(v, &o.seed)) {
                log_error("bad --seed %s", v);
                return 2;
            }
        } else if (national && (strcmp(a, "--villages") == 0 || strcmp(a, "--stations") == 0 ||
                                strcmp(a, "--residents") == 0)) {
            if (!parse_u64(v, &n) || n > 100000000ULL) {
                log_error("bad %s %s (0..100000000)", a, v);
                return 2;
            }
            if (a[2] == 'v')
                o.villages = (long)n;
            else if (a[2] == 's')
                o.stations = (long)n;
            else
                o.residents = (long)n;
        } else {
            log_error("unknown option %s for %s", a, mode);
            usage(stderr);
            return 2;
        }
    }
    if (!o.out_dir) {
        log_error("--out DIR is required");
        return 2;
    }
    if (mkdir(o.out_dir, 0777) != 0 && errno != EEXIST) {
        log_error("cannot create %s: %s", o.out_dir, strerror(errno));
        return 1;
    }
    if (!national)
        return gen_yuyao(&o);
    if (o.villages < 1) {
        log_error("--villages must be at least 1");
        return 2;
    }
    if (o.stations < 0)
        o.stations = o.villages / 3;
    return gen_national(&o);
}
