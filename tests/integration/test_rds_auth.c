/*
 * test_rds_auth: Redis AUTH (issue 12). The client keeps both links down while its password
 * is wrong and gets in once the file holds the right one; the shared stack's Redis refuses
 * anyone unauthenticated and keeps its user to the county's keys; dispatchd with a wrong
 * password is not ready and says why once, without the secret.
 */
#include "store/rds.h"
#include "irds.h"
#include "iloop.h"
#include "t.h"
#include "common/util.h"
#include "fixture.h"
#include "itest.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

/* A wrong password keeps both links down (nothing sent, nothing subscribed), retried with
 * the backoff; once the file holds the right one, the next reconnect gets in. A password
 * file that is missing, empty or readable by others is refused at once. */
static void auth_refused_then_recovers(void)
{
    irds_srv_start();
    struct event_base *b = event_base_new();
    char path[600];
    snprintf(path, sizeof(path), "%s/bad.password", t_tmpdir());
    T_ASSERT(rds_new(b, "127.0.0.1", irds_srv_port(), 1000, 10, IRDS_SRV_USER, path) ==
             NULL); /* missing */
    irds_write_secret(path, "");
    T_ASSERT(rds_new(b, "127.0.0.1", irds_srv_port(), 1000, 10, IRDS_SRV_USER, path) ==
             NULL); /* empty */
    irds_write_secret(path, IRDS_SRV_PASSWORD);
    T_EQ_INT(chmod(path, 0644), 0);
    T_ASSERT(rds_new(b, "127.0.0.1", irds_srv_port(), 1000, 10, IRDS_SRV_USER, path) ==
             NULL); /* readable */

    irds_write_secret(irds_srv_pwfile(), "not-the-password");
    Rds *r = irds_srv_rds(b, 1000, 10);
    T_ASSERT(r);
    IrdsSub s = {0};
    T_ASSERT(rds_subscribe(r, "t:chan", irds_sub_cb, &s));
    iloop_run_ms(b, 1500);
    T_ASSERT(!rds_ready(r));
    IrdsOne o = {0};
    const char *ping[1] = {"PING"};
    T_ASSERT(!rds_command(r, irds_one_cb, &o, 1, ping, NULL));
    T_EQ_INT(s.resyncs, 0);
    /* Redis logged the refused AUTHs (grouped, with a count) */
    redisContext *adm = irds_admin_connect("127.0.0.1", irds_srv_port());
    T_ASSERT(adm);
    redisReply *log = redisCommand(adm, "ACL LOG");
    T_ASSERT(log && log->type == REDIS_REPLY_ARRAY && log->elements >= 1);
    freeReplyObject(log);

    irds_write_secret(irds_srv_pwfile(),
                      IRDS_SRV_PASSWORD); /* rotated in place: read on the next attempt */
    T_ASSERT(iloop_wait(b, irds_ready, r, 8000));
    T_EQ_STR(irds_cmd_wait(b, r, "PING").str, "PONG");
    T_ASSERT(iloop_wait(b, irds_resync1, &s, 8000)); /* the pub/sub link authenticated too */
    IrdsOne who = irds_cmd_wait(b, r, "ACL WHOAMI");
    T_EQ_STR(who.str, IRDS_SRV_USER);
    /* a reconnect authenticates again */
    redisReply *k = redisCommand(adm, "CLIENT KILL USER %s", IRDS_SRV_USER);
    T_ASSERT(k && k->type == REDIS_REPLY_INTEGER && k->integer >= 2);
    freeReplyObject(k);
    redisFree(adm);
    T_ASSERT(iloop_wait(b, irds_not_ready, r, 3000));
    T_ASSERT(iloop_wait(b, irds_ready, r, 8000));
    T_ASSERT(iloop_wait(b, irds_resync2, &s, 8000));
    T_EQ_STR(irds_cmd_wait(b, r, "ACL WHOAMI").str, IRDS_SRV_USER);
    rds_free(r);
    event_base_free(b);
    irds_srv_kill();
    t_leak_check();
}

/* The shared stack's Redis (deploy/stack.sh) refuses anyone who has not authenticated as
 * its user, keeps that user to the county keys and channels, and refuses it admin
 * commands. */
static void stack_refuses_unauthenticated(void)
{
    char err[256];
    redisContext *c =
        fix_redis_connect(irds_env_host(), irds_env_port(), NULL, NULL, err, sizeof(err));
    T_ASSERT(c);
    redisReply *r = redisCommand(c, "GET {c330281}:pending");
    T_ASSERT(r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0);
    freeReplyObject(r);
    redisFree(c);
    T_ASSERT(!fix_redis_connect(irds_env_host(), irds_env_port(), "", "", err, sizeof(err)));
    T_ASSERT(strstr(err, "WRONGPASS") != NULL);
    T_ASSERT(!fix_redis_connect(irds_env_host(), irds_env_port(), t_env("CARELINE_REDIS_USER"),
                                "guess", err, sizeof(err)));
    T_ASSERT(strstr(err, "WRONGPASS") != NULL);
    /* the default user is off even with the real password */
    T_ASSERT(!fix_redis_connect(irds_env_host(), irds_env_port(), "default", fix_redis_password(),
                                err, sizeof(err)));
    c = fix_redis();
    const char *refused[] = {"FLUSHALL",
                             "CONFIG SET appendonly no",
                             "SCRIPT FLUSH",
                             "SET t:outside 1",
                             "PUBLISH other-channel x",
                             "ACL LIST",
                             "CLIENT KILL TYPE normal",
                             "SHUTDOWN NOSAVE"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        r = redisCommand(c, refused[i]);
        if (!r || r->type != REDIS_REPLY_ERROR || strncmp(r->str, "NOPERM", 6) != 0)
            t_fail(__FILE__, __LINE__, "'%s' was not refused: %s", refused[i],
                   r ? (r->str ? r->str : "(no text)") : c->errstr);
        freeReplyObject(r);
    }
    r = redisCommand(c, "EVAL %s 1 %s", "return redis.call('SET', KEYS[1], '1')", "{ctest}:acl");
    T_ASSERT(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = redisCommand(c, "DEL {ctest}:acl");
    T_ASSERT(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    redisFree(c);
}

/* dispatchd given a wrong password is not ready, says why (once, without the secret), and
 * gets in once the file holds the right one; a world-readable password file stops it at
 * start with a sentence. */
static void daemon_wrong_password(void)
{
    char path[600], opt[700];
    snprintf(path, sizeof(path), "%s/redis.password", t_tmpdir());
    snprintf(opt, sizeof(opt), "--redis_password_file=%s", path);
    irds_write_secret(path, "wrong-password-4711");
    Daemon d;
    itest_daemon_start(&d, (const char *const[]){opt, NULL});
    char body[1024];
    int code = 0;
    for (int i = 0; i < 30; i++) { /* PostgreSQL comes up, Redis must not */
        code = itest_http_get(d.http_port, "/readyz", body, sizeof(body));
        if (strstr(body, "\"postgres\":true"))
            break;
        usleep(100000);
    }
    usleep(1500000); /* a few reconnects */
    code = itest_http_get(d.http_port, "/readyz", body, sizeof(body));
    printf("  /readyz with a wrong password: %d %s", code, body);
    T_EQ_INT(code, 503);
    T_ASSERT(strstr(body, "\"redis\":false") != NULL);
    T_EQ_INT(itest_metric(d.http_port, "careline_redis_up"), 0);
    /* one line for both links and every retry (the retries are at debug level) */
    T_EQ_INT(itest_log_count(&d, "down: Redis refused our credentials (user 'careline'"), 1);
    T_ASSERT(itest_log_count(&d, "check redis_user and redis_password_file"));
    T_ASSERT(!itest_log_count(&d, "wrong-password-4711"));

    irds_write_secret(path, fix_redis_password());
    itest_daemon_wait_ready(&d);
    T_ASSERT(itest_log_count(&d, "up again after"));
    T_ASSERT(!itest_log_count(&d, fix_redis_password()));
    itest_daemon_down(&d);

    T_EQ_INT(chmod(path, 0644), 0);
    itest_daemon_spawn(&d, (const char *const[]){opt, NULL});
    int rc = itest_daemon_wait_exit(&d, 10000);
    T_ASSERT(rc != 0 && rc != -1);
    T_ASSERT(itest_log_count(&d, "that others cannot read (chmod 600 it)"));
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"rds_auth_refused_then_recovers", auth_refused_then_recovers, 30},
        {"rds_stack_refuses_unauthenticated", stack_refuses_unauthenticated, 20},
        {"rds_daemon_wrong_password", daemon_wrong_password, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
