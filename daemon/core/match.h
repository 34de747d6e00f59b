/*
 * match: which stations may serve a request, nearest first. Pure: reads a directory
 * snapshot, touches nothing else, so it can be checked against a brute-force scan.
 *
 * Eligible = active, offers the service (and the care subtype), open on the service day for
 * the whole slot, reported open (for today only), with a capacity > 0, and either within
 * the service circle of the resident (travel minutes by the resident's area kind) or
 * listing the resident's village in its explicit service area. Order: travel minutes
 * ascending, then station id (deterministic for ties).
 */
#ifndef CARELINE_MATCH_H
#define CARELINE_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/directory.h"
#include "base/geo.h"

typedef enum {
    MATCH_MEAL_LUNCH,
    MATCH_MEAL_DINNER,
    MATCH_CARE,
} MatchService;

typedef struct {
    double lat, lon;  /* where the service is needed */
    GeoAreaKind area; /* the resident's area kind (decides the travel model) */
    int village;      /* index into DirSnap.villages, -1 if unknown */
    MatchService service;
    int care_subtype;       /* MATCH_CARE: CareSubtype value */
    int weekday;            /* ISO weekday of the service date, 1 = Monday */
    int start_min, end_min; /* local minutes of the slot the station must be open for */
    bool today;             /* the service date is today: the station's open/closed counts */
    int care_visits_per_caregiver;
} MatchQuery;

typedef struct {
    int64_t station_id;
    double km;
    double minutes;
    int limit;    /* the station's capacity for this service and day */
    bool by_area; /* eligible through its explicit service area only */
} MatchCand;

/* Capacity of the station for the service on one day (0 = cannot serve). */
int match_capacity(const Station *st, const MatchQuery *q);

/* true when the station can serve q apart from distance (hours, service, capacity). */
bool match_station_ok(const Station *st, const MatchQuery *q);

/* Writes up to max eligible stations to out, nearest first; returns how many. */
size_t match_find(const DirSnap *s, const TravelModel *m, const MatchQuery *q, MatchCand *out,
                  size_t max);

#endif
