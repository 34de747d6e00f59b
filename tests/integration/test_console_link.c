/*
 * Integration tests of bin/station-console's link to the daemon: a daemon restart is
 * survived and the backlog deduped; a console started before the daemon retries with a
 * growing backoff until it appears; a wrong token (or a station missing from a tokens file)
 * exits 2 with a clear message. Fixture areas 61, 63.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "iconsole.h"
#include "iproc.h"
#include "isession.h"
#include "itest.h"
#include "t.h"

static Daemon d;

/* The daemon stops and comes back on the same port: the console says so, reconnects by
 * itself and gets its backlog again; the offered job is the same entry, not a second one. */
static void reconnect_backlog(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 61, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    char tok[64], port[16];
    itest_make_token(pg, "station", st, tok);
    IconProc k;
    icon_start(&k, &d, true,
               (const char *const[]){"--port", icon_port_arg(port, sizeof(port), d.proto_port),
                                     "--token", tok, "--json", NULL});
    icon_wait(&k, 10000, "connected", 0, NULL);
    ClConn *gw = isess_gateway(&d, pg);
    int64_t job = icon_submit_meal(&d, gw, fix_key("console-reconnect"), phone, st, NULL);
    cl_close(gw);
    json_t *first = icon_wait(&k, 10000, "job", job, "offered");
    T_ASSERT(json_is_true(json_object_get(first, "first")));

    int old_port = d.proto_port;
    itest_daemon_down(&d);
    json_t *gone = icon_wait(&k, 10000, "disconnected", 0, NULL);
    T_ASSERT(icon_jstr(gone, "reason")[0]);
    T_ASSERT(icon_jint(gone, "retry_in_ms") >= 100 && icon_jint(gone, "retry_in_ms") <= 5000);
    usleep(1500 * 1000); /* a few failed attempts while it is down */
    char lp[48];
    snprintf(lp, sizeof(lp), "--listen_port=%d", old_port);
    itest_daemon_up(&d, (const char *const[]){lp, "--http_port=0", NULL});
    T_EQ_INT(d.proto_port, old_port);
    icon_wait(&k, 15000, "connected", 0, NULL);
    /* it resumed from its position (StationResume): nothing was missed, the marker says so
     * and the job it shows stays (a full backlog would have resent it) */
    json_t *end = icon_wait(&k, 15000, "backlog_end", 0, NULL);
    T_ASSERT(json_is_false(json_object_get(end, "full")));
    T_EQ_INT(icon_jint(end, "jobs"), 0);
    /* failed attempts while it was down were reported, with a growing backoff */
    int downs = icon_count(&k, "disconnected", 0, NULL);
    if (downs < 3)
        ICON_FAIL(&k, "expected several disconnected events while the daemon was down, got %d",
                  downs);
    /* the screen holds the job once */
    icon_say(&k, "list");
    json_t *list = icon_wait(&k, 5000, "list", 0, NULL);
    json_t *jobs = json_object_get(list, "jobs");
    T_EQ_INT(json_array_size(jobs), 1);
    T_EQ_INT(icon_jint(json_array_get(jobs, 0), "job_id"), job);
    /* and the session is usable: accept it */
    icon_say(&k, "accept %lld", (long long)job);
    json_t *u = icon_wait(&k, 10000, "update", job, NULL);
    T_EQ_STR(icon_jstr(u, "state"), "accepted");
    icon_stop(&k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

static void wrong_token(void)
{
    itest_daemon_up(&d, NULL);
    char port[16];
    IconProc k;
    icon_start(&k, &d, false,
               (const char *const[]){"--port", icon_port_arg(port, sizeof(port), d.proto_port),
                                     "--token", "not-a-real-token", "--json", NULL});
    int rc = icon_wait_exit(&k, 10000);
    if (rc != 2)
        ICON_FAIL(&k, "a wrong token should exit 2, got %d", rc);
    char line[4096];
    while (icon_line(&k, 100, line, sizeof(line)))
        ;
    T_EQ_INT(icon_count(&k, "error", 0, NULL), 1);
    T_EQ_STR(icon_jstr(json_array_get(k.seen, json_array_size(k.seen) - 1), "code"), "AUTH_FAILED");
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "grep -q 'refused the token' %s", k.err_path);
    if (system(cmd) != 0)
        ICON_FAIL(&k, "no clear message on stderr");
    /* and a station missing from a tokens file is refused before connecting */
    IconProc k2;
    char tf[600];
    snprintf(tf, sizeof(tf), "%s/tokens.txt", t_tmpdir());
    FILE *f = fopen(tf, "w");
    T_ASSERT(f);
    fprintf(f, "gateway 0 abc hotline\n");
    fclose(f);
    icon_start(&k2, &d, false,
               (const char *const[]){"--port", port, "--tokens", tf, "--station", "7", NULL});
    T_EQ_INT(icon_wait_exit(&k2, 5000), 2);
    k.pid = k2.pid = 0;
    icon_stop(&k);
    icon_stop(&k2);
    itest_daemon_down(&d);
}

/* Nothing listens yet: the console retries with a growing backoff, then connects once the
 * daemon appears on that port. */
static void waits_for_daemon(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 63, &f);
    int64_t st = fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    int free_port = iproc_free_port();
    char tok[64], port[16];
    itest_make_token(pg, "station", st, tok);
    IconProc k;
    icon_start(&k, &d, false,
               (const char *const[]){"--port", icon_port_arg(port, sizeof(port), free_port),
                                     "--token", tok, "--json", NULL});
    json_t *e1 = icon_wait(&k, 5000, "disconnected", 0, NULL);
    json_t *e2 = icon_wait(&k, 5000, "disconnected", 0, NULL);
    json_t *e3 = icon_wait(&k, 5000, "disconnected", 0, NULL);
    T_EQ_INT(icon_jint(e1, "retry_in_ms"), 100);
    T_EQ_INT(icon_jint(e2, "retry_in_ms"), 200);
    T_EQ_INT(icon_jint(e3, "retry_in_ms"), 400);
    T_ASSERT(strstr(icon_jstr(e1, "reason"), "refused"));
    char lp[48];
    snprintf(lp, sizeof(lp), "--listen_port=%d", free_port);
    itest_daemon_up(&d, (const char *const[]){lp, NULL});
    json_t *hello = icon_wait(&k, 15000, "connected", 0, NULL);
    T_EQ_INT(icon_jint(hello, "station_id"), st);
    icon_stop(&k);
    itest_daemon_down(&d);
    PQfinish(pg);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"console_reconnect_backlog", reconnect_backlog, 90},
        {"console_wrong_token", wrong_token, 60},
        {"console_waits_for_daemon", waits_for_daemon, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
