/*
 * fuzz_env: the harnesses' daemon environment without a server (see fuzz_env.h).
 */
#include "fuzz_env.h"

#include <event2/buffer.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: fuzz invariant failed: %s: ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

char *fuzz_strndup(const uint8_t *data, size_t n)
{
    char *s = xmalloc(n + 1);
    if (n)
        memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

static void on_frame(void *owner, Conn *c, Envelope *env)
{
    (void)owner, (void)c;
    frame_free(env);
}

static void on_closed(void *owner, Conn *c)
{
    (void)owner, (void)c;
}

/* Two towns of Yuyao (330281) with a few surveyed villages each, and one town of another
 * county; the village index answers "is this location inside the county". */
static DirSnap *small_county(void)
{
    static const struct {
        const char *code, *town;
        double lat, lon;
    } vil[] = {
        {"330281001001", "330281001000", 30.038174, 121.163268},
        {"330281001003", "330281001000", 30.045033, 121.161354},
        {"330281002001", "330281002000", 30.067116, 121.182353},
        {"330281002004", "330281002000", 30.071500, 121.190100},
        {"330282001001", "330282001000", 30.169000, 121.270000},
    };
    static const char *const towns[] = {"330281001000", "330281002000", "330282001000"};
    DirSnap *s = xcalloc(1, sizeof(*s));
    s->ntowns = (int)ARRAY_LEN(towns);
    s->towns = xcalloc(ARRAY_LEN(towns), sizeof(Town));
    for (size_t i = 0; i < ARRAY_LEN(towns); i++) {
        snprintf(s->towns[i].code, sizeof(s->towns[i].code), "%s", towns[i]);
        s->towns[i].name = (char *)"town";
    }
    s->nvillages = (int)ARRAY_LEN(vil);
    s->villages = xcalloc(ARRAY_LEN(vil), sizeof(Village));
    StStation idx[ARRAY_LEN(vil)];
    for (size_t i = 0; i < ARRAY_LEN(vil); i++) {
        Village *v = &s->villages[i];
        snprintf(v->code, sizeof(v->code), "%s", vil[i].code);
        v->name = (char *)"village";
        for (int t = 0; t < s->ntowns; t++)
            if (strcmp(towns[t], vil[i].town) == 0)
                v->town = t;
        v->lat = vil[i].lat;
        v->lon = vil[i].lon;
        v->elderly = 100;
        idx[i] = (StStation){(int64_t)i, v->lat, v->lon, ST_ACTIVE, i};
    }
    s->village_index = stindex_new(idx, ARRAY_LEN(vil));
    ASSERT(s->village_index);
    return s;
}

Fuzz *fuzz_env(void)
{
    static Fuzz *f;
    if (f)
        return f;
    f = xcalloc(1, sizeof(*f));
    signal(SIGPIPE, SIG_IGN);
    const char *lv = getenv("FUZZ_LOG");
    if (!lv || !log_level_parse(lv, &log_level))
        log_level = LOG_ERROR;
    const char *strict = getenv("FUZZ_STRICT");
    if (strict && (!strcmp(strict, "1") || !strcmp(strict, "utf8")))
        f->strict |= FUZZ_STRICT_UTF8;
    if (strict && (!strcmp(strict, "1") || !strcmp(strict, "field")))
        f->strict |= FUZZ_STRICT_FIELD;
    f->base = event_base_new();
    ASSERT(f->base);
    config_defaults(&f->cfg);
    f->cfg.pg_max_queue = 0; /* every handler that would wait for PostgreSQL is refused */
    /* a socket path that does not exist: the pool's first connect fails without blocking, and
     * the loop (never run) would only retry it */
    f->env.pg = pg_pool_new(f->base, "host=/nonexistent/careline-fuzz port=1", 1, 1000, 0);
    ASSERT(f->env.pg);
    f->env.rds = rds_new(f->base, "127.0.0.1", 1, 1000, 16, "", "");
    ASSERT(f->env.rds);
    f->env.base = f->base;
    f->env.cfg = &f->cfg;
    f->env.server_id = "fuzz";
    f->env.metrics = &f->metrics;
    keys_init(&f->env.keys, f->cfg.county_code);
    bool ok = connset_init(&f->set, f->base, &f->cfg, &f->metrics, on_frame, on_closed, f);
    ASSERT(ok);
    f->snap = small_county();
    f->today = cal_day_of(util_wall_ms(), NULL);
    return f;
}

Conn *fuzz_conn(Fuzz *f, Role role, int64_t station_id, int *peer)
{
    int sv[2];
    int rc = socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    ASSERT(rc == 0);
    if (peer)
        *peer = sv[1];
    else
        close(sv[1]);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(40000)};
    sa.sin_addr.s_addr = htonl(0x7f000001);
    Conn *c = conn_new(&f->set, sv[0], (const struct sockaddr *)&sa, (int)sizeof(sa));
    ASSERT(c);
    /* replies stay in the output buffer for fuzz_replies, even when the loop runs */
    bufferevent_disable(c->bev, EV_WRITE);
    conn_ref(c); /* the harness's: c outlives a close the daemon makes (fuzz_conn_close) */
    c->role = role;
    c->station_id = station_id;
    snprintf(c->principal, sizeof(c->principal), "fuzz");
    return c;
}

void fuzz_conn_close(Fuzz *f, Conn *c)
{
    conn_close_now(c, "fuzz input done");          /* a no-op if the daemon closed it */
    conn_unref(c);                                 /* fuzz_conn's */
    connset_close_all(&f->set, "fuzz input done"); /* runs the reaper: c is freed */
    /* libevent frees a bufferevent from the loop (finalizers): within this input, so that
     * libFuzzer sees as many frees as mallocs and skips its slow leak scan */
    event_base_loop(f->base, EVLOOP_NONBLOCK);
}

void fuzz_check_error(const Fuzz *f, const Careline__V1__Error *e)
{
    FUZZ_ASSERT(e->code != CARELINE__V1__ERROR_CODE__ERROR_UNSPECIFIED, "an Error with no code");
    FUZZ_ASSERT(
        protobuf_c_enum_descriptor_get_value(&careline__v1__error_code__descriptor, (int)e->code),
        "unknown error code %d", (int)e->code);
    FUZZ_ASSERT(e->message && e->message[0], "Error %d without a sentence", (int)e->code);
    FUZZ_ASSERT(e->field, "Error %d with a NULL field", (int)e->code);
    if (f->strict & FUZZ_STRICT_UTF8) {
        FUZZ_ASSERT(util_utf8_valid(e->message, strlen(e->message)),
                    "Error %d message is not valid UTF-8: %s", (int)e->code, e->message);
        FUZZ_ASSERT(util_utf8_valid(e->field, strlen(e->field)), "Error field is not valid UTF-8");
    }
    if (f->strict & FUZZ_STRICT_FIELD)
        FUZZ_ASSERT(e->code != CARELINE__V1__ERROR_CODE__INVALID_ARGUMENT || e->field[0],
                    "INVALID_ARGUMENT names no field: %s", e->message);
}

size_t fuzz_replies(Conn *c, FuzzReplyFn fn, void *arg)
{
    const Fuzz *f = fuzz_env();
    if (!c->bev)
        return 0; /* closed by the daemon: only after its output was flushed, i.e. none */
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t have = evbuffer_get_length(out);
    uint8_t *b = xmalloc(have ? have : 1);
    /* a socket bufferevent freezes the start of its output (only its writer reads it) */
    evbuffer_unfreeze(out, 1);
    ev_ssize_t got = evbuffer_remove(out, b, have);
    evbuffer_freeze(out, 1);
    FUZZ_ASSERT(got == (ev_ssize_t)have, "took %zd of %zu output bytes", got, have);
    size_t n = 0, at = 0;
    for (;;) {
        Envelope *env = NULL;
        size_t need = 0;
        uint32_t len = 0;
        FrameStatus st = frame_parse(b + at, have - at, FRAME_MAX_PAYLOAD, &env, &need, &len);
        if (st == FRAME_NEED_MORE) {
            FUZZ_ASSERT(at == have, "a partial frame of %zu bytes was sent", have - at);
            free(b);
            return n;
        }
        FUZZ_ASSERT(st == FRAME_OK, "the daemon sent a bad frame (status %d, length %u)", (int)st,
                    len);
        at += FRAME_HEADER + len;
        if (env->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR)
            fuzz_check_error(f, env->error);
        if (fn)
            fn(env, arg);
        frame_free(env);
        n++;
    }
}
