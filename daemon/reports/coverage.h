/*
 * coverage: the static coverage computation behind the bureau's "villages reached by meal
 * delivery" indicator, and greedy planning of new station sites. Pure and in-memory: the
 * caller loads villages, stations and service areas from Postgres and stores the results.
 *
 * A village is covered when an active meal-delivery station (ST_ACTIVE | ST_MEAL) reaches
 * its centroid within the service circle, geo_minutes(model, village.area, km) <=
 * model->circle_min (the VILLAGE's area kind, inclusive), or when such a station lists the
 * village explicitly in its service area.
 */
#ifndef CARELINE_COVERAGE_H
#define CARELINE_COVERAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "careline.pb-c.h"
#include "base/geo.h"
#include "core/stindex.h"
#include "common/util.h"

typedef struct {
    int64_t code;     /* village division code (统计用区划代码), carried through */
    uint32_t town;    /* index of its town, < n_towns */
    double lat, lon;  /* centroid, degrees */
    GeoAreaKind area; /* decides speed and detour for every trip to this village */
    uint32_t elderly; /* people aged 60+ */
    bool approx;      /* centroid is approximate (counted in CovTally.approx) */
} CovVillage;

typedef struct {
    int64_t station_id; /* a listing by an unknown or non-qualifying station is ignored */
    size_t village;     /* index into the villages array, < n_villages */
} CovServiceArea;

typedef struct {
    bool covered;       /* reached || listed */
    bool reached;       /* a qualifying station lies within the circle */
    bool listed;        /* a qualifying station lists it */
    int64_t station_id; /* reached: the nearest qualifying station (ties: lowest id);
                         * else listed: the lowest-id qualifying listing station;
                         * else 0 */
    double minutes;     /* travel minutes from station_id; INFINITY when there is none */
} CovVillageResult;

typedef struct {
    size_t villages;          /* villages counted */
    size_t covered;           /* of which covered */
    double rate;              /* covered / villages; 0 when villages == 0 */
    uint64_t elderly;         /* people aged 60+ in those villages */
    uint64_t elderly_covered; /* of which in covered villages */
    double rate_elderly;      /* elderly_covered / elderly; 0 when elderly == 0 */
    size_t approx;            /* villages with an approximate centroid */
} CovTally;

typedef struct {
    CovVillageResult *village; /* [n_villages], same order as the input */
    size_t n_villages;
    CovTally *town; /* [n_towns] */
    size_t n_towns;
    CovTally county;
} CovReport;

/* true when the station counts for coverage: ST_ACTIVE and ST_MEAL. */
bool coverage_qualifies(const StStation *st);

/* Computes coverage. stations is only read (borrowed for the call). Returns a report
 * owned by the caller (coverage_report_free), or NULL after logging when the model is
 * invalid, a village's town or area kind is out of range, or a service area names a
 * village index out of range. */
CovReport *coverage_compute(const CovVillage *villages, size_t n_villages, size_t n_towns,
                            const StIndex *stations, const CovServiceArea *areas, size_t n_areas,
                            const TravelModel *model);
void coverage_report_free(CovReport *r);

/* ---- planning ---------------------------------------------------------------------------- */

typedef struct {
    double lat, lon; /* candidate site, degrees */
    size_t village;  /* the village whose centroid it is, SIZE_MAX for a supplied point */
} CovSite;

typedef struct {
    size_t candidate;     /* index into CovPlan.site */
    size_t newly_covered; /* villages this site adds */
    size_t covered;       /* county villages covered after this step */
    double rate;          /* covered / villages after this step */
} CovPlanStep;

typedef struct {
    CovSite *site; /* [n_sites] the candidates considered */
    size_t n_sites;
    CovPlanStep *step; /* [n_steps] in the order chosen */
    size_t n_steps;
    size_t covered_before; /* villages covered by the current stations */
    size_t need;           /* covered villages needed for rate >= target */
    bool reached;          /* the final rate is >= target */
} CovPlan;

/* Greedy maximal covering. A new station at a site covers village v when
 * geo_minutes(model, v.area, geo_km(site, v)) <= circle (service areas do not apply to new
 * sites). Candidates: sites[0..n_sites) when sites != NULL, else the centroids of the
 * villages uncovered in `now`, in village order. Repeatedly adds the candidate covering the
 * most still-uncovered villages (ties: lowest candidate index) until the village rate is
 * >= target_rate or no candidate adds any. `now` must come from coverage_compute over the
 * same villages. Returns a plan owned by the caller (coverage_plan_free), or NULL after
 * logging on bad input (target outside [0, 1], a site with a bad coordinate). */
CovPlan *coverage_plan(const CovVillage *villages, size_t n_villages, const CovReport *now,
                       const TravelModel *model, const CovSite *sites, size_t n_sites,
                       double target_rate);
void coverage_plan_free(CovPlan *p);

#define COV_OPTIMAL_MAX_SITES 20

/* Exhaustive search for tests and small what-ifs: the fewest candidates (same candidate
 * rules as coverage_plan) reaching target_rate. On success *count is that number and
 * *mask the lowest such subset (bit i = candidate i) in enumeration order; false when the
 * target is unreachable or there are more than COV_OPTIMAL_MAX_SITES candidates. */
bool coverage_plan_optimal(const CovVillage *villages, size_t n_villages, const CovReport *now,
                           const TravelModel *model, const CovSite *sites, size_t n_sites,
                           double target_rate, size_t *count, uint32_t *mask) MUSTCHECK;

#endif
