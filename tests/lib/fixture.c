/*
 * fixture: SQL fixtures and Redis inspection for integration tests (blocking is fine here).
 */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cal.h"
#include "itest.h"
#include "t.h"
#include "common/util.h"

void fix_area(PGconn *pg, int k, Fixture *f)
{
    T_ASSERT(k >= 1 && k <= 99);
    f->k = k;
    snprintf(f->town, sizeof(f->town), "3302818%02d000", k);
    snprintf(f->village, sizeof(f->village), "3302818%02d001", k);
    f->lat = 31.0 + 0.2 * k;
    f->lon = 122.5;
    char lat[32], lon[32], name[64];
    snprintf(lat, sizeof(lat), "%.6f", f->lat);
    snprintf(lon, sizeof(lon), "%.6f", f->lon);
    snprintf(name, sizeof(name), "测试%d", k);
    const char *p[] = {f->town, f->village, lat, lon, name};
    const char *pt[] = {f->town, name, lat, lon};
    PQclear(itest_sql(pg,
                      "INSERT INTO towns (code, name, kind, lat, lon, area_kind) "
                      "VALUES ($1, $2 || '镇', 'town', $3, $4, 'urban') ON CONFLICT DO NOTHING",
                      4, pt));
    /* stations a previous run left here are retired, so each run owns the area's capacity */
    PQclear(itest_sql(pg, "UPDATE stations SET active = false WHERE town_code = $1", 1, pt));
    /* ...and so are its open requests (a waitlist would take the new capacity first) */
    const char *pv[] = {f->village};
    PQclear(itest_sql(pg,
                      "UPDATE jobs SET state = 'rejected', reason = 'test fixture reset' "
                      "WHERE state IN ('offered', 'accepted', 'en_route') AND station_id IN "
                      "(SELECT id FROM stations WHERE town_code = $1)",
                      1, pt));
    PQclear(itest_sql(pg,
                      "UPDATE requests SET state = 'rejected', reason = 'test fixture reset' "
                      "WHERE village_code = $1 AND state IN ('received', 'waitlisted', "
                      "'queued', 'accepted', 'en_route')",
                      1, pv));
    PQclear(itest_sql(pg,
                      "INSERT INTO villages (code, town_code, name, kind, lat, lon, area_kind, "
                      "elderly_population) VALUES ($2, $1, $5 || '村', 'village', $3, $4, "
                      "'urban', 100) ON CONFLICT DO NOTHING",
                      5, p));
}

int64_t fix_station(PGconn *pg, const Fixture *f, const FixStation *s)
{
    static int seq;
    char code[64], lat[32], lon[32], cl[16], cd[16], cg[16], name[96];
    snprintf(code, sizeof(code), "test-%d-%d-%d", f->k, (int)getpid(), ++seq);
    snprintf(name, sizeof(name), "测试%d站%d", f->k, seq);
    snprintf(lat, sizeof(lat), "%.7f", f->lat + s->dlat);
    snprintf(lon, sizeof(lon), "%.7f", f->lon + s->dlon);
    snprintf(cl, sizeof(cl), "%d", s->cap_lunch);
    snprintf(cd, sizeof(cd), "%d", s->cap_dinner);
    snprintf(cg, sizeof(cg), "%d", s->caregivers);
    const char *p[] = {code,
                       name,
                       f->town,
                       f->village,
                       lat,
                       lon,
                       s->meal ? "t" : "f",
                       s->care ? "t" : "f",
                       cl,
                       cd,
                       cg,
                       s->opens ? s->opens : "00:00",
                       s->closes ? s->closes : "23:59"};
    return itest_sql_ll(
        pg,
        "INSERT INTO stations (code, name, town_code, village_code, kind, lat, lon, "
        "offers_meal_delivery, offers_home_care, care_subtypes, meal_capacity_lunch, "
        "meal_capacity_dinner, caregivers, caregivers_certified, opens_at, closes_at) "
        "VALUES ($1, $2, $3, $4, 'village_station', $5, $6, $7, $8, "
        "CASE WHEN $8::boolean THEN '{bathing,cleaning,companionship,medical_escort,care_other}'"
        "::care_subtype[] ELSE '{}' END, $9, $10, $11, 0, $12, $13) RETURNING id",
        13, p);
}

int64_t fix_resident(PGconn *pg, const Fixture *f, int i, bool priority, char phone[16])
{
    snprintf(phone, 16, "17%02d000%04d", f->k % 100, i % 10000);
    char lat[32], lon[32];
    snprintf(lat, sizeof(lat), "%.6f", f->lat + 0.001);
    snprintf(lon, sizeof(lon), "%.6f", f->lon + 0.001);
    const char *p[] = {phone, f->village, lat, lon, priority ? "t" : "f"};
    return itest_sql_ll(pg,
                        "INSERT INTO residents (phone, name, village_code, lat, lon, "
                        "lives_alone, birth_year, synthetic) VALUES ($1, '测试老人', $2, $3, "
                        "$4, $5, 1950, true) ON CONFLICT (phone) DO UPDATE SET "
                        "lives_alone = EXCLUDED.lives_alone RETURNING id",
                        5, p);
}

const char *fix_redis_password(void)
{
    static char pw[600];
    if (pw[0])
        return pw;
    const char *path = t_env("CARELINE_REDIS_PASSWORD_FILE");
    FILE *f = fopen(path, "r");
    if (!f || !fgets(pw, sizeof(pw), f))
        t_fail(__FILE__, __LINE__, "cannot read the Redis password from %s", path);
    fclose(f);
    pw[strcspn(pw, "\r\n")] = '\0';
    return pw;
}

redisContext *fix_redis_connect(const char *host, int port, const char *user, const char *password,
                                char *err, size_t errlen)
{
    struct timeval tv = {5, 0};
    redisContext *r = redisConnectWithTimeout(host, port, tv);
    if (!r || r->err) {
        snprintf(err, errlen, "connect: %s", r ? r->errstr : "out of memory");
        if (r)
            redisFree(r);
        return NULL;
    }
    redisSetTimeout(r, tv);
    if (!user)
        return r;
    redisReply *rep = user[0] ? redisCommand(r, "AUTH %s %s", user, password)
                              : redisCommand(r, "AUTH %s", password);
    bool ok = rep && rep->type == REDIS_REPLY_STATUS;
    snprintf(err, errlen, "%s", !rep ? r->errstr : ok ? "" : rep->str ? rep->str : "?");
    if (rep)
        freeReplyObject(rep);
    if (!ok) {
        redisFree(r);
        return NULL;
    }
    return r;
}

redisContext *fix_redis(void)
{
    char err[256];
    redisContext *r =
        fix_redis_connect(t_env("CARELINE_REDIS_HOST"), atoi(t_env("CARELINE_REDIS_PORT")),
                          t_env("CARELINE_REDIS_USER"), fix_redis_password(), err, sizeof(err));
    if (!r)
        t_fail(__FILE__, __LINE__, "cannot connect to Redis: %s", err);
    return r;
}

long fix_stream_count(redisContext *r, int64_t station_id, int64_t request_id)
{
    char key[96], want[32];
    snprintf(key, sizeof(key), "{c330281}:st:%lld:jobs", (long long)station_id);
    snprintf(want, sizeof(want), "%lld", (long long)request_id);
    redisReply *rep = redisCommand(r, "XRANGE %s - +", key);
    T_ASSERT(rep && rep->type == REDIS_REPLY_ARRAY);
    long n = 0;
    for (size_t i = 0; i < rep->elements; i++) {
        redisReply *fields = rep->element[i]->element[1];
        for (size_t j = 0; j + 1 < fields->elements; j += 2)
            if (strcmp(fields->element[j]->str, "request") == 0 &&
                (request_id == 0 || strcmp(fields->element[j + 1]->str, want) == 0))
                n++;
    }
    freeReplyObject(rep);
    return n;
}

long fix_redis_int(redisContext *r, const char *key)
{
    redisReply *rep = redisCommand(r, "GET %s", key);
    T_ASSERT(rep);
    long v = rep->type == REDIS_REPLY_STRING ? atol(rep->str) : 0;
    freeReplyObject(rep);
    return v;
}

const char *fix_key(const char *name)
{
    static char ring[16][96];
    static int next;
    static long run;
    if (!run)
        run = (long)time(NULL) % 1000000 * 100 + getpid() % 100;
    char *out = ring[next++ % 16];
    snprintf(out, sizeof(ring[0]), "%s-%ld", name, run);
    return out;
}

const char *fix_tomorrow(void)
{
    static char b[11];
    cal_format(cal_day_of(util_wall_ms(), NULL) + 1, b);
    return b;
}
