/*
 * console: the registry of station consoles on this daemon — a small chained hash by
 * station id of the sessions of station principals, made on a successful Hello and unlinked
 * when the connection ends, and freed once no in-flight work holds them. Every connect and
 * disconnect is a terminal_sessions row (the plan's smart-terminal indicator).
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "core/station_int.h"
#include "store/pg.h"
#include "store/pgcols.h"

static size_t bucket_of(int64_t station_id)
{
    return (size_t)((uint64_t)station_id * 0x9E3779B97F4A7C15ull >> 52) % ST_BUCKETS;
}

StSession *console_chain(const Stations *st, int64_t station_id)
{
    return st->bucket[bucket_of(station_id)];
}

void console_unref(StSession *ss)
{
    if (--ss->refs > 0)
        return;
    conn_unref(ss->c);
    stream_session_free(ss);
    free(ss);
}

/* Marks terminal session row id disconnected (fire and forget). */
static void terminal_close(const Env *env, int64_t terminal_id)
{
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)terminal_id);
    const char *p[] = {id};
    if (!pg_query(env->pg,
                  "UPDATE terminal_sessions SET disconnected_at = now(), "
                  "close_reason = 'disconnected' WHERE id = $1",
                  1, p, NULL, NULL))
        log_warn("terminal session %s left open (database queue full)", id);
}

enum { T_ID, T_N };
static const char *const terminal_cols[T_N] = {"id"}; /* INSERT ... RETURNING id */

static void terminal_open_done(PGresult *res, const char *err, void *arg)
{
    StSession *ss = arg;
    PgCols pc = {0};
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        if (pgcols_bind(&pc, res, terminal_cols, T_N))
            ss->terminal_id = pgcols_ll(&pc, 0, T_ID);
        else
            log_error("station %lld: terminal session recorded, but its row has no column "
                      "\"%s\"; it will show as connected",
                      (long long)ss->station_id, pc.missing);
    } else
        log_warn("station %lld: terminal session not recorded: %s", (long long)ss->station_id,
                 PG_ERRLINE(res, err));
    if (ss->closed && ss->terminal_id) /* it ended before the row existed */
        terminal_close(ss->st->env, ss->terminal_id);
    console_unref(ss);
}

void console_on_auth(void *arg, Conn *c)
{
    Stations *st = arg;
    if (c->role != CARELINE__V1__ROLE__ROLE_STATION || !st || st->stopped)
        return;
    StSession *ss = xcalloc(1, sizeof(*ss));
    ss->c = c;
    ss->st = st;
    ss->station_id = c->station_id;
    ss->refs = 1;
    conn_ref(c);
    c->station = ss;
    size_t b = bucket_of(ss->station_id);
    ss->next = st->bucket[b];
    st->bucket[b] = ss;
    st->nsessions++;
    st->env->metrics->consoles_current++;
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)ss->station_id);
    const char *p[] = {id, st->env->server_id, c->peer};
    ss->refs++;
    if (!pg_query(st->env->pg,
                  "INSERT INTO terminal_sessions (station_id, daemon_id, peer) "
                  "VALUES ($1, $2, $3) RETURNING id",
                  3, p, terminal_open_done, ss))
        ss->refs--;
    ss->last_ping_ms = ss->auth_ms = util_now_ms();
    /* the backlog starts with the console's StationResume (station_stream.c), or at the
     * tick after RESUME_WAIT_MS for a console that sends none */
}

void console_on_close(void *arg, Conn *c)
{
    StSession *ss = c->station;
    Stations *st = arg;
    if (!ss || !st)
        return;
    c->station = NULL;
    ss->closed = true;
    StSession **pp = &st->bucket[bucket_of(ss->station_id)];
    while (*pp && *pp != ss)
        pp = &(*pp)->next;
    if (*pp)
        *pp = ss->next;
    st->nsessions--;
    st->env->metrics->consoles_current--;
    if (ss->terminal_id && !st->stopped)
        terminal_close(st->env, ss->terminal_id);
    console_unref(ss);
}

/* A daemon with a configured server_id that restarts after a crash closes the terminal
 * sessions its previous run left open (they would count as connected forever). Only rows
 * from before this start: this run's own sessions are not touched. */
void console_close_stale(const Env *env)
{
    if (!env->cfg->server_id[0])
        return; /* host-pid ids never repeat: nothing of ours can be left over */
    char since[32];
    snprintf(since, sizeof(since), "%.3f", (double)util_wall_ms() / 1000.0);
    const char *p[] = {env->cfg->server_id, since};
    if (!pg_query(env->pg,
                  "UPDATE terminal_sessions SET disconnected_at = now(), "
                  "close_reason = 'daemon_restarted' WHERE daemon_id = $1 "
                  "AND disconnected_at IS NULL AND connected_at < to_timestamp($2::float8)",
                  2, p, NULL, NULL))
        log_warn("could not close the terminal sessions of this daemon's previous run");
}

void console_ping(StSession *ss)
{
    Careline__V1__Ping p = CARELINE__V1__PING__INIT;
    p.nonce = (uint64_t)util_now_ms();
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_PING;
    env.ping = &p;
    conn_send(ss->c, &env);
}
