/*
 * gen_people: the vocabulary careline-gen's data sets share (area kinds, station kinds,
 * CSV headers) and the generators of one station's services and one resident's row.
 */
#ifndef CARELINE_GEN_PEOPLE_H
#define CARELINE_GEN_PEOPLE_H

#include "gen_csv.h"
#include "gen_rng.h"

enum { AREA_URBAN, AREA_RURAL, AREA_MOUNTAIN };
extern const char *const gen_area_names[]; /* by AREA_* */
/* village spread around the town point for villages without a source point (km) */
extern const double gen_spread_min_km[], gen_spread_max_km[];
/* share of villages with a station of their own */
extern const double gen_station_share[];

enum { ST_TOWN_CENTRE, ST_VILLAGE_STATION, ST_CANTEEN, ST_MEAL_POINT };
extern const char *const gen_station_suffix[]; /* by ST_*: the name's end */
extern const char *const gen_station_tag[];    /* by ST_*: in the station code */

typedef struct {
    char code[48];
    char name[192];
    const char *town_code;
    const char *village_code; /* NULL for a town centre */
    int kind;
    double lat, lon;
    bool meal, care;
    unsigned care_mask; /* bit i = care_names[i] */
    int cap_lunch, cap_dinner, caregivers, certified;
    const char *opens, *closes;
    int open_days;
    bool terminal;
} Station;

/* Fills a station's service attributes; kind, position and names are the caller's. */
void gen_station_fill(Station *s, Rng *r);
/* One stations.csv row. */
void gen_station_write(Out *o, const Station *s);
/* A station kind for a village site: mostly care stations, some canteens and meal points. */
int gen_station_kind_roll(Rng *r);

typedef struct {
    uint64_t residents, lives_alone, disabled, aged80, cards;
} PeopleStats;

/* One resident row. phone: digits; village_label: the address prefix. */
void gen_resident_write(Out *o, Rng *r, const char *phone, const char *village_code,
                        const char *village_label, double vlat, double vlon, PeopleStats *st);

extern const char *const GEN_STATION_HEADER,
    *const GEN_TOWN_HEADER, *const GEN_VILLAGE_HEADER, *const GEN_SERVICE_AREA_HEADER,
                                                           *const GEN_RESIDENT_HEADER;

#endif
