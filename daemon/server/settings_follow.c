/*
 * settings_follow: the programme's settings that the admin changes (carelinectl setting set,
 * sql/functions/admin_settings.sql) and the daemon can follow live — booking_days and
 * priority_reserve_pct. A row in `settings` wins over the config key of the same name; with
 * no row the config's value stands. The rows are read when the LISTEN on careline_settings
 * becomes active (at start and after every reconnect, so a change missed meanwhile is seen)
 * and on each NOTIFY (sql/functions/settings_notify.sql), and put over the config again after
 * a SIGHUP. The server owns the config, so this lives in its layer.
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/log.h"
#include "server/server.h"

static const char *const followed[SETTINGS_FOLLOWED] = {"booking_days", "priority_reserve_pct"};

static int *field(Config *c, int i)
{
    return i == 0 ? &c->booking_days : &c->priority_reserve_pct;
}

/* Puts the last rows read over s->cfg, and the config's own value back where there is no row
 * (any more). A value the config's bounds refuse is logged and left out (the admin's check has
 * the same bounds, so only a psql edit can get here). */
static void apply(Server *s)
{
    for (int i = 0; i < SETTINGS_FOLLOWED; i++) {
        if (!s->settings[i][0]) {
            *field(&s->cfg, i) = s->settings_base[i];
            continue;
        }
        char err[256];
        Config next = s->cfg;
        if (!config_set(&next, followed[i], s->settings[i], "settings", err, sizeof(err))) {
            log_limited(LOG_WARN, "settings: %s = '%s' not followed: %s", followed[i],
                        s->settings[i], err);
            continue;
        }
        s->cfg = next;
    }
}

void settings_follow_apply(Server *s)
{
    for (int i = 0; i < SETTINGS_FOLLOWED; i++)
        s->settings_base[i] = *field(&s->cfg, i);
    apply(s);
}

static void read_done(PGresult *res, const char *err, void *arg)
{
    Server *s = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 2) {
        log_limited(LOG_WARN, "settings: not read (%s); the values in force stay",
                    res ? PQresultErrorMessage(res) : err);
        return;
    }
    char now[SETTINGS_FOLLOWED][16] = {{0}};
    for (int r = 0; r < PQntuples(res); r++)
        for (int i = 0; i < SETTINGS_FOLLOWED; i++)
            if (strcmp(PQgetvalue(res, r, 0), followed[i]) == 0)
                snprintf(now[i], sizeof(now[i]), "%s", PQgetvalue(res, r, 1));
    for (int i = 0; i < SETTINGS_FOLLOWED; i++)
        if (strcmp(now[i], s->settings[i]) != 0)
            log_info("settings: %s %s%s", followed[i],
                     now[i][0] ? "= " : "row removed: back to the config's value", now[i]);
    memcpy(s->settings, now, sizeof(now));
    apply(s);
}

/* PgNotifyCb: (re)subscribed (payload NULL) or a row changed: read them all again. */
static void notified(const char *channel, const char *payload, void *arg)
{
    (void)channel, (void)payload;
    Server *s = arg;
    static const char *const p[] = {"{booking_days,priority_reserve_pct}"};
    if (s->shutting_down)
        return;
    if (!pg_query(s->pg, "SELECT key, value FROM settings WHERE key = ANY($1::text[])", 1, p,
                  read_done, s))
        log_limited(LOG_WARN, "settings: the pool's queue is full; read again on the next change");
}

void settings_follow_start(Server *s)
{
    for (int i = 0; i < SETTINGS_FOLLOWED; i++)
        s->settings_base[i] = *field(&s->cfg, i);
    pg_pool_listen(s->pg, "careline_settings", notified, s);
}
