/*
 * Integration tests of the schema version check: dispatchd refuses, with exit status
 * SCHEMA_EXIT_CODE and an error naming what to run, a database with no schema version or
 * another one, and starts normally once deploy/migrate.sh has been run as it says. The
 * wrong databases are a scratch database of their own (dropped afterwards), and the
 * daemons that use it get no Redis, so nothing the other tests use is touched.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"
#include "store/schema.h"
#include "t.h"

#define SCRATCH "careline_schema_itest"

static Daemon d;

/* The conninfo env var name plus " dbname=SCRATCH" (later keywords win in libpq). */
static const char *scratch_conninfo(const char *env, char *out, size_t len)
{
    snprintf(out, len, "%s dbname=" SCRATCH, t_env(env));
    return out;
}

static void quiet(void *arg, const char *msg)
{
    (void)arg, (void)msg;
}

static void scratch_create(void)
{
    PGconn *pg = itest_pg();
    PQsetNoticeProcessor(pg, quiet, NULL); /* "does not exist, skipping" */
    PQclear(itest_sql(pg, "DROP DATABASE IF EXISTS " SCRATCH " WITH (FORCE)", 0, NULL));
    PQclear(itest_sql(pg, "CREATE DATABASE " SCRATCH, 0, NULL));
    PQfinish(pg);
}

static void scratch_drop(void)
{
    PGconn *pg = itest_pg();
    PQsetNoticeProcessor(pg, quiet, NULL);
    PQclear(itest_sql(pg, "DROP DATABASE IF EXISTS " SCRATCH " WITH (FORCE)", 0, NULL));
    PQfinish(pg);
}

/* Runs SQL as superuser on the scratch database. */
static void scratch_sql(const char *sql)
{
    char ci[1024];
    PGconn *pg = PQconnectdb(scratch_conninfo("CARELINE_PG_ADMIN", ci, sizeof(ci)));
    if (PQstatus(pg) != CONNECTION_OK)
        t_fail(__FILE__, __LINE__, "cannot connect to %s: %s", SCRATCH, PQerrorMessage(pg));
    PQclear(itest_sql(pg, sql, 0, NULL));
    PQfinish(pg);
}

/* deploy/migrate.sh on the scratch database; returns its exit status. */
static int migrate_scratch(void)
{
    char ci[1024], cmd[2048];
    snprintf(cmd, sizeof(cmd), "bash '%s/deploy/migrate.sh' '%s' >>'%s/migrate.log' 2>&1",
             t_env("CARELINE_SRC"), scratch_conninfo("CARELINE_PG_ADMIN", ci, sizeof(ci)),
             t_tmpdir());
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* dispatchd on the scratch database, with no Redis (port 1: nothing listens there). */
static void spawn_on_scratch(void)
{
    char ci[1024], arg[1100];
    snprintf(arg, sizeof(arg), "--pg_conninfo=%s",
             scratch_conninfo("CARELINE_APP_CONNINFO", ci, sizeof(ci)));
    itest_daemon_spawn(&d, (const char *const[]){arg, "--redis_port=1", NULL});
}

static bool log_has(const char *needle)
{
    FILE *f = fopen(d.log_path, "r");
    if (!f)
        return false;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static void expect_log(const char *needle)
{
    if (!log_has(needle)) {
        itest_daemon_dump_log(&d);
        t_fail(__FILE__, __LINE__, "the log above does not say: %s", needle);
    }
}

/* A migrated scratch database whose careline_schema_version() then says version. */
static void scratch_at_version(int version)
{
    scratch_create();
    T_EQ_INT(migrate_scratch(), 0);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "CREATE OR REPLACE FUNCTION careline_schema_version() RETURNS integer "
             "LANGUAGE sql IMMUTABLE RETURN %d",
             version);
    scratch_sql(sql);
}

/* The daemon must exit by itself with SCHEMA_EXIT_CODE, having logged found and then want. */
static void expect_refused(const char *found, const char *want)
{
    int rc = itest_daemon_wait_exit(&d, 30000);
    if (rc != SCHEMA_EXIT_CODE) {
        itest_daemon_dump_log(&d);
        if (rc < 0)
            itest_daemon_stop(&d, 5000);
        t_fail(__FILE__, __LINE__, "dispatchd exited with %d, expected %d", rc, SCHEMA_EXIT_CODE);
    }
    expect_log(found);
    expect_log(want);
}

/* ... and says what it needs and what to run. */
static void expect_refused_run_migrate(const char *found)
{
    char want[256];
    snprintf(want, sizeof(want),
             "this dispatchd needs schema version %d. Run deploy/migrate.sh \"host=127.0.0.1 "
             "port=%s dbname=" SCRATCH " user=postgres\"",
             CARELINE_SCHEMA_VERSION, t_env("CARELINE_PG_PORT"));
    expect_refused(found, want);
}

/* Starts normally: says the version matches and keeps running until stopped. */
static void expect_started(void)
{
    char want[128];
    snprintf(want, sizeof(want), "has schema version %d, as this dispatchd expects",
             CARELINE_SCHEMA_VERSION);
    for (int i = 0; i < 300 && !log_has(want) && itest_daemon_alive(&d); i++)
        usleep(100000);
    expect_log(want);
    usleep(300000);
    T_ASSERT(itest_daemon_alive(&d));
    T_EQ_INT(itest_daemon_stop(&d, 10000), 0);
}

static void refuses_missing_version(void)
{
    scratch_create(); /* empty: never migrated */
    spawn_on_scratch();
    expect_refused_run_migrate("has no schema version");
    scratch_drop();
}

static void refuses_older_then_starts_after_migrate(void)
{
    scratch_at_version(CARELINE_SCHEMA_VERSION - 1);
    spawn_on_scratch();
    char found[64];
    snprintf(found, sizeof(found), "has schema version %d;", CARELINE_SCHEMA_VERSION - 1);
    expect_refused_run_migrate(found);
    /* what the message says to run fixes it */
    T_EQ_INT(migrate_scratch(), 0);
    spawn_on_scratch();
    expect_started();
    scratch_drop();
}

static void refuses_newer(void)
{
    scratch_at_version(CARELINE_SCHEMA_VERSION + 1);
    spawn_on_scratch();
    char found[64], want[128];
    snprintf(found, sizeof(found), "has schema version %d;", CARELINE_SCHEMA_VERSION + 1);
    snprintf(want, sizeof(want), "this dispatchd knows schema version %d only",
             CARELINE_SCHEMA_VERSION);
    expect_refused(found, want);
    /* and an older tree's migrate.sh does not put its functions over a newer schema */
    T_ASSERT(migrate_scratch() != 0);
    scratch_drop();
}

static void starts_on_current_schema(void)
{
    itest_daemon_up(&d, NULL); /* the shared test database, as tests/run.sh migrated it */
    expect_started();
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"schema_refuses_missing_version", refuses_missing_version, 90},
        {"schema_refuses_older_then_starts_after_migrate", refuses_older_then_starts_after_migrate,
         120},
        {"schema_refuses_newer", refuses_newer, 90},
        {"schema_starts_on_current_schema", starts_on_current_schema, 60},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
