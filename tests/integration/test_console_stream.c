/*
 * Integration tests of the one queue path (issue 13): station consoles are served from the
 * station's Redis stream. A console reconnecting after a rebuild (FLUSHALL) sees exactly its
 * open jobs, then BacklogEnd; one resuming from its position sees only what it missed; a
 * garbage position gets the full backlog; pushes and state changes (an accept, a cancel)
 * cross daemons through the stream; forged entries are counted and never shown; and serving
 * consoles costs the database no statement per job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "common/util.h"
#include "fixture.h"
#include "irds.h"
#include "isession.h"
#include "istation.h"
#include "itest.h"
#include "t.h"

#define S(x) CARELINE__V1__##x

/* Submits a lunch for resident phone on d; returns the queued job's id (and request id). */
static int64_t submit(const Daemon *d, PGconn *pg, const char *key, const char *phone,
                      int64_t *request)
{
    ClEnvelope *keep;
    Careline__V1__SubmitResult *s = ist_submit_meal(d, pg, fix_key(key), phone, &keep);
    T_EQ_INT(s->state, S(REQUEST_STATE__QUEUED));
    int64_t job = s->job_id;
    if (request)
        *request = s->request_id;
    cl_free(keep);
    return job;
}

/* How many JobOffers k received for job since its offer index from. */
static int pushes_for(const IstConsole *k, int from, int64_t job)
{
    int n = 0;
    for (int i = from; i < k->n; i++)
        n += k->offers[i]->job_id == job;
    return n;
}

/* After a FLUSHALL and the rebuild, a console that reconnects with its old position (of the
 * lost generation) gets exactly the station's open jobs — the accepted one with its phone,
 * not the delivered one — then BacklogEnd with full set. */
static void backlog_after_rebuild(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 43, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phones[3][16];
    for (int i = 0; i < 3; i++)
        fix_resident(pg, &f, i, false, phones[i]);
    irds_srv_start();
    char port[32], pw[600];
    snprintf(port, sizeof(port), "--redis_port=%d", irds_srv_port());
    snprintf(pw, sizeof(pw), "--redis_password_file=%s", irds_srv_pwfile());
    Daemon d;
    itest_daemon_up(&d, (const char *const[]){port, pw, "--redis_user=" IRDS_SRV_USER, NULL});
    IstConsole *k = ist_open(&d, pg, st);
    T_ASSERT(ist_wait_backlog_end(k, 5000));
    T_EQ_INT(k->total, 0);
    int64_t job[3];
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof(key), "reb-%d", i);
        job[i] = submit(&d, pg, key, phones[i], NULL);
        T_ASSERT(ist_wait(k, job[i], S(JOB_STATE__OFFERED), 5000) != NULL);
    }
    ist_update_ok(k, job[0], S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), true);
    ist_update_ok(k, job[2], S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), true);
    ist_update_ok(k, job[2], S(JOB_ACTION__DELIVER), 0, S(JOB_STATE__JOB_DELIVERED), true);
    T_ASSERT(ist_wait(k, job[2], S(JOB_STATE__JOB_DELIVERED), 5000) != NULL);
    char old[80];
    snprintf(old, sizeof(old), "%s", k->position);
    T_ASSERT(old[0] != '\0');
    ist_close(k);

    long rebuilds = itest_metric(d.http_port, "careline_redis_rebuilds_total");
    irds_admin_cmd("127.0.0.1", irds_srv_port(), "FLUSHALL");
    int64_t until = util_now_ms() + 15000;
    while (itest_metric(d.http_port, "careline_redis_rebuilds_total") == rebuilds &&
           util_now_ms() < until)
        usleep(50000);
    T_ASSERT(itest_metric(d.http_port, "careline_redis_rebuilds_total") > rebuilds);

    k = ist_open_at(&d, pg, st, old);
    T_ASSERT(ist_wait_backlog_end(k, 5000));
    T_ASSERT(k->end_full);
    T_EQ_INT(k->offers_at_end, 2); /* exactly the open jobs, nothing after them yet */
    T_EQ_INT(pushes_for(k, 0, job[0]), 1);
    T_EQ_INT(pushes_for(k, 0, job[1]), 1);
    T_EQ_INT(pushes_for(k, 0, job[2]), 0);
    for (int i = 0; i < k->n; i++) {
        const Careline__V1__JobOffer *o = k->offers[i];
        T_ASSERT(!o->state_only);
        T_ASSERT(o->village_name[0] && o->service_date[0] && o->kind && o->window_start_ms > 0);
        T_EQ_STR(o->resident_name_masked, "测**");
        if (o->job_id == job[0]) {
            T_EQ_INT(o->state, S(JOB_STATE__JOB_ACCEPTED));
            T_EQ_STR(o->resident_phone, phones[0]);
        } else {
            T_EQ_INT(o->state, S(JOB_STATE__OFFERED));
            T_EQ_STR(o->resident_phone, "");
        }
    }
    ist_close(k);
    itest_daemon_down(&d);
    irds_srv_kill();
    irds_shared_generation_forget();
    PQfinish(pg);
}

/* An entry Redis refuses (here: XADD taken from the daemon's ACL user) is kept and sent
 * again: the accept on one console reaches the other once Redis takes writes again. */
static void refused_entry_retried(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 49, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    irds_srv_start();
    char port[32], pw[600];
    snprintf(port, sizeof(port), "--redis_port=%d", irds_srv_port());
    snprintf(pw, sizeof(pw), "--redis_password_file=%s", irds_srv_pwfile());
    Daemon d;
    itest_daemon_up(&d, (const char *const[]){port, pw, "--redis_user=" IRDS_SRV_USER, NULL});
    IstConsole *k1 = ist_open(&d, pg, st), *k2 = ist_open(&d, pg, st);
    T_ASSERT(ist_wait_backlog_end(k1, 5000) && ist_wait_backlog_end(k2, 5000));
    int64_t job = submit(&d, pg, "retry-1", phone, NULL);
    T_ASSERT(ist_wait(k2, job, S(JOB_STATE__OFFERED), 5000) != NULL);
    irds_admin_cmd("127.0.0.1", irds_srv_port(), "ACL SETUSER " IRDS_SRV_USER " -xadd");
    ist_update_ok(k1, job, S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), true);
    T_ASSERT(ist_wait(k2, job, S(JOB_STATE__JOB_ACCEPTED), 1500) == NULL); /* refused */
    irds_admin_cmd("127.0.0.1", irds_srv_port(), "ACL SETUSER " IRDS_SRV_USER " +xadd");
    Careline__V1__JobOffer *c = ist_wait(k2, job, S(JOB_STATE__JOB_ACCEPTED), 10000);
    T_ASSERT(c && strcmp(c->resident_phone, phone) == 0);
    T_ASSERT(itest_log_count(&d, "entry not added yet") >= 1);
    ist_close(k1);
    ist_close(k2);
    itest_daemon_down(&d);
    irds_srv_kill();
    irds_shared_generation_forget();
    PQfinish(pg);
}

/* A console resuming from its position gets only what it missed, then BacklogEnd (not full);
 * from the latest position nothing but the marker; a garbage position the full backlog. */
static void resume_from_position(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 44, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phones[4][16];
    for (int i = 0; i < 4; i++)
        fix_resident(pg, &f, i, false, phones[i]);
    Daemon d;
    itest_daemon_up(&d, NULL);
    IstConsole *k = ist_open(&d, pg, st);
    T_ASSERT(ist_wait_backlog_end(k, 5000));
    int64_t seen = submit(&d, pg, "pos-0", phones[0], NULL);
    T_ASSERT(ist_wait(k, seen, S(JOB_STATE__OFFERED), 5000) != NULL);
    char pos[80];
    snprintf(pos, sizeof(pos), "%s", k->position);
    ist_close(k);

    /* while away: two new jobs, and the one it saw is accepted elsewhere (an admin) */
    int64_t j1 = submit(&d, pg, "pos-1", phones[1], NULL);
    int64_t j2 = submit(&d, pg, "pos-2", phones[2], NULL);
    IstConsole *other = ist_open(&d, pg, st);
    T_ASSERT(ist_wait_backlog_end(other, 5000));
    T_EQ_INT(other->offers_at_end, 3);
    ist_update_ok(other, seen, S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), true);
    ist_close(other);

    k = ist_open_at(&d, pg, st, pos);
    T_ASSERT(ist_wait_backlog_end(k, 5000));
    T_ASSERT(!k->end_full);
    T_EQ_INT(k->offers_at_end, 3); /* j1, j2 and the change of the one it knew */
    T_EQ_INT(pushes_for(k, 0, j1), 1);
    T_EQ_INT(pushes_for(k, 0, j2), 1);
    Careline__V1__JobOffer *ch = ist_wait(k, seen, S(JOB_STATE__JOB_ACCEPTED), 100);
    T_ASSERT(ch && ch->state_only && strcmp(ch->resident_phone, phones[0]) == 0);
    snprintf(pos, sizeof(pos), "%s", k->position);
    ist_close(k);

    k = ist_open_at(&d, pg, st, pos); /* current: nothing missed */
    T_ASSERT(ist_wait_backlog_end(k, 5000));
    T_ASSERT(!k->end_full);
    T_EQ_INT(k->offers_at_end, 0);
    /* ...and it is live: a new job arrives */
    int64_t j3 = submit(&d, pg, "pos-3", phones[3], NULL);
    T_ASSERT(ist_wait(k, j3, S(JOB_STATE__OFFERED), 5000) != NULL);
    ist_close(k);

    const char *garbage[] = {"garbage", "9-1-1x", "-1", "1-99999999999999999999999-0"};
    for (size_t g = 0; g < sizeof(garbage) / sizeof(*garbage); g++) {
        k = ist_open_at(&d, pg, st, garbage[g]);
        T_ASSERT(ist_wait_backlog_end(k, 5000));
        T_ASSERT(k->end_full);
        T_EQ_INT(k->offers_at_end, 4); /* every open job */
        ist_close(k);
    }
    /* a console that sends no StationResume (older than it) gets the full backlog */
    k = ist_open_at(&d, pg, st, NULL);
    T_ASSERT(ist_wait_backlog_end(k, 5000));
    T_ASSERT(k->end_full);
    T_EQ_INT(k->offers_at_end, 4);
    ist_close(k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* A job submitted on A reaches a console on B through the stream (B reads its consoles'
 * streams on its own only every minute), and an accept on B's console reaches the station's
 * console on A as a state change. */
static void across_daemons(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 45, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    Daemon a, b;
    itest_daemon_up(&a, (const char *const[]){"--console_refresh_ms=60000", NULL});
    itest_daemon_up(&b, (const char *const[]){"--console_refresh_ms=60000", NULL});
    IstConsole *kb = ist_open(&b, pg, st), *ka = ist_open(&a, pg, st);
    T_ASSERT(ist_wait_backlog_end(kb, 5000) && ist_wait_backlog_end(ka, 5000));
    int64_t req;
    int64_t job = submit(&a, pg, "x-1", phone, &req);
    Careline__V1__JobOffer *o = ist_wait(kb, job, S(JOB_STATE__OFFERED), 5000);
    T_ASSERT(o && o->request_id == req && strcmp(o->resident_name_masked, "测**") == 0);
    T_ASSERT(o->position[0] != '\0' && !o->state_only);
    T_ASSERT(ist_wait(ka, job, S(JOB_STATE__OFFERED), 5000) != NULL);
    ist_update_ok(kb, job, S(JOB_ACTION__ACCEPT), 0, S(JOB_STATE__JOB_ACCEPTED), true);
    Careline__V1__JobOffer *c = ist_wait(ka, job, S(JOB_STATE__JOB_ACCEPTED), 5000);
    T_ASSERT(c && c->state_only && strcmp(c->resident_phone, phone) == 0);
    ist_close(ka);
    ist_close(kb);
    itest_daemon_down(&a);
    itest_daemon_down(&b);
    PQfinish(pg);
}

/* A caller's cancel reaches the station's console as a change (JOB_CANCELLED, the job id
 * found in its reservation), and a later full backlog no longer lists the job. */
static void cancel_reaches_console(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 48, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    Daemon d;
    itest_daemon_up(&d, NULL);
    IstConsole *k = ist_open(&d, pg, st);
    T_ASSERT(ist_wait_backlog_end(k, 5000));
    int64_t job = submit(&d, pg, "cancel-1", phone, NULL);
    T_ASSERT(ist_wait(k, job, S(JOB_STATE__OFFERED), 5000) != NULL);
    ClConn *gw = isess_gateway(&d, pg);
    Careline__V1__CancelRequest q = CARELINE__V1__CANCEL_REQUEST__INIT;
    q.ref_case = CARELINE__V1__CANCEL_REQUEST__REF_IDEMPOTENCY_KEY;
    q.idempotency_key = (char *)fix_key("cancel-1");
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = CARELINE__V1__ENVELOPE__BODY_CANCEL;
    e.cancel = &q;
    ClEnvelope *r = isess_call(&d, gw, &e, 10000, "cancel", NULL, NULL);
    T_EQ_INT(r->body_case, CARELINE__V1__ENVELOPE__BODY_CANCEL_RESULT);
    cl_free(r);
    cl_close(gw);
    Careline__V1__JobOffer *c = ist_wait(k, job, S(JOB_STATE__JOB_CANCELLED), 5000);
    T_ASSERT(c && c->state_only && c->request_id > 0);
    ist_close(k);
    k = ist_open(&d, pg, st);
    T_ASSERT(ist_wait_backlog_end(k, 5000));
    T_ASSERT(k->end_full && !ist_saw(k, job));
    ist_close(k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

static void xadd(redisContext *rd, int64_t st, const char *const *fv, int n)
{
    const char *argv[16];
    size_t lens[16];
    char key[64];
    snprintf(key, sizeof(key), "{c330281}:st:%lld:jobs", (long long)st);
    argv[0] = "XADD";
    argv[1] = key;
    argv[2] = "*";
    for (int i = 0; i < n; i++)
        argv[3 + i] = fv[i];
    for (int i = 0; i < 3 + n; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = redisCommandArgv(rd, 3 + n, argv, lens);
    T_ASSERT(r && r->type == REDIS_REPLY_STRING);
    freeReplyObject(r);
}

/* Forged or malformed stream entries are counted and never reach the console; a genuine
 * job after them still does. */
static void forged_entries_dropped(void)
{
    PGconn *pg = itest_pg();
    redisContext *rd = fix_redis();
    Fixture f;
    fix_area(pg, 46, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    Daemon d;
    itest_daemon_up(&d, NULL);
    IstConsole *k = ist_open(&d, pg, st);
    T_ASSERT(ist_wait_backlog_end(k, 5000));
    long before = itest_metric(d.http_port, "careline_stream_rejected_total");

    Careline__V1__JobOffer o = CARELINE__V1__JOB_OFFER__INIT;
    o.job_id = 987654321;
    o.request_id = 987654321;
    o.state = S(JOB_STATE__OFFERED);
    o.attempt = 1;
    o.address = (char *)"FORGED";
    o.resident_phone = (char *)"13000000000"; /* a phone on an offer nobody accepted */
    uint8_t buf[256];
    size_t len = careline__v1__job_offer__pack(&o, buf);
    char sid[24], other[24];
    snprintf(sid, sizeof(sid), "%lld", (long long)st);
    snprintf(other, sizeof(other), "%lld", (long long)st + 1);
    char *blob = calloc(1, len + 1), *big = malloc(20000);
    memcpy(blob, buf, len);
    memset(big, 'x', 19999);
    big[19999] = 0;
    o.resident_phone = (char *)"";
    uint8_t ok[256];
    size_t oklen = careline__v1__job_offer__pack(&o, ok);
    char *okblob = calloc(1, oklen + 1);
    memcpy(okblob, ok, oklen);
    /* strlen() in xadd: the packed offers here hold no NUL byte except where cut short,
     * which is one more malformed entry */
    xadd(rd, st, (const char *const[]){"t", "o", "st", sid, "job", "987654321", "p", blob}, 8);
    xadd(rd, st, (const char *const[]){"t", "o", "st", other, "job", "987654321", "p", okblob}, 8);
    xadd(rd, st, (const char *const[]){"t", "o", "st", sid, "job", "987654321", "p", "garbage"}, 8);
    xadd(rd, st, (const char *const[]){"st", sid, "job", "987654321", "p", okblob}, 6);
    xadd(rd, st, (const char *const[]){"t", "o", "st", sid, "job", "987654321", "p", big}, 8);
    xadd(rd, st, (const char *const[]){"t", "c", "st", sid, "job", "987654321", "p", okblob}, 8);
    xadd(rd, st, (const char *const[]){"t", "o", "st", sid, "job", "1", "p", okblob}, 8);
    free(blob);
    free(big);
    free(okblob);
    redisReply *r = redisCommand(rd, "PUBLISH {c330281}:wake %lld", (long long)st);
    T_ASSERT(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);

    int64_t job = submit(&d, pg, "forged-1", phone, NULL);
    Careline__V1__JobOffer *got = ist_wait(k, job, S(JOB_STATE__OFFERED), 5000);
    T_ASSERT(got != NULL);
    T_ASSERT(!ist_saw(k, 987654321));
    for (int i = 0; i < k->n; i++)
        T_ASSERT(strstr(k->offers[i]->address, "FORGED") == NULL);
    T_EQ_INT(k->total, 1);
    T_ASSERT(itest_metric(d.http_port, "careline_stream_rejected_total") >= before + 7);
    T_ASSERT(itest_log_count(&d, "careline_stream_rejected_total") >= 1);
    /* a reconnecting console's backlog passes them over too */
    IstConsole *k2 = ist_open(&d, pg, st);
    T_ASSERT(ist_wait_backlog_end(k2, 5000));
    T_EQ_INT(k2->offers_at_end, 1);
    T_ASSERT(ist_saw(k2, job) && !ist_saw(k2, 987654321));
    ist_close(k2);
    ist_close(k);
    itest_daemon_down(&d);
    redisFree(rd);
    PQfinish(pg);
}

/* Serving a console costs its daemon no database statement per job: N jobs submitted on A
 * and pushed to a console on B, one after the other (each needed its own re-read before the
 * stream path), add fewer than N/4 statements on B beyond what an idle stretch as long
 * costs it (its own timers: offer expiry, leases). */
static void no_statements_per_job(void)
{
    enum { N = 40 };
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 47, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 100});
    char phones[N][16];
    for (int i = 0; i < N; i++)
        fix_resident(pg, &f, i, false, phones[i]);
    Daemon a, b;
    itest_daemon_up(&a, NULL);
    itest_daemon_up(&b, NULL);
    IstConsole *k = ist_open(&b, pg, st);
    T_ASSERT(ist_wait_backlog_end(k, 5000));
    long q0 = itest_metric(b.http_port, "careline_pg_queries_total");
    int64_t t0 = util_now_ms();
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof(key), "stmt-%d", i);
        int64_t job = submit(&a, pg, key, phones[i], NULL);
        T_ASSERT(ist_wait(k, job, S(JOB_STATE__OFFERED), 5000) != NULL);
    }
    int64_t busy_ms = util_now_ms() - t0;
    long busy = itest_metric(b.http_port, "careline_pg_queries_total") - q0;
    long q1 = itest_metric(b.http_port, "careline_pg_queries_total");
    usleep((useconds_t)busy_ms * 1000);
    long idle = itest_metric(b.http_port, "careline_pg_queries_total") - q1;
    printf("  %d jobs pushed to a console on B: %ld statements on B (an idle stretch as long: "
           "%ld; %lld ms)\n",
           N, busy, idle, (long long)busy_ms);
    T_ASSERT(busy - idle < N / 4);
    ist_close(k);
    itest_daemon_down(&a);
    itest_daemon_down(&b);
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"console_stream_backlog_after_rebuild", backlog_after_rebuild, 90},
        {"console_stream_refused_entry_retried", refused_entry_retried, 60},
        {"console_stream_resume_from_position", resume_from_position, 60},
        {"console_stream_across_daemons", across_daemons, 60},
        {"console_stream_cancel_reaches_console", cancel_reaches_console, 60},
        {"console_stream_forged_entries_dropped", forged_entries_dropped, 60},
        {"console_stream_no_statements_per_job", no_statements_per_job, 120},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
