/*
 * gen_sets: careline-gen's two data sets. Each writes towns.csv, villages.csv, stations.csv,
 * station_service_area.csv and residents.csv into o->out_dir (which must exist), prints a
 * summary to stderr and returns the exit status (0, or 1 after logging why).
 */
#ifndef CARELINE_GEN_SETS_H
#define CARELINE_GEN_SETS_H

#include <stdint.h>

typedef struct {
    uint64_t seed;
    const char *data_dir;
    const char *out_dir;
    long villages, stations, residents; /* national */
} GenOpts;

/* The real Yuyao towns and villages from o->data_dir, with synthetic points, elderly
 * counts, stations and residents. */
int gen_yuyao(const GenOpts *o);
/* A country-sized set over China's bounding box, streamed (o->stations >= 0). */
int gen_national(const GenOpts *o);

#endif
