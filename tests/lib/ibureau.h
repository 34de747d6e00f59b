/*
 * ibureau: the bench the bureau's integration tests run on: a dispatchd with a bureau and a
 * gateway principal, a hand-made town far from Yuyao whose every figure is worked out
 * below, and CoverageQuery and HTTP helpers. Every wait is bounded; a missing or wrong
 * answer fails the case (t_fail).
 *
 * The town stays in the database afterwards (request_events is append-only, so the requests
 * made on it cannot be removed); its setup is idempotent, and it lies 1,500 km from Yuyao,
 * so it never reaches a Yuyao village or resident.
 *
 * Stations (town 330281901000 "测试镇", all village stations):
 *   BT-S1 active, meal, at (40.0, 100.0); 4 caregivers, 2 certified; lists V5; terminal on
 *   BT-S2 meal but INACTIVE, at V4
 *   BT-S3 active, home care only, at V6; 2 caregivers, 1 certified
 * Villages (all rural: 1.4 detour, 30 km/h, so 15 min = 5.357 km great-circle):
 *   V1 (40.01, 100)   1.112 km from S1, 3.1 min: covered            elderly 100
 *   V2 exactly on S1's 15-minute edge (bisected on doubles): covered   elderly  50
 *   V3 one double further north: NOT covered                         elderly  30
 *   V4 (40.2, 100) on the inactive S2: NOT covered                   elderly  20
 *   V5 (41.0, 100) 111 km away, listed by S1: covered; approximate   elderly  40
 *   V6 (40.21, 100) on the care-only S3: NOT covered                 elderly   0
 * Town: 3 / 6 villages = 0.5; elderly 190 / 240 = 0.791666...; 1 approximate centroid.
 * Village stations active: S1, S3; with a session today: S1 -> terminal share 0.5; equipped
 * (has_terminal): S1 -> 0.5. Certified 2 + 1 = 3 per 240 elderly -> 125 per 10,000.
 * Plan to 1.0 (candidates V3, V4, V6 in village order): V4's site reaches V4 and V6
 * (1.1 km apart; tie with V6's site, lowest index wins), then V3: 2 sites = the optimum.
 * Residents 19900000001..4 live in V1, 19900000005 in V6.
 */
#ifndef CARELINE_IBUREAU_H
#define CARELINE_IBUREAU_H

#include <jansson.h>
#include <libpq-fe.h>

#include "itest.h"

#define IBUR_TOWN "330281901000" /* the hand-made town's code */

typedef struct {
    Daemon d;             /* dispatchd: from ibur_start until ibur_finish */
    char bureau_tok[64];  /* a fresh bureau principal's token (ibur_start) */
    char gateway_tok[64]; /* a fresh gateway principal's token (ibur_start) */
    double v2_lat;        /* V2's latitude, the last double inside S1's circle (ibur_town) */
    double v3_lat;        /* V3's latitude, the next double: outside it (ibur_town) */
} IburRig;

/* Creates the town above if it is not there yet (and today's terminal session of BT-S1),
 * and sets rig->v2_lat and rig->v3_lat. */
void ibur_town(IburRig *rig, PGconn *pg);
/* The id of the station with that code; 0 when there is none. */
long ibur_station_id(PGconn *pg, const char *code);

/* Makes the two principals, starts dispatchd and waits until it is ready. */
void ibur_start(IburRig *rig, PGconn *pg);
/* Stops dispatchd: it must exit 0 within 10 s. */
void ibur_finish(IburRig *rig);

/* Sends q on c and waits up to 20 s; fails the case unless the answer is a CoverageReport.
 * Returns the reply (cl_free it). q stays the caller's. */
ClEnvelope *ibur_report(const IburRig *rig, ClConn *c, Careline__V1__CoverageQuery *q);
/* Sends q on c; fails the case unless the answer is a non-fatal Error with code and (when
 * field is not NULL) that field, and a message of more than ten bytes. */
void ibur_expect_invalid(const IburRig *rig, ClConn *c, Careline__V1__CoverageQuery *q, int code,
                         const char *field);

/* One HTTP request to the daemon's HTTP port, with "Authorization: Bearer token" and
 * "Accept: accept" when they are not NULL, waiting up to 60 s. Returns the status; the body
 * is malloc'd into *body (free it). Fails the case when no valid response arrives. */
int ibur_http(const IburRig *rig, const char *method, const char *path, const char *token,
              const char *accept, char **body);
/* GET path; fails the case unless the status is want_status and the body JSON. Returns it
 * (json_decref it). */
json_t *ibur_http_json(const IburRig *rig, const char *path, const char *token, int want_status);
/* method path; fails the case unless the status is status and the body a JSON error (whose
 * "field" is field, when field is not NULL). */
void ibur_http_expect(const IburRig *rig, const char *method, const char *path, const char *token,
                      int status, const char *field);

/* The county's day back days before today ("YYYY-MM-DD"; back -1 is tomorrow). */
void ibur_day(char out[11], int back);

#endif
