/*
 * station-console: a station operator's screen. Jobs pushed by dispatchd appear as they
 * come (offers, updates, withdrawals) and the operator answers with short commands; with
 * --json the same events are one JSON line each, for scripts and tests. One poll() loop
 * watches the daemon's socket, stdin and a few deadlines (reconnect backoff, heartbeats,
 * auto-mode timers), so nothing the operator types waits on the network and pushes appear
 * while they type. The screen is a table of open jobs keyed by job id. After every
 * (re)connect the console tells the daemon the last feed position it was given
 * (StationResume) and gets what it missed, updating entries in place, then "backlog
 * complete" (BacklogEnd; after a full backlog the jobs not resent leave the table).
 *
 *   station-console [--host H] [--port P] (--token T | --tokens FILE --station ID) [--json]
 *                   [--auto-accept] [--complete-after MS] [--reject-all REASON]
 *                   [--exit-after N] [--caregivers N]
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cl.h"
#include "console_state.h"
#include "common/util.h"

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

/* ---- main ------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(
        stderr,
        "usage: station-console [--host 127.0.0.1] [--port 7400]\n"
        "                       (--token T | --tokens var/dev-tokens.txt --station ID)\n"
        "                       [--json] [--auto-accept] [--complete-after MS]\n"
        "                       [--reject-all full|staff|area|other] [--exit-after N]\n"
        "                       [--caregivers N]\n"
        "  --json             one JSON line per event (scripts); stdin commands still work\n"
        "  --auto-accept      accept every offer at once\n"
        "  --complete-after MS  accepted jobs go en route MS later, then are delivered/done\n"
        "  --reject-all R     reject every offer with reason R (re-dispatch demos)\n"
        "  --exit-after N     exit 0 once N jobs reached a final state\n"
        "  --caregivers N     caregivers on duty, reported with open/close/capacity\n" TLSC_USAGE
        "Type `help` in the console for its commands.\n");
    exit(EXIT_USAGE);
}

static void parse_args(int argc, char **argv, Opts *o)
{
    *o = (Opts){.host = "127.0.0.1", .port = 7400, .complete_after_ms = -1, .caregivers = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
#define OPT(name) (strcmp(a, name) == 0 && v && ++i)
        if (OPT("--host")) {
            o->host = v;
        } else if (OPT("--port")) {
            if (!con_parse_long(v, 1, 65535, &n))
                usage();
            o->port = (int)n;
        } else if (OPT("--token")) {
            o->token_arg = v;
        } else if (OPT("--tokens")) {
            o->tokens_file = v;
        } else if (OPT("--station")) {
            if (!con_parse_long(v, 1, 0x7fffffffL, &o->station))
                usage();
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--auto-accept") == 0) {
            o->auto_accept = true;
        } else if (OPT("--complete-after")) {
            if (!con_parse_long(v, 0, 86400000, &o->complete_after_ms))
                usage();
        } else if (OPT("--reject-all")) {
            o->reject_all = con_reason_of(v, false);
            if (!o->reject_all)
                usage();
        } else if (OPT("--exit-after")) {
            if (!con_parse_long(v, 1, 1000000000, &o->exit_after))
                usage();
        } else if (OPT("--caregivers")) {
            if (!con_parse_long(v, 0, 10000, &n))
                usage();
            o->caregivers = (int)n;
        } else if (tlsc_arg(&o->tls, argc, argv, &i)) {
            continue;
        } else {
            usage();
        }
#undef OPT
    }
    if (o->auto_accept && o->reject_all) {
        fprintf(stderr, "station-console: --auto-accept and --reject-all exclude each other\n");
        exit(EXIT_USAGE);
    }
    if (!o->token_arg && !o->station) {
        fprintf(stderr, "station-console: give --token T, or --tokens FILE --station ID\n");
        usage();
    }
}

static char *load_token(const Opts *o)
{
    if (o->token_arg)
        return xstrdup(o->token_arg);
    const char *path = o->tokens_file ? o->tokens_file : "var/dev-tokens.txt";
    char *t = cl_token_from_file(path, "station", o->station);
    if (!t) {
        fprintf(stderr,
                "station-console: no token for station %ld in %s (run `make run` first, or give "
                "--token)\n",
                o->station, path);
        exit(EXIT_USAGE);
    }
    return t;
}

static int poll_timeout(const Console *c, int64_t now)
{
    int64_t next = now + 1000; /* at least once a second (offer countdowns, signals) */
    if (c->state == LINK_DOWN && c->retry_at_ms < next)
        next = c->retry_at_ms;
    if ((c->state == LINK_CONNECTING || c->state == LINK_HELLO) && c->deadline_ms < next)
        next = c->deadline_ms;
    if (c->state == LINK_UP) {
        if (c->next_ping_ms < next)
            next = c->next_ping_ms;
        if (c->settle_at_ms && c->settle_at_ms < next)
            next = c->settle_at_ms;
        for (size_t i = 0; i < c->njobs; i++)
            if (c->jobs[i].due_ms && !c->jobs[i].busy && c->jobs[i].due_ms < next)
                next = c->jobs[i].due_ms;
    }
    return next <= now ? 0 : (int)(next - now);
}

int main(int argc, char **argv)
{
    Console con = {0};
    Console *c = &con;
    parse_args(argc, argv, &c->opt);
    c->token = load_token(&c->opt);
    c->staff = c->opt.caregivers;
    c->interactive_tty = !c->opt.json && isatty(STDIN_FILENO);
    c->stdin_open = true;
    TlsClient *tls;
    char err[512];
    if (!tlsc_new(&c->opt.tls, c->opt.host, &tls, err, sizeof(err))) {
        fprintf(stderr, "station-console: %s\n", err);
        free(c->token);
        return EXIT_USAGE;
    }
    c->link = clink_new(tls);
    c->backoff_ms = BACKOFF_MIN_MS;
    c->next_seq = 1;
    if (c->opt.json)
        setvbuf(stdout, NULL, _IOLBF, 0);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR and we leave cleanly */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    con_say(c, "站点控制台 station console — 正在连接 connecting to dispatchd at %s:%d …\n",
            c->opt.host, c->opt.port);
    con_link_start(c);
    while (!c->quit && !got_signal) {
        con_prompt(c);
        int64_t now = util_now_ms();
        struct pollfd pf[2];
        nfds_t n = 0;
        int link_i = -1, in_i = -1;
        if (clink_fd(c->link) >= 0) {
            pf[n] = (struct pollfd){clink_fd(c->link), clink_events(c->link), 0};
            link_i = (int)n++;
        }
        if (c->stdin_open) {
            pf[n] = (struct pollfd){STDIN_FILENO, POLLIN, 0};
            in_i = (int)n++;
        }
        int rc = poll(pf, n, poll_timeout(c, now));
        if (rc < 0 && errno != EINTR) {
            fprintf(stderr, "station-console: poll: %s\n", strerror(errno));
            c->exit_code = 1;
            break;
        }
        if (rc > 0 && in_i >= 0 && pf[in_i].revents)
            con_stdin_read(c);
        if (rc > 0 && link_i >= 0 && pf[link_i].revents && !c->quit &&
            clink_fd(c->link) == pf[link_i].fd)
            con_link_io(c, pf[link_i].revents);
        if (c->quit)
            break;
        now = util_now_ms();
        con_link_tick(c, now);
        con_run_timers(c, now);
    }
    if (got_signal && c->opt.json)
        con_emit(c, json_pack("{s:s, s:s}", "event", "exit", "reason",
                              got_signal == SIGINT ? "SIGINT" : "SIGTERM"));
    else if (!c->opt.json && c->exit_code == 0)
        con_say(c, "\n再见 / bye\n");
    con_flush(c);
    for (size_t i = 0; i < c->njobs; i++)
        cl_free(c->jobs[i].env);
    free(c->jobs);
    free(c->pend);
    clink_free(c->link);
    tlsc_free(tls);
    free(c->token);
    return c->exit_code;
}
