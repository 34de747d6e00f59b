/*
 * fixture: isolated little areas for integration tests — a town, a village and stations
 * far out at sea east of Yuyao (lat 31 + 0.2 k, lon 122.5), so no Yuyao station reaches
 * them and each test case owns its capacities. Codes are 3302818KK000 (town) and
 * 3302818KK001 (village); test residents' phones are 17KK000NNNN.
 */
#ifndef CARELINE_FIXTURE_H
#define CARELINE_FIXTURE_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int k;
    char town[16], village[16];
    double lat, lon;
} Fixture;

typedef struct {
    bool meal, care;
    int cap_lunch, cap_dinner, caregivers;
    const char *opens, *closes; /* "HH:MM"; NULL = 00:00 / 23:59 */
    double dlat, dlon;          /* offset from the village point, degrees */
} FixStation;

/* Creates (or reuses) area k, 1 <= k <= 99. */
void fix_area(PGconn *pg, int k, Fixture *f);
/* Adds a station; returns its id. */
int64_t fix_station(PGconn *pg, const Fixture *f, const FixStation *s);
/* Adds resident i of the area (priority: lives alone); writes its phone. Returns its id. */
int64_t fix_resident(PGconn *pg, const Fixture *f, int i, bool priority, char phone[16]);

/* A blocking Redis connection to the test server, authenticated as the stack's ACL user
 * (CARELINE_REDIS_USER, password in CARELINE_REDIS_PASSWORD_FILE). */
redisContext *fix_redis(void);
/* A blocking connection to host:port that sends AUTH user password first (user NULL: no
 * AUTH at all; "" : AUTH password). NULL when connecting or AUTH fails, the reason (Redis'
 * error text) in err. */
redisContext *fix_redis_connect(const char *host, int port, const char *user, const char *password,
                                char *err, size_t errlen);
/* The test server's password: the first line of CARELINE_REDIS_PASSWORD_FILE (static). */
const char *fix_redis_password(void);
/* Number of entries in a station's job stream whose 'request' field is request_id
 * (request_id 0: all entries). */
long fix_stream_count(redisContext *r, int64_t station_id, int64_t request_id);
/* Integer value of a Redis key (0 when missing). */
long fix_redis_int(redisContext *r, const char *key);

/* name + a suffix unique to this test run (so a run never meets an earlier run's
 * idempotency keys); a ring of 16 static buffers. */
const char *fix_key(const char *name);

/* Tomorrow in the county (Asia/Shanghai), "YYYY-MM-DD". */
const char *fix_tomorrow(void);

#endif
