/*
 * schema: dispatchd refuses to serve against a database schema it was not built for.
 *
 * The database states its version with careline_schema_version(), which deploy/migrate.sh
 * writes on every run: the highest migration number in sql/migrations/. This build expects
 * exactly CARELINE_SCHEMA_VERSION (tests/run.sh fails when the two disagree).
 *
 * schema_check_new() asks through the pool, so the loop never blocks: its query is queued
 * first and runs as soon as a pool connection is up; while the database cannot be reached it
 * asks again every second. A matching version is logged at info and the check is done. A
 * different version, no version at all (careline_schema_version() missing) or an error the
 * schema itself causes (SQLSTATE class 42, e.g. permission denied) is logged once at error
 * level, saying what was found, what is expected and what to run (deploy/migrate.sh with a
 * superuser conninfo of that database); then refused(arg) fires, on the loop thread, once.
 * The caller must then stop serving and exit with SCHEMA_EXIT_CODE.
 */
#ifndef CARELINE_SCHEMA_H
#define CARELINE_SCHEMA_H

#include <stdbool.h>

#include <event2/event.h>

#include "store/pg.h"

#define CARELINE_SCHEMA_VERSION 10 /* = the highest NNN in sql/migrations/NNN_*.sql */
#define SCHEMA_EXIT_CODE        78 /* EX_CONFIG (sysexits.h): the database is not set up */

typedef struct SchemaCheck SchemaCheck;

/* Fired once when the schema is refused; arg as given to schema_check_new. */
typedef void (*SchemaRefusedCb)(void *arg);

/*
 * Starts the check (its first pg_query is issued before this returns). conninfo is the
 * pool's, used only to name the database in messages (host, port and dbname; never a
 * password). Returns the check, to free with schema_check_free.
 */
SchemaCheck *schema_check_new(struct event_base *base, PgPool *pg, const char *conninfo,
                              SchemaRefusedCb refused, void *arg);

/* true once the database has answered with CARELINE_SCHEMA_VERSION. */
bool schema_check_passed(const SchemaCheck *c);

/*
 * Stops the check; refused never fires afterwards. With a query still in flight the memory
 * goes when the pool completes it (at the latest in pg_pool_free), so this may be called
 * before or after pg_pool_free. schema_check_free(NULL) is a no-op.
 */
void schema_check_free(SchemaCheck *c);

#endif
