/*
 * bureau: the civil-affairs bureau's command-line view of coverage, over the protocol
 * (CoverageQuery with a bureau or admin token). Prints aligned text (Chinese names count two
 * columns each), or the same CSV / JSON the daemon's HTTP endpoints serve.
 *
 *   bureau [--host H] [--port P] [--token T | --tokens FILE] [--format text|csv|json] COMMAND
 *   coverage [--town CODE]                 county (or one town) figure and indicators
 *   towns [--town CODE]                    one line per town
 *   villages [--uncovered | --covered] [--town CODE]
 *   history [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--town CODE]
 *   plan [--target 0.95] [--town CODE]     fewest new stations to reach the target
 *   realized [--from D] [--to D] [--town CODE]
 *   unmet [--from D] [--to D] [--town CODE] unmet demand: callers not registered, followed up
 *   snapshot [--day D]                     write the day's snapshot now
 *
 * The follow-up list itself (admin token by default, or --station N for station N's token
 * from the tokens file; FollowupQuery / FollowupMark):
 *   followups [--village CODE] [--town CODE] [--state open|contacted|registered|declined]
 *             [--after ID] [--limit N]
 *   followup-mark ID contacted|declined|registered [--note TEXT] [--village CODE]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl.h"
#include "common/followup_format.h"
#include "common/report_format.h"

#define SCOPE(x) CARELINE__V1__COVERAGE_SCOPE__SCOPE_##x

typedef struct {
    const char *host, *token, *tokens, *town, *from, *to, *day, *format;
    int port;
    double target;
    bool uncovered, covered;
    TlsClientOpts tls;
    /* the follow-up commands */
    const char *village, *state, *note;
    long station, after, limit;
    const char *args[2]; /* followup-mark ID STATE */
    int nargs;
} Opts;

static void usage(void)
{
    fprintf(stderr,
            "usage: bureau [--host H] [--port P] [--token T | --tokens FILE]\n"
            "              [--format text|csv|json] COMMAND [options]\n"
            "  coverage [--town CODE]\n"
            "  towns [--town CODE]\n"
            "  villages [--uncovered | --covered] [--town CODE]\n"
            "  history [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--town CODE]\n"
            "  plan [--target 0.95] [--town CODE]\n"
            "  realized [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--town CODE]\n"
            "  unmet [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--town CODE]\n"
            "  followups [--village CODE] [--town CODE] [--state STATE] [--after ID] [--limit N]\n"
            "  followup-mark ID contacted|declined|registered [--note TEXT] [--village CODE]\n"
            "    (the follow-up commands use the admin token, or --station N's)\n"
            "  snapshot [--day YYYY-MM-DD]\n"
            "" TLSC_USAGE
            "The token defaults to the bureau line of var/dev-tokens.txt (from `make run`).\n");
    exit(2);
}

/* ---- display width: CJK and full-width characters take two columns ---------------------- */

static unsigned cp_width(unsigned cp)
{
    if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF && cp != 0x303F) ||
        (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
        (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
        (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x20000 && cp <= 0x3FFFD))
        return 2;
    return 1;
}

static unsigned display_width(const char *s)
{
    unsigned w = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned cp, n;
        if (*p < 0x80)
            cp = *p, n = 1;
        else if ((*p & 0xE0) == 0xC0)
            cp = *p & 0x1F, n = 2;
        else if ((*p & 0xF0) == 0xE0)
            cp = *p & 0x0F, n = 3;
        else
            cp = *p & 0x07, n = 4;
        for (unsigned i = 1; i < n; i++) {
            if ((p[i] & 0xC0) != 0x80) { /* broken UTF-8: count the byte, move on */
                n = 1;
                break;
            }
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        w += cp_width(cp);
        p += n;
    }
    return w;
}

/* Prints s left-aligned in a field of `cols` display columns. */
static void pad(const char *s, unsigned cols)
{
    fputs(s, stdout);
    for (unsigned w = display_width(s); w < cols; w++)
        putchar(' ');
}

/* Prints s right-aligned in a field of `cols` display columns. */
static void padr(const char *s, unsigned cols)
{
    for (unsigned w = display_width(s); w < cols; w++)
        putchar(' ');
    fputs(s, stdout);
}

static unsigned max_u(unsigned a, unsigned b)
{
    return a > b ? a : b;
}

/* ---- text output ------------------------------------------------------------------------ */

static void fig_line(const char *code, const char *name, unsigned wname,
                     const Careline__V1__CoverageFigure *f, double target)
{
    pad(code, 13);
    pad(name, wname + 2);
    printf("%4u/%-4u %6.1f%%  %8llu/%-8llu %6.1f%%  %4u  %s\n", f->villages_covered, f->villages,
           100 * f->rate, (unsigned long long)f->elderly_covered, (unsigned long long)f->elderly,
           100 * f->rate_elderly, f->approx_villages,
           target > 0 ? (f->rate >= target ? "达标" : "未达标") : "");
}

static void fig_header(unsigned wname)
{
    pad("代码", 13);
    pad("名称", wname + 2);
    pad("覆盖村数", 10);
    padr("覆盖率", 7);
    fputs("  ", stdout);
    pad("覆盖老年人", 18);
    padr("加权率", 7);
    padr("估点", 6);
    putchar('\n');
}

static void print_text(const Careline__V1__CoverageReport *r, Careline__V1__CoverageScope sc)
{
    const char *where = r->scope_name && r->scope_name[0] ? r->scope_name : r->scope_code;
    if (sc == SCOPE(COUNTY) || sc == SCOPE(TOWNS) || sc == SCOPE(SNAPSHOT)) {
        const Careline__V1__CoverageFigure *f = r->county;
        printf("老年助餐配送餐服务覆盖 %s  (%s, %u 分钟服务圈)\n", where, r->as_of,
               r->service_circle_minutes);
        if (sc == SCOPE(SNAPSHOT))
            printf("已写入快照: %s\n", r->snapshot_day);
        if (f)
            printf("覆盖村(社区): %u / %u = %.1f%%  目标 %.0f%%  %s\n"
                   "按老年人口加权: %llu / %llu = %.1f%%   位置为估算的村: %u\n",
                   f->villages_covered, f->villages, 100 * f->rate, 100 * r->target,
                   f->rate >= r->target ? "达标" : "未达标", (unsigned long long)f->elderly_covered,
                   (unsigned long long)f->elderly, 100 * f->rate_elderly, f->approx_villages);
        if (r->n_indicators) {
            unsigned w = 0;
            for (size_t i = 0; i < r->n_indicators; i++)
                w = max_u(w, display_width(r->indicators[i]->name_zh));
            printf("\n指标 (%s .. %s)\n", r->from_date, r->to_date);
            for (size_t i = 0; i < r->n_indicators; i++) {
                const Careline__V1__Indicator *in = r->indicators[i];
                pad(in->name_zh, w + 2);
                bool per10k = strcmp(in->key, "certified_per_10k") == 0;
                if (per10k)
                    printf("%8.2f   目标 %6.2f   %s\n", in->value, in->target,
                           in->met ? "达标" : "未达标");
                else
                    printf("%7.1f%%   目标 %5.1f%%   %s\n", 100 * in->value, 100 * in->target,
                           in->met ? "达标" : "未达标");
            }
        }
        if (sc != SCOPE(COUNTY) && r->n_towns) {
            unsigned w = 4;
            for (size_t i = 0; i < r->n_towns; i++)
                w = max_u(w, display_width(r->towns[i]->name));
            printf("\n");
            fig_header(w);
            for (size_t i = 0; i < r->n_towns; i++)
                fig_line(r->towns[i]->code, r->towns[i]->name, w, r->towns[i]->figure, r->target);
        }
    } else if (sc == SCOPE(VILLAGES)) {
        unsigned w = 4;
        for (size_t i = 0; i < r->n_villages; i++)
            w = max_u(w, display_width(r->villages[i]->name));
        pad("代码", 13);
        pad("名称", w + 2);
        pad("覆盖", 6);
        padr("站点", 9);
        padr("分钟", 9);
        padr("老年人", 7);
        fputs(" 位置\n", stdout);
        for (size_t i = 0; i < r->n_villages; i++) {
            const Careline__V1__VillageCoverage *v = r->villages[i];
            pad(v->code, 13);
            pad(v->name, w + 2);
            pad(v->covered ? "是" : "否", 6);
            if (v->nearest_station_id)
                printf(" %8lld %8.1f", (long long)v->nearest_station_id, v->nearest_minutes);
            else
                printf(" %8s %8s", "-", "-");
            printf(" %6u %s\n", v->elderly, v->approximate_location ? "估算" : "");
        }
        printf("%zu 个村(社区)\n", r->n_villages);
    } else if (sc == SCOPE(HISTORY)) {
        printf("覆盖快照 %s  %s .. %s\n", where, r->from_date, r->to_date);
        pad("日期", 12);
        pad("覆盖村数", 10);
        padr("覆盖率", 7);
        padr("目标", 8);
        putchar('\n');
        for (size_t i = 0; i < r->n_history; i++) {
            const Careline__V1__CoverageSnapshot *h = r->history[i];
            printf("%-10s  %4u/%-4u %6.1f%%  %5.1f%%  %s\n", h->day, h->figure->villages_covered,
                   h->figure->villages, 100 * h->figure->rate, 100 * h->target,
                   h->figure->rate >= h->target ? "达标" : "未达标");
        }
        if (!r->n_history)
            printf("(这段时间没有快照)\n");
    } else if (sc == SCOPE(PLAN)) {
        printf("新增站点规划 %s: 目标 %.1f%%, 现覆盖 %u 个村, 需要 %u 个\n", where, 100 * r->target,
               r->plan_covered_before, r->plan_need);
        unsigned w = 4;
        for (size_t i = 0; i < r->n_plan; i++)
            w = max_u(w, display_width(r->plan[i]->name));
        printf("%-4s ", "#");
        pad("村代码", 13);
        pad("村名(选址)", w + 2);
        padr("新覆盖", 6);
        padr("累计", 9);
        padr("覆盖率", 8);
        putchar('\n');
        for (size_t i = 0; i < r->n_plan; i++) {
            const Careline__V1__PlanStep *p = r->plan[i];
            printf("%-4zu ", i + 1);
            pad(p->village_code, 13);
            pad(p->name, w + 2);
            printf("%6u %8u %6.1f%%\n", p->newly_covered, p->covered_after, 100 * p->rate_after);
        }
        printf(r->plan_reached ? "新增 %zu 个站点可达到目标\n"
                               : "新增 %zu 个候选站点后仍未达到目标\n",
               r->n_plan);
    } else if (sc == SCOPE(REALIZED)) {
        printf("实际服务 %s  %s .. %s\n", where, r->from_date, r->to_date);
        unsigned w = 4;
        for (size_t i = 0; i < r->n_realized; i++)
            w = max_u(w, display_width(r->realized[i]->name));
        pad("范围", 9);
        pad("代码", 14);
        pad("名称", w + 2);
        pad("类型", 14);
        const char *heads[] = {"来电", "派单", "送达", "准时", "拒绝", "候补", "死信", "未登记"};
        for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++)
            padr(heads[i], 7);
        padr("中位分钟", 9);
        padr("P90", 8);
        putchar('\n');
        for (size_t i = 0; i < r->n_realized; i++) {
            const Careline__V1__RealizedRow *x = r->realized[i];
            pad(x->scope, 9);
            pad(x->key, 14);
            pad(x->name, w + 2);
            printf("%-14s %6u %6u %6u %6u %6u %6u %6u %6u", x->kind, x->received, x->queued,
                   x->delivered, x->on_time, x->rejected, x->waitlisted, x->dead_lettered,
                   x->not_registered);
            if (x->median_minutes >= 0)
                printf(" %8.1f %7.1f\n", x->median_minutes, x->p90_minutes);
            else
                printf(" %8s %7s\n", "-", "-");
        }
    } else if (sc == SCOPE(UNMET)) {
        printf("未登记来电跟进 %s  首次来电 %s .. %s\n", where, r->from_date, r->to_date);
        unsigned w = 4;
        for (size_t i = 0; i < r->n_unmet; i++)
            w = max_u(w, display_width(r->unmet[i]->name));
        pad("范围", 9);
        pad("代码", 14);
        pad("名称", w + 2);
        const char *heads[] = {"来电人", "待跟进", "已联系", "已登记", "拒绝", "来电", "登记居民"};
        for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++)
            padr(heads[i], 9);
        padr("跟进中位小时", 13);
        putchar('\n');
        for (size_t i = 0; i < r->n_unmet; i++) {
            const Careline__V1__UnmetRow *x = r->unmet[i];
            pad(x->scope, 9);
            pad(x->key[0] ? x->key : (strcmp(x->scope, "town") == 0 ? "(未知)" : ""), 14);
            pad(x->name, w + 2);
            printf("%8u %8u %8u %8u %8u %8u %8u", x->followups, x->open, x->contacted,
                   x->registered, x->declined, x->calls, x->registered_residents);
            if (x->median_hours_to_contact >= 0)
                printf(" %12.1f\n", x->median_hours_to_contact);
            else
                printf(" %12s\n", "-");
        }
    }
}

/* ---- the follow-up list ------------------------------------------------------------------ */

/* Epoch ms as local (Asia/Shanghai, UTC+8) "YYYY-MM-DD HH:MM"; "-" for 0. */
static void local_time(int64_t ms, char out[20])
{
    if (!ms) {
        snprintf(out, 20, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000) + 8 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 20, "%Y-%m-%d %H:%M", &tm);
}

static void print_followups(Careline__V1__Followup **fs, size_t n, bool more)
{
    unsigned wv = 8, wt = 8; /* the headers' widths */
    for (size_t i = 0; i < n; i++) {
        wv = max_u(wv, display_width(fs[i]->village_name));
        wt = max_u(wt, display_width(fs[i]->town_name));
    }
    pad("编号", 8);
    pad("电话", 13);
    pad("村(社区)", wv + 2);
    pad("镇(街道)", wt + 2);
    pad("首次来电", 18);
    pad("最近来电", 18);
    padr("来电", 5);
    fputs("  状态        备注\n", stdout);
    for (size_t i = 0; i < n; i++) {
        const Careline__V1__Followup *x = fs[i];
        char first[20], last[20];
        local_time(x->first_call_ms, first);
        local_time(x->last_call_ms, last);
        printf("%-8lld", (long long)x->id);
        pad(x->phone_masked, 13);
        pad(x->village_code[0] ? x->village_name : "(未知)", wv + 2);
        pad(x->town_code[0] ? x->town_name : "(未知)", wt + 2);
        pad(first, 18);
        pad(last, 18);
        printf("%5u  %-12s%s\n", x->calls, followup_state_name(x->state), x->note);
    }
    if (more)
        printf("%zu 条 (还有更多: --after %lld)\n", n, n ? (long long)fs[n - 1]->id : 0LL);
    else
        printf("%zu 条\n", n);
}

static bool is_followup_cmd(const char *cmd)
{
    return strcmp(cmd, "followups") == 0 || strcmp(cmd, "followup-mark") == 0;
}

/* The follow-up command's request into e (its parts in q / m); false on a bad argument. */
static bool followup_request(const Opts *o, const char *cmd, ClEnvelope *e,
                             Careline__V1__FollowupQuery *q, Careline__V1__FollowupMark *m)
{
    if (strcmp(cmd, "followups") == 0) {
        q->village_code = (char *)(o->village ? o->village : "");
        q->town_code = (char *)(o->town ? o->town : "");
        int st = o->state ? followup_state_of(o->state) : 0;
        if (st < 0) {
            fprintf(stderr, "bureau: --state is open, contacted, registered or declined\n");
            return false;
        }
        q->state = (Careline__V1__FollowupState)st;
        q->after_id = o->after;
        q->limit = (uint32_t)(o->limit > 0 ? o->limit : 0);
        e->body_case = CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_QUERY;
        e->followup_query = q;
        return true;
    }
    char *end = NULL;
    m->followup_id = o->nargs == 2 ? strtoll(o->args[0], &end, 10) : 0;
    int st = o->nargs == 2 ? followup_state_of(o->args[1]) : -1;
    if (o->nargs != 2 || !end || *end || st < 0) {
        fprintf(stderr, "bureau: followup-mark ID contacted|declined|registered [--note TEXT]\n");
        return false;
    }
    m->state = (Careline__V1__FollowupState)st;
    m->note = (char *)(o->note ? o->note : "");
    m->village_code = (char *)(o->village ? o->village : "");
    e->body_case = CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_MARK;
    e->followup_mark = m;
    return true;
}

/* Prints a follow-up reply in o->format; 0, or 1 for an unexpected reply. */
static int followup_print(const Opts *o, const ClEnvelope *r)
{
    Careline__V1__Followup **fs;
    size_t n;
    bool more = false, one = r->body_case == CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_MARK_RESULT;
    if (one) {
        fs = &r->followup_mark_result->followup;
        n = *fs ? 1 : 0;
    } else if (r->body_case == CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_LIST) {
        fs = r->followup_list->followups;
        n = r->followup_list->n_followups;
        more = r->followup_list->more;
    } else {
        fprintf(stderr, "bureau: unexpected reply\n");
        return 1;
    }
    if (strcmp(o->format, "text") == 0) {
        print_followups(fs, n, more);
        return 0;
    }
    size_t len;
    char *s = strcmp(o->format, "csv") == 0 ? followup_csv(fs, n, &len)
                                            : followup_json(fs, n, more, one, &len);
    fwrite(s, 1, len, stdout);
    free(s);
    return 0;
}

static int scope_of(const char *cmd)
{
    static const struct {
        const char *name;
        int scope;
    } cmds[] = {{"coverage", SCOPE(COUNTY)},   {"towns", SCOPE(TOWNS)},
                {"villages", SCOPE(VILLAGES)}, {"history", SCOPE(HISTORY)},
                {"plan", SCOPE(PLAN)},         {"realized", SCOPE(REALIZED)},
                {"snapshot", SCOPE(SNAPSHOT)}, {"unmet", SCOPE(UNMET)}};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(cmd, cmds[i].name) == 0)
            return cmds[i].scope;
    return -1;
}

int main(int argc, char **argv)
{
    Opts o = {.host = "127.0.0.1", .port = 7400, .tokens = "var/dev-tokens.txt", .format = "text"};
    const char *cmd = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && ++i)
        if (OPT("--host"))
            o.host = v;
        else if (OPT("--port"))
            o.port = atoi(v);
        else if (OPT("--token"))
            o.token = v;
        else if (OPT("--tokens"))
            o.tokens = v;
        else if (OPT("--town"))
            o.town = v;
        else if (OPT("--from"))
            o.from = v;
        else if (OPT("--to"))
            o.to = v;
        else if (OPT("--day"))
            o.day = v;
        else if (OPT("--format"))
            o.format = v;
        else if (OPT("--village"))
            o.village = v;
        else if (OPT("--state"))
            o.state = v;
        else if (OPT("--note"))
            o.note = v;
        else if (OPT("--station"))
            o.station = atol(v);
        else if (OPT("--after"))
            o.after = atol(v);
        else if (OPT("--limit"))
            o.limit = atol(v);
        else if (OPT("--target")) {
            char *end;
            o.target = strtod(v, &end);
            if (*end || o.target == 0) {
                fprintf(stderr, "bureau: --target wants a number in (0, 1], e.g. 0.95\n");
                return 2;
            }
        } else if (strcmp(a, "--uncovered") == 0)
            o.uncovered = true;
        else if (strcmp(a, "--covered") == 0)
            o.covered = true;
        else if (tlsc_arg(&o.tls, argc, argv, &i))
            continue;
        else if (!cmd && a[0] != '-')
            cmd = a;
        else if (cmd && a[0] != '-' && o.nargs < 2)
            o.args[o.nargs++] = a;
        else
            usage();
#undef OPT
    }
    if (!cmd || (scope_of(cmd) < 0 && !is_followup_cmd(cmd)))
        usage();
    if (o.nargs && strcmp(cmd, "followup-mark") != 0)
        usage();
    if (strcmp(o.format, "text") != 0 && strcmp(o.format, "csv") != 0 &&
        strcmp(o.format, "json") != 0)
        usage();
    bool fu = is_followup_cmd(cmd);
    char *tok = o.token ? strdup(o.token)
                : fu    ? cl_token_from_file(o.tokens, o.station ? "station" : "admin", o.station)
                        : cl_token_from_file(o.tokens, "bureau", 0);
    if (!tok) {
        fprintf(stderr, "bureau: no token: give --token or run `make run` first (%s)\n", o.tokens);
        return 2;
    }
    char err[256];
    ClConn *c = cl_open_opts(o.host, o.port, &o.tls, 3000, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "bureau: %s%s\n", err,
                strncmp(err, "TLS", 3) ? " (is dispatchd running? `make run`)" : "");
        free(tok);
        return 1;
    }
    ClEnvelope *r = cl_hello(c, tok, "bureau", 5000, err, sizeof(err));
    free(tok);
    if (!r || r->body_case != CARELINE__V1__ENVELOPE__BODY_HELLO_OK) {
        if (r && r->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR)
            fprintf(stderr, "bureau: %s\n", r->error->message);
        else
            fprintf(stderr, "bureau: %s\n", r ? "unexpected reply to Hello" : err);
        cl_free(r);
        cl_close(c);
        return 1;
    }
    cl_free(r);

    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    Careline__V1__FollowupQuery fq = CARELINE__V1__FOLLOWUP_QUERY__INIT;
    Careline__V1__FollowupMark fm = CARELINE__V1__FOLLOWUP_MARK__INIT;
    if (fu && !followup_request(&o, cmd, &e, &fq, &fm)) {
        cl_close(c);
        return 2;
    }
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.scope = (Careline__V1__CoverageScope)(fu ? 0 : scope_of(cmd));
    q.town_code = (char *)(o.town ? o.town : "");
    q.uncovered_only = o.uncovered;
    q.covered_only = o.covered;
    q.from_date = (char *)(o.from ? o.from : "");
    q.to_date = (char *)(o.to ? o.to : "");
    q.day = (char *)(o.day ? o.day : "");
    q.target = o.target;
    if (!fu) {
        e.body_case = CARELINE__V1__ENVELOPE__BODY_COVERAGE_QUERY;
        e.coverage_query = &q;
    }
    r = cl_call(c, &e, 30000, err, sizeof(err), NULL, NULL);
    int rc = 0;
    if (!r) {
        fprintf(stderr, "bureau: %s\n", err);
        rc = 1;
    } else if (r->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR) {
        const Careline__V1__Error *x = r->error;
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(&careline__v1__error_code__descriptor, x->code);
        fprintf(stderr, "bureau: %s%s%s%s: %s\n", ev ? ev->name : "error",
                x->field && x->field[0] ? " (" : "", x->field ? x->field : "",
                x->field && x->field[0] ? ")" : "", x->message);
        rc = x->code == CARELINE__V1__ERROR_CODE__INVALID_ARGUMENT ? 2 : 1;
    } else if (fu) {
        rc = followup_print(&o, r);
    } else if (r->body_case != CARELINE__V1__ENVELOPE__BODY_COVERAGE_REPORT) {
        fprintf(stderr, "bureau: unexpected reply\n");
        rc = 1;
    } else if (strcmp(o.format, "text") == 0) {
        print_text(r->coverage_report, q.scope);
    } else {
        size_t n;
        char *s = strcmp(o.format, "csv") == 0 ? report_csv(r->coverage_report, q.scope, &n)
                                               : report_json(r->coverage_report, q.scope, &n);
        fwrite(s, 1, n, stdout);
        free(s);
    }
    cl_free(r);
    cl_close(c);
    return rc;
}
