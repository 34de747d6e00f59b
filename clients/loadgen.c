/*
 * loadgen: a load generator for dispatchd. Many gateway connections submit SubmitRequests
 * for synthetic callers (phones from the residents table or a file), pipelined with a
 * window per connection, either open loop at a target rate (latency measured from each
 * request's intended send time, so a stalled server cannot hide its queueing: no
 * coordinated omission) or closed loop (every connection keeps its window full: the
 * maximum). Optional station consoles log in as station principals, time each QUEUED
 * reply to the matching JobOffer push, and accept and deliver what they are offered.
 * One thread, one libevent loop; loopback only; bounded in connections, count and time.
 *
 *   loadgen --port P (--token T | --tokens FILE) (--rate R | --closed) [options]
 *   see usage() for the rest.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cl.h"
#include "common/frame.h"
#include "common/util.h"
#include "lg_state.h"

static volatile sig_atomic_t interrupted;

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --port P (--token T | --tokens FILE) (--rate R | --closed) [options]\n"
            "  --host H            loopback only: 127.0.0.1 (default), ::1 is not supported\n"
            "  --conns N           gateway connections (default 16)\n"
            "  --window W          requests in flight per connection (default 32, max %d)\n"
            "  --rate R            open loop: R requests/s in all (latency from intended time)\n"
            "  --closed            closed loop: keep every window full (the maximum)\n"
            "  --duration S        measured seconds (default 10), after --warmup S (default 2)\n"
            "  --drain S           wait this long for outstanding replies (default 10)\n"
            "  --max-requests N    stop issuing after N requests\n"
            "  --phones FILE       caller phones, one per line; or --pg CONNINFO (residents)\n"
            "  --date YYYY-MM-DD   service date (default: tomorrow in Asia/Shanghai)\n"
            "  --slot lunch|dinner|both (default lunch)  --care-pct P  (home care share, 0)\n"
            "  --consoles N        station consoles (station lines of --console-tokens, or of\n"
            "                      --tokens); they accept and deliver offers unless --no-accept\n"
            "  --console-port P    the consoles' daemon (default: --port; e.g. a second daemon)\n"
            "  --no-resume         consoles send no StationResume (a daemon older than it)\n"
            "  --connect-timeout S (default 60)  --settle S (wait after the consoles logged in)\n"
            "  --run-id ID  --seed N\n"
            "  --report FILE       also write the figures as shell-sourceable KEY=VALUE lines\n"
            "  --quiet             no progress lines on stderr\n" TLSC_USAGE,
            MAX_WINDOW);
    exit(2);
}

/* ---- phases ----------------------------------------------------------------------------*/

static void begin_run(Lg *lg, uint64_t now)
{
    lg->phase = PH_RUN;
    lg->t_start = now;
    lg->t_warm = now + (uint64_t)(lg->o.warmup * 1e9);
    lg->t_end = lg->t_warm + (uint64_t)(lg->o.duration * 1e9);
    lg->t_last_progress = now;
    /* the station ids our consoles hold */
    lg->stations = xcalloc((size_t)lg->con_ready + 1, sizeof(int64_t));
    for (int i = lg->ngw; i < lg->nconn; i++)
        if (lg->conn[i].ready && !lg->conn[i].dead)
            lg->stations[lg->nstations++] = lg->conn[i].station_id;
    qsort(lg->stations, lg->nstations, sizeof(int64_t), lg_cmp_i64);
    if (!lg->o.quiet)
        fprintf(stderr,
                "loadgen: %d gateway connections and %d consoles ready in %.1f s; running "
                "%s for %.0f+%.0f s\n",
                lg->gw_ready, lg->con_ready, (double)(now - lg->t_connect) / 1e9,
                lg->o.closed ? "closed loop" : "open loop", lg->o.warmup, lg->o.duration);
    for (int i = 0; i < lg->ngw; i++)
        if (lg->conn[i].ready)
            lg_pump(lg, &lg->conn[i], now);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    Lg *lg = arg;
    uint64_t now = lg_now_ns();
    if (interrupted && lg->phase != PH_DONE) {
        fprintf(stderr, "loadgen: interrupted\n");
        lg->phase = PH_DONE;
        event_base_loopbreak(lg->base);
        return;
    }
    switch (lg->phase) {
    case PH_CONNECT: {
        /* all logged in, and the consoles' backlogs (jobs of earlier runs) handled: no
         * console traffic for a second */
        bool all = lg->next_connect >= lg->nconn && lg->connecting == 0 &&
                   now - lg->t_last_console > 1000000000ull;
        if (all && !lg->t_all_ready)
            lg->t_all_ready = now;
        if (all && now - lg->t_all_ready < (uint64_t)(lg->o.settle * 1e9))
            all = false; /* --settle: let the daemon finish the consoles' first reads */
        bool late = now - lg->t_connect > (uint64_t)(lg->o.connect_timeout * 1e9);
        if (lg->gw_dead >= lg->ngw && lg->ngw > 0) {
            fprintf(stderr, "loadgen: no gateway connection could log in\n");
            lg->phase = PH_DONE;
            event_base_loopbreak(lg->base);
            return;
        }
        if (all || late) {
            if (late && !all)
                fprintf(stderr, "loadgen: connect timeout: %d of %d consoles ready\n",
                        lg->con_ready, lg->nconn - lg->ngw);
            begin_run(lg, now);
        } else if (!lg->o.quiet && now - lg->t_last_progress > 2000000000ull) {
            lg->t_last_progress = now;
            fprintf(stderr, "loadgen: connecting: %d gateway, %d consoles ready\n", lg->gw_ready,
                    lg->con_ready);
        }
        return;
    }
    case PH_RUN:
        if (!lg->o.closed)
            lg_pump_open(lg, now);
        if (!lg->o.quiet && now - lg->t_last_progress > 2000000000ull) {
            lg->t_last_progress = now;
            fprintf(stderr, "loadgen: t=%.0fs issued %llu replies %llu in flight %llu\n",
                    (double)(now - lg->t_start) / 1e9, (unsigned long long)lg->issued,
                    (unsigned long long)lg->replies, (unsigned long long)lg_gw_inflight(lg));
        }
        if (now >= lg->t_end || (lg->o.max_requests && lg->issued >= lg->o.max_requests) ||
            lg->gw_dead >= lg->ngw) {
            lg->phase = PH_DRAIN;
            if (now < lg->t_end)
                lg->t_end = now;
            lg->t_drain_end = now + (uint64_t)(lg->o.drain * 1e9);
        }
        return;
    case PH_DRAIN:
        if ((lg_gw_inflight(lg) == 0 && lg->pending_marks == 0) || now >= lg->t_drain_end) {
            lg->phase = PH_DONE;
            event_base_loopbreak(lg->base);
        }
        return;
    case PH_DONE:
        return;
    }
}

static void sig_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    interrupted = 1;
}

/* ---- set-up ----------------------------------------------------------------------------*/

static void add_phone(Lg *lg, const char *p, size_t *cap)
{
    if (lg->nphones == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        lg->phones = xrealloc(lg->phones, *cap * sizeof(char *));
    }
    lg->phones[lg->nphones++] = xstrdup(p);
}

static bool load_phones(Lg *lg)
{
    size_t cap = 0;
    if (lg->o.phones_file) {
        FILE *f = fopen(lg->o.phones_file, "r");
        if (!f) {
            fprintf(stderr, "loadgen: %s: %s\n", lg->o.phones_file, strerror(errno));
            return false;
        }
        char line[128];
        while (fgets(line, sizeof(line), f)) {
            line[strcspn(line, " \t\r\n")] = '\0';
            if (line[0] && line[0] != '#')
                add_phone(lg, line, &cap);
        }
        fclose(f);
    } else {
        PGconn *pg = PQconnectdb(lg->o.pg);
        if (PQstatus(pg) != CONNECTION_OK) {
            fprintf(stderr, "loadgen: PostgreSQL: %s", PQerrorMessage(pg));
            PQfinish(pg);
            return false;
        }
        PGresult *r = PQexec(pg, "SELECT phone FROM residents ORDER BY id");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "loadgen: residents: %s", PQresultErrorMessage(r));
            PQclear(r);
            PQfinish(pg);
            return false;
        }
        for (int i = 0; i < PQntuples(r); i++)
            add_phone(lg, PQgetvalue(r, i, 0), &cap);
        PQclear(r);
        PQfinish(pg);
    }
    if (lg->nphones == 0) {
        fprintf(stderr, "loadgen: no caller phones\n");
        return false;
    }
    return true;
}

/* Up to max station tokens from a tokens file (lines "station ID TOKEN NAME"). */
static char **station_tokens(const char *path, int max, int *n)
{
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char **out = xcalloc((size_t)max + 1, sizeof(char *));
    char line[512], role[32], tok[300];
    long sid;
    while (*n < max && fgets(line, sizeof(line), f))
        if (sscanf(line, "%31s %ld %299s", role, &sid, tok) == 3 && strcmp(role, "station") == 0)
            out[(*n)++] = xstrdup(tok);
    fclose(f);
    return out;
}

static void tomorrow(char out[16])
{
    time_t t = time(NULL) + 8 * 3600 + 24 * 3600; /* Asia/Shanghai has no DST */
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

static bool parse_args(Opts *o, int argc, char **argv)
{
    *o = (Opts){.host = "127.0.0.1",
                .conns = 16,
                .window = 32,
                .duration = 10,
                .warmup = 2,
                .drain = 10,
                .connect_timeout = 60,
                .slot = "lunch",
                .accept = true,
                .seed = 0x5eed};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define ARG(name) (strcmp(a, name) == 0 && i + 1 < argc)
        if (tlsc_arg(&o->tls, argc, argv, &i))
            continue;
        else if (ARG("--host"))
            o->host = argv[++i];
        else if (ARG("--port"))
            o->port = atoi(argv[++i]);
        else if (ARG("--token"))
            o->token = argv[++i];
        else if (ARG("--tokens"))
            o->tokens = argv[++i];
        else if (ARG("--console-tokens"))
            o->console_tokens = argv[++i];
        else if (ARG("--phones"))
            o->phones_file = argv[++i];
        else if (ARG("--pg"))
            o->pg = argv[++i];
        else if (ARG("--conns"))
            o->conns = atoi(argv[++i]);
        else if (ARG("--window"))
            o->window = atoi(argv[++i]);
        else if (ARG("--rate"))
            o->rate = strtod(argv[++i], NULL);
        else if (strcmp(a, "--closed") == 0)
            o->closed = true;
        else if (ARG("--duration"))
            o->duration = strtod(argv[++i], NULL);
        else if (ARG("--warmup"))
            o->warmup = strtod(argv[++i], NULL);
        else if (ARG("--settle"))
            o->settle = strtod(argv[++i], NULL);
        else if (ARG("--drain"))
            o->drain = strtod(argv[++i], NULL);
        else if (ARG("--connect-timeout"))
            o->connect_timeout = strtod(argv[++i], NULL);
        else if (ARG("--max-requests"))
            o->max_requests = strtoull(argv[++i], NULL, 10);
        else if (ARG("--consoles"))
            o->consoles = atoi(argv[++i]);
        else if (ARG("--date"))
            o->date = argv[++i];
        else if (ARG("--slot"))
            o->slot = argv[++i];
        else if (ARG("--care-pct"))
            o->care_pct = atoi(argv[++i]);
        else if (ARG("--run-id"))
            o->run_id = argv[++i];
        else if (ARG("--seed"))
            o->seed = strtoull(argv[++i], NULL, 10);
        else if (ARG("--report"))
            o->report = argv[++i];
        else if (strcmp(a, "--no-accept") == 0)
            o->accept = false;
        else if (ARG("--console-port"))
            o->console_port = atoi(argv[++i]);
        else if (strcmp(a, "--no-resume") == 0)
            o->no_resume = true;
        else if (strcmp(a, "--quiet") == 0)
            o->quiet = true;
        else
            return false;
#undef ARG
    }
    if (o->port <= 0 || o->port > 65535 || (!o->token && !o->tokens))
        return false;
    if (o->closed == (o->rate > 0)) {
        fprintf(stderr, "loadgen: give exactly one of --rate R and --closed\n");
        return false;
    }
    if (o->conns < 1 || o->window < 1 || o->window > MAX_WINDOW || o->consoles < 0 ||
        o->conns + o->consoles > MAX_CONNS || o->duration <= 0 || o->duration > MAX_DURATION_S ||
        o->warmup < 0 || o->warmup > 600 || o->drain < 0 || o->drain > 600 || o->settle < 0 ||
        o->settle > 600 || o->connect_timeout <= 0 || o->connect_timeout > 600 || o->rate > 1e7 ||
        o->care_pct < 0 || o->care_pct > 100) {
        fprintf(stderr,
                "loadgen: a value is out of range (conns+consoles <= %d, window <= %d, "
                "duration <= %d s)\n",
                MAX_CONNS, MAX_WINDOW, MAX_DURATION_S);
        return false;
    }
    if (strcmp(o->slot, "lunch") && strcmp(o->slot, "dinner") && strcmp(o->slot, "both"))
        return false;
    if (!o->phones_file && !o->pg) {
        fprintf(stderr, "loadgen: give --phones FILE or --pg CONNINFO\n");
        return false;
    }
    return true;
}

static void raise_nofile(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < (rlim_t)want) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)want ? rl.rlim_max : (rlim_t)want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)want)
        fprintf(stderr, "loadgen: warning: open files limited to %llu (need about %d)\n",
                (unsigned long long)rl.rlim_cur, want);
}

int main(int argc, char **argv)
{
    Lg lg_storage = {0};
    Lg *lg = &lg_storage;
    if (!parse_args(&lg->o, argc, argv))
        usage();
    Opts *o = &lg->o;
    signal(SIGPIPE, SIG_IGN);

    /* loopback only: this tool must never be pointed at someone else's server */
    lg->addr.sin_family = AF_INET;
    lg->addr.sin_port = htons((uint16_t)o->port);
    if (strcmp(o->host, "localhost") == 0)
        o->host = "127.0.0.1";
    if (inet_pton(AF_INET, o->host, &lg->addr.sin_addr) != 1 ||
        (ntohl(lg->addr.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "loadgen: --host must be a 127.x.x.x address (loopback only)\n");
        return 2;
    }
    lg->console_addr = lg->addr;
    if (o->console_port > 0 && o->console_port <= 65535)
        lg->console_addr.sin_port = htons((uint16_t)o->console_port);
    char tls_err[512];
    if (!tlsc_new(&o->tls, o->host, &lg->tls, tls_err, sizeof(tls_err))) {
        fprintf(stderr, "loadgen: %s\n", tls_err);
        return 2;
    }

    char run_id[32];
    if (!o->run_id) {
        snprintf(run_id, sizeof(run_id), "%lx%x", (unsigned long)time(NULL), (unsigned)getpid());
        o->run_id = run_id;
    }
    lg->rng = o->seed ? o->seed : 1;
    if (o->date)
        snprintf(lg->date, sizeof(lg->date), "%s", o->date);
    else
        tomorrow(lg->date);

    char *gw_token = o->token ? xstrdup(o->token) : cl_token_from_file(o->tokens, "gateway", 0);
    if (!gw_token && o->tokens)
        gw_token = cl_token_from_file(o->tokens, "admin", 0);
    if (!gw_token) {
        fprintf(stderr, "loadgen: no gateway or admin token in %s\n", o->tokens);
        return 1;
    }
    int ncons = 0;
    char **ctoks = NULL;
    if (o->consoles > 0) {
        const char *path = o->console_tokens ? o->console_tokens : o->tokens;
        ctoks = path ? station_tokens(path, o->consoles, &ncons) : NULL;
        if (ncons < o->consoles) {
            fprintf(stderr, "loadgen: %d consoles asked for, %d station tokens in %s\n",
                    o->consoles, ncons, path ? path : "(no tokens file)");
            return 1;
        }
    }
    if (!load_phones(lg))
        return 1;
    raise_nofile(o->conns + ncons + 64);

    lg->h_submit = lg_hist_new();
    lg->h_push = lg_hist_new();
    lg->ring = xcalloc(JOB_RING, sizeof(JobMark));
    lg->ngw = o->conns;
    lg->nconn = o->conns + ncons;
    lg->conn = xcalloc((size_t)lg->nconn, sizeof(LgConn));
    for (int i = 0; i < lg->nconn; i++) {
        LgConn *c = &lg->conn[i];
        c->lg = lg;
        c->idx = i < lg->ngw ? i : i - lg->ngw;
        if (i < lg->ngw) {
            c->kind = LC_GATEWAY;
            c->token = gw_token;
            c->free_slots = xcalloc((size_t)o->window, sizeof(uint16_t));
            c->slot_t0 = xcalloc((size_t)o->window, sizeof(uint64_t));
            c->slot_gen = xcalloc((size_t)o->window, sizeof(uint32_t));
            for (int s = 0; s < o->window; s++)
                c->free_slots[c->nfree++] = (uint16_t)(o->window - 1 - s);
        } else {
            c->kind = LC_CONSOLE;
            c->token = ctoks[i - lg->ngw];
        }
    }

    lg->base = event_base_new();
    if (!lg->base) {
        fprintf(stderr, "loadgen: event_base_new failed\n");
        return 1;
    }
    lg->tick = event_new(lg->base, -1, EV_PERSIST, tick_cb, lg);
    struct timeval tv = {0, TICK_US};
    event_add(lg->tick, &tv);
    lg->sigint = evsignal_new(lg->base, SIGINT, sig_cb, lg);
    event_add(lg->sigint, NULL);
    struct event *sigterm = evsignal_new(lg->base, SIGTERM, sig_cb, lg);
    event_add(sigterm, NULL);

    /* consoles first, so they are there when the first jobs are pushed */
    lg->t_connect = lg_now_ns();
    lg->t_last_progress = lg->t_connect;
    lg->phase = PH_CONNECT;
    lg_start_connections(lg);
    event_base_dispatch(lg->base);
    uint64_t done = lg_now_ns();
    if (lg->t_start && done < lg->t_end)
        lg->t_end = done;

    int rc = 0;
    if (!lg->t_start || lg->replies == 0) {
        fprintf(stderr, "loadgen: no replies: nothing was measured\n");
        rc = 1;
    }
    if (lg->t_start) {
        lg_report(lg, stdout, false);
        if (o->report) {
            FILE *f = fopen(o->report, "w");
            if (!f) {
                fprintf(stderr, "loadgen: %s: %s\n", o->report, strerror(errno));
                rc = 1;
            } else {
                lg_report(lg, f, true);
                fclose(f);
            }
        }
    }
    if (interrupted)
        rc = 130;

    for (int i = 0; i < lg->nconn; i++) {
        LgConn *c = &lg->conn[i];
        if (c->bev)
            bufferevent_free(c->bev);
        free(c->free_slots);
        free(c->slot_t0);
        free(c->slot_gen);
    }
    for (int i = 0; i < ncons; i++)
        free(ctoks[i]);
    free(ctoks);
    for (size_t i = 0; i < lg->nphones; i++)
        free(lg->phones[i]);
    free(lg->phones);
    free(lg->conn);
    free(lg->stations);
    free(lg->ring);
    free(gw_token);
    lg_hist_free(lg->h_submit);
    lg_hist_free(lg->h_push);
    event_free(lg->tick);
    event_free(lg->sigint);
    event_free(sigterm);
    event_base_free(lg->base);
    tlsc_free(lg->tls);
    return rc;
}
