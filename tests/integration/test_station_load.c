/*
 * Integration tests of consoles under load: a console that stops reading is cut off at its
 * output limit (also from inside a push) with its jobs kept offered and given back on
 * reconnect, and many consoles' periodic re-reads are batched into a few statements.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"
#include "isession.h"
#include "istation.h"
#include "itest.h"
#include "t.h"
#include "common/util.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

/* A console that stops reading while jobs keep coming is cut off at the output limit; the
 * jobs stay offered in PostgreSQL and come back on reconnect. */
static void non_reading_console(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 39, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 5000});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    Daemon d;
    itest_daemon_up(&d, (const char *const[]){"--obuf_soft_bytes=4096", "--obuf_hard_bytes=131072",
                                              "--obuf_soft_seconds=1", "--so_sndbuf_bytes=4096",
                                              "--priority_reserve_pct=0", NULL});
    IstConsole *k = ist_open(&d, pg, st);
    int small = 2048;
    setsockopt(cl_fd(k->c), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    char err[128];
    ClConn *g = isess_gateway(&d, pg);
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        char key[96];
        snprintf(key, sizeof(key), "%s-%d", fix_key("nr"), i);
        Careline__V1__SubmitRequest m;
        isess_meal(&m, key, phone);
        static char note[] = "请放在门口的小桌子上，谢谢。老人听力不好，请多敲几次门。";
        m.note = note;
        ClEnvelope *r = isess_submit(&d, g, &m, 10000);
        T_ASSERT(r && r->body_case == BODY(SUBMIT_RESULT));
        cl_free(r);
    }
    cl_close(g);
    bool cut = false;
    for (int i = 0; i < 100 && !cut; i++) {
        cut = itest_metric(d.http_port, "careline_obuf_closes_total") >= 1;
        usleep(100000);
    }
    T_ASSERT(cut);
    T_EQ_INT(ist_sql_long(
                 pg, "SELECT count(*) FROM jobs WHERE station_id = $1 AND state = 'offered'", st),
             N);
    ist_close(k);
    /* back again, reading: the whole backlog */
    k = ist_open(&d, pg, st);
    int64_t deadline = util_now_ms() + 20000;
    while (k->total < N && util_now_ms() < deadline) {
        ClEnvelope *e = cl_recv(k->c, 1000, err, sizeof(err));
        if (e)
            ist_take(k, e);
    }
    T_EQ_INT(k->total, N);
    ist_close(k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* A console that stops reading while offers for its station keep being pushed is cut off at
 * the hard output limit from inside the push itself (not later by the soft-limit timer), with
 * no re-read in flight, so the close drops the session's last reference in the middle of the
 * push. The daemon must survive it (under ASan a use of the freed session aborts it) and the
 * jobs stay offered. */
static void offers_to_stalled_console(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 42, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 5000});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    Daemon d;
    itest_daemon_up(&d, (const char *const[]){
                            "--max_frame_bytes=8192", "--obuf_soft_bytes=4096",
                            "--obuf_hard_bytes=16384", "--obuf_soft_seconds=3600",
                            "--so_sndbuf_bytes=4096", "--console_refresh_ms=600000",
                            "--heartbeat_interval_ms=3600000", "--priority_reserve_pct=0", NULL});
    IstConsole *k = ist_open(&d, pg, st);
    int small = 2048;
    setsockopt(cl_fd(k->c), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    usleep(300000); /* the backlog re-read and the terminal row are done: the map's ref only */
    char tok[64], err[128];
    ClConn *g = itest_login(&d, itest_make_token(pg, "gateway", 0, tok));
    enum { N = 200 };
    int queued = 0;
    for (int i = 0; i < N; i++) {
        char key[96];
        snprintf(key, sizeof(key), "%s-%d", fix_key("stall"), i);
        Careline__V1__SubmitRequest m = CARELINE__V1__SUBMIT_REQUEST__INIT;
        m.idempotency_key = key;
        m.who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE;
        m.caller_phone = phone;
        m.kind = S(SERVICE_KIND__MEAL_DELIVERY);
        m.meal_slot = S(MEAL_SLOT__LUNCH);
        m.service_date = (char *)fix_tomorrow();
        static char note[] = "请放在门口的小桌子上，谢谢。老人听力不好，请多敲几次门。";
        m.note = note;
        ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
        e.body_case = BODY(SUBMIT);
        e.submit = &m;
        ClEnvelope *r = cl_call(g, &e, 10000, err, sizeof(err), NULL, NULL);
        if (!r) {
            itest_daemon_dump_log(&d);
            t_fail(__FILE__, __LINE__, "submit %d: %s (did the daemon die?)", i, err);
        }
        T_ASSERT(r->body_case == BODY(SUBMIT_RESULT));
        queued += r->submit_result->state == S(REQUEST_STATE__QUEUED);
        cl_free(r);
    }
    cl_close(g);
    T_EQ_INT(queued, N);
    T_ASSERT(itest_metric(d.http_port, "careline_obuf_closes_total") >= 1);
    T_ASSERT(itest_daemon_alive(&d));
    T_EQ_INT(ist_sql_long(
                 pg, "SELECT count(*) FROM jobs WHERE station_id = $1 AND state = 'offered'", st),
             N);
    ist_close(k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* The periodic read of many consoles' feeds costs the database nothing: 60 consoles read
 * every 200 ms are read from their stations' Redis streams on each 1 s tick; in 4 s only
 * the daemon's own timers (offer expiry, leases) reach PostgreSQL. One re-read per console
 * was 240 statements, batched re-reads (before issue 13) about a dozen (10,000 consoles
 * were once 1,000 queries a second ahead of every submission). */
static void rereads_batched(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 41, &f);
    enum { N = 60 };
    int64_t st[N];
    for (int i = 0; i < N; i++)
        st[i] =
            fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 5, .dlat = 0.0005 * i});
    Daemon d;
    itest_daemon_up(&d, (const char *const[]){"--console_refresh_ms=200", NULL});
    IstConsole *k[N];
    for (int i = 0; i < N; i++)
        k[i] = ist_open(&d, pg, st[i]);
    usleep(1500000);
    long long before = itest_metric(d.http_port, "careline_pg_queries_total");
    usleep(4000000);
    long long n = itest_metric(d.http_port, "careline_pg_queries_total") - before;
    printf("  %lld statements in 4 s with %d consoles read every second\n", n, N);
    T_ASSERT(before > 0 && n < 20); /* one by one: >= 240; the timers: ~2 a second */
    /* and the consoles are still served: a job reaches its station's console */
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    ClEnvelope *keep;
    Careline__V1__SubmitResult *r = ist_submit_meal(&d, pg, fix_key("st-batched-1"), phone, &keep);
    T_EQ_INT(r->state, S(REQUEST_STATE__QUEUED));
    int at = 0;
    while (at < N && st[at] != r->station_id)
        at++;
    T_ASSERT(at < N && ist_wait(k[at], r->job_id, S(JOB_STATE__OFFERED), 5000) != NULL);
    cl_free(keep);
    for (int i = 0; i < N; i++)
        ist_close(k[i]);
    itest_daemon_down(&d);
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"station_non_reading_console", non_reading_console, 120},
        {"station_offers_to_stalled_console", offers_to_stalled_console, 120},
        {"station_rereads_batched", rereads_batched, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
