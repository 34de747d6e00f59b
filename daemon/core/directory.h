/*
 * directory: the daemon's in-memory copy of what PostgreSQL says about places — towns,
 * villages (centroid, area kind, elderly population) and stations (location, services,
 * capacities, hours, explicit service areas) — with a spatial index over the stations.
 *
 * It loads asynchronously at start and reloads when PostgreSQL announces a station change
 * (NOTIFY careline_stations), coalescing bursts. A reload builds a new DirSnap and swaps it
 * in; the old one is freed at once, so callers must not keep DirSnap pointers across a
 * return to the event loop (copy the few fields they need instead).
 */
#ifndef CARELINE_DIRECTORY_H
#define CARELINE_DIRECTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "base/geo.h"
#include "store/pg.h"
#include "core/stindex.h"

typedef struct {
    char code[16]; /* first: directory.c searches by it */
    char *name;
} Town;

typedef struct {
    char code[16]; /* first: directory.c searches by it */
    char *name;
    int town;        /* index into DirSnap.towns */
    double lat, lon; /* GCJ-02 */
    GeoAreaKind area;
    int elderly;            /* aged 60+ */
    bool approx;            /* location derived, not surveyed */
    int first_area, n_area; /* slice of DirSnap.area_stations: stations listing this village */
} Village;

typedef struct {
    int64_t id;
    char *name;
    int town;    /* index into towns */
    int village; /* index into villages, -1 for a town centre */
    double lat, lon;
    bool active, meal, care;
    uint32_t care_subtypes; /* bit (1 << CareSubtype) per subtype offered */
    int cap_lunch, cap_dinner;
    int caregivers, caregivers_certified;
    int caregivers_on_duty;    /* -1 = not reported */
    int opens_min, closes_min; /* local minutes since midnight */
    int open_days;             /* bit (ISO weekday - 1) */
    bool is_open;              /* as last reported by the station */
    bool has_terminal;
} Station;

typedef struct DirSnap {
    Town *towns;
    int ntowns;
    Village *villages; /* sorted by code */
    int nvillages;
    Station *stations; /* StStation.user indexes this array */
    int nstations;
    int64_t *area_stations; /* station ids, grouped by village (see Village.first_area) */
    int narea;
    StIndex *index;
    StIndex *village_index; /* village centroids; StStation.id = index into villages */
    uint64_t version;       /* increases with every reload */
} DirSnap;

typedef struct Directory Directory;

/* Starts loading and listening; on_change (may be NULL) fires after each (re)load. */
Directory *dir_new(PgPool *pg, void (*on_change)(void *arg), void *arg);
void dir_free(Directory *d);

/* The current snapshot, or NULL until the first load completed. */
const DirSnap *dir_snap(const Directory *d);

/* Asks for a reload now (coalesced with one in progress). */
void dir_reload(Directory *d);

const Station *dir_station(const DirSnap *s, int64_t id);
const Village *dir_village(const DirSnap *s, const char *code);

/* true when some village centroid lies within km of the point: "inside the county". */
bool dir_near_village(const DirSnap *s, double lat, double lon, double km);

#endif
