/*
 * schema: asks the database for careline_schema_version() through the pool and compares it
 * with the version this build was made for. Unreachable database: ask again every second
 * (the pool logs the link's failures). Anything the schema itself answers wrongly: one error
 * line that says what to run, then the owner's refused callback.
 */
#include "store/schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "store/pgcols.h"

#define SCHEMA_RETRY_MS 1000

struct SchemaCheck {
    PgPool *pg;
    struct event *retry; /* one-shot timer between attempts */
    SchemaRefusedCb refused;
    void *arg;
    char where[256]; /* "host=... port=... dbname=..." of the pool's conninfo */
    bool inflight;   /* a pg_query is out: its callback runs later, exactly once */
    bool orphaned;   /* freed by the owner while inflight: the callback frees */
    bool passed;     /* the version matched */
    bool done;       /* passed or refused: nothing more to do */
    int failures;    /* attempts that could not get an answer, for the log */
};

static void ask(SchemaCheck *c);

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    ask(arg);
}

static void retry_later(SchemaCheck *c)
{
    struct timeval tv = {SCHEMA_RETRY_MS / 1000, (SCHEMA_RETRY_MS % 1000) * 1000};
    event_add(c->retry, &tv);
}

/* No answer this time (why: a sentence); the first failure is logged, the rest counted. */
static void not_yet(SchemaCheck *c, const char *why)
{
    if (c->failures++ == 0)
        log_warn("schema: cannot ask the database (%s) for its schema version yet: %s; asking "
                 "again every %d ms",
                 c->where, why, SCHEMA_RETRY_MS);
    retry_later(c);
}

/* The pool's conninfo without anything secret: host/hostaddr, port and dbname. */
static void describe(const char *conninfo, char *out, size_t outlen)
{
    static const char *const keys[] = {"host", "hostaddr", "port", "dbname"};
    size_t n = 0;
    out[0] = '\0';
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        for (PQconninfoOption *o = opts; o && o->keyword; o++) {
            if (strcmp(o->keyword, keys[i]) != 0 || !o->val || !o->val[0] || n >= outlen)
                continue;
            int w = snprintf(out + n, outlen - n, "%s%s=%s", n ? " " : "", o->keyword, o->val);
            n = w < 0 ? outlen : n + (size_t)w;
        }
    }
    PQconninfoFree(opts);
    if (!out[0])
        snprintf(out, outlen, "dbname=careline");
}

/* found: what the database said, as "has schema version 3"; newer: a newer tree migrated it */
static void refuse(SchemaCheck *c, const char *found, bool newer)
{
    if (newer) {
        log_error("schema: the database (%s) %s; this dispatchd knows schema version %d only. "
                  "Run a dispatchd built from the tree that migrated it. Refusing to start.",
                  c->where, found, CARELINE_SCHEMA_VERSION);
    } else {
        log_error("schema: the database (%s) %s; this dispatchd needs schema version %d. Run "
                  "deploy/migrate.sh \"%s user=postgres\" (a superuser of that database) from "
                  "the tree this dispatchd was built from, then start it again. Refusing to "
                  "start.",
                  c->where, found, CARELINE_SCHEMA_VERSION, c->where);
    }
    c->done = true;
    c->refused(c->arg);
}

static void answer_cb(PGresult *res, const char *err, void *arg)
{
    SchemaCheck *c = arg;
    c->inflight = false;
    if (c->orphaned) {
        free(c);
        return;
    }
    char found[320];
    if (!res) {
        not_yet(c, err);
        return;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", PG_ERRLINE(res, NULL));
        msg[strcspn(msg, "\n")] = '\0';
        if (state && !strcmp(state, "42883")) {
            refuse(c,
                   "has no schema version (careline_schema_version() does not exist: it was "
                   "never migrated, or migrated before schema versions existed)",
                   false);
        } else if (state && !strncmp(state, "42", 2)) {
            snprintf(found, sizeof(found), "cannot say its schema version (%s)", msg);
            refuse(c, found, false);
        } else {
            not_yet(c, msg); /* e.g. a statement timeout or a server shutting down */
        }
        return;
    }
    static const char *const cols[] = {"version"};
    PgCols pc = {0};
    const char *v = PQntuples(res) == 1 && pgcols_bind(&pc, res, cols, 1) && !pgcols_null(&pc, 0, 0)
                        ? pgcols_str(&pc, 0, 0)
                        : "";
    char *end;
    long version = strtol(v, &end, 10);
    if (!v[0] || *end) {
        snprintf(found, sizeof(found), "says its schema version is '%.40s'", v);
        refuse(c, found, false);
    } else if (version == CARELINE_SCHEMA_VERSION) {
        c->passed = c->done = true;
        log_info("schema: the database (%s) has schema version %ld, as this dispatchd expects "
                 "(%d earlier attempts got no answer)",
                 c->where, version, c->failures);
    } else {
        snprintf(found, sizeof(found), "has schema version %ld", version);
        refuse(c, found, version > CARELINE_SCHEMA_VERSION);
    }
}

static void ask(SchemaCheck *c)
{
    if (c->done || c->inflight)
        return;
    if (!pg_query(c->pg, "SELECT careline_schema_version() AS version", 0, NULL, answer_cb, c)) {
        retry_later(c); /* wait queue full, or the pool is shutting down */
        return;
    }
    c->inflight = true;
}

SchemaCheck *schema_check_new(struct event_base *base, PgPool *pg, const char *conninfo,
                              SchemaRefusedCb refused, void *arg)
{
    SchemaCheck *c = xcalloc(1, sizeof(*c));
    c->pg = pg;
    c->refused = refused;
    c->arg = arg;
    c->retry = evtimer_new(base, retry_cb, c);
    ASSERT(c->retry);
    describe(conninfo, c->where, sizeof(c->where));
    ask(c);
    return c;
}

bool schema_check_passed(const SchemaCheck *c)
{
    return c && c->passed;
}

void schema_check_free(SchemaCheck *c)
{
    if (!c)
        return;
    event_free(c->retry);
    c->retry = NULL;
    c->done = true;
    if (c->inflight)
        c->orphaned = true; /* answer_cb frees it */
    else
        free(c);
}
