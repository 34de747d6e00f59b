/*
 * console_cmd: the station operator's commands (English or Chinese words), read from
 * stdin a line at a time without blocking the poll loop, checked here and sent as
 * JobUpdate or StationStatus.
 */
#include "console_state.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- commands --------------------------------------------------------------------------- */

static const char help_text[] =
    "命令 commands (ID = 任务编号 job number):\n"
    "  list                              列出本站未完成的任务 / show open jobs\n"
    "  accept ID                         接单 / accept an offer\n"
    "  reject ID full|staff|area|other [备注 note]\n"
    "                                    拒单：满员|人手不足|不在服务范围|其他 / reject\n"
    "  go ID                             出发 / someone is on the way\n"
    "  done ID                           送达（送餐）或完成（上门）/ delivered or done\n"
    "  fail ID nothome|unwell|refused|other [备注 note]\n"
    "                                    未完成：老人不在家|身体不适|拒绝服务|其他 / failed\n"
    "  open [N]                          营业（N = 在岗护理员人数）/ open, N caregivers on duty\n"
    "  close                             暂停接单（待接单的任务转给其他站）/ close now\n"
    "  staff N                           在岗护理员人数 / caregivers on duty\n"
    "  capacity lunch|dinner N [YYYY-MM-DD]  还能供应的餐数（默认今天）/ meals left\n"
    "  help                              帮助 / this text\n"
    "  quit                              退出 / leave\n"
    "中文命令也可以 (also in Chinese): 列表 接单 拒单 出发 完成 失败 营业 暂停 人数 余量 帮助 "
    "退出\n";

static const char *alias(const char *w)
{
    static const char *const map[][2] = {
        {"列表", "list"},  {"ls", "list"},       {"接单", "accept"}, {"拒单", "reject"},
        {"出发", "go"},    {"完成", "done"},     {"送达", "done"},   {"失败", "fail"},
        {"营业", "open"},  {"开门", "open"},     {"暂停", "close"},  {"关门", "close"},
        {"人数", "staff"}, {"余量", "capacity"}, {"帮助", "help"},   {"?", "help"},
        {"退出", "quit"},  {"exit", "quit"},
    };
    for (size_t i = 0; i < ARRAY_LEN(map); i++)
        if (strcmp(w, map[i][0]) == 0)
            return map[i][1];
    return w;
}

int con_reason_of(const char *w, bool fail)
{
    static const struct {
        const char *word;
        int code;
        bool fail;
    } map[] = {
        {"full", S(REASON_CODE__STATION_FULL), false},
        {"满员", S(REASON_CODE__STATION_FULL), false},
        {"staff", S(REASON_CODE__NO_STAFF), false},
        {"人手不足", S(REASON_CODE__NO_STAFF), false},
        {"area", S(REASON_CODE__OUT_OF_AREA), false},
        {"超出范围", S(REASON_CODE__OUT_OF_AREA), false},
        {"nothome", S(REASON_CODE__RESIDENT_NOT_HOME), true},
        {"不在家", S(REASON_CODE__RESIDENT_NOT_HOME), true},
        {"unwell", S(REASON_CODE__RESIDENT_UNWELL), true},
        {"不适", S(REASON_CODE__RESIDENT_UNWELL), true},
        {"refused", S(REASON_CODE__RESIDENT_REFUSED), true},
        {"拒绝", S(REASON_CODE__RESIDENT_REFUSED), true},
    };
    if (strcasecmp(w, "other") == 0 || strcmp(w, "其他") == 0)
        return S(REASON_CODE__REASON_OTHER);
    for (size_t i = 0; i < ARRAY_LEN(map); i++)
        if (map[i].fail == fail && strcasecmp(w, map[i].word) == 0)
            return map[i].code;
    return 0;
}

/* Splits off the next space-separated word; returns it or NULL at the end. */
static char *next_word(char **p)
{
    char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s)
        return NULL;
    char *w = s;
    while (*s && *s != ' ' && *s != '\t')
        s++;
    if (*s)
        *s++ = '\0';
    *p = s;
    return w;
}

bool con_parse_long(const char *w, long lo, long hi, long *out)
{
    if (!w)
        return false;
    if (*w == '#')
        w++;
    char *end;
    errno = 0;
    long v = strtol(w, &end, 10);
    if (errno || end == w || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static void cmd_list(Console *c)
{
    if (c->opt.json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < c->njobs; i++)
            json_array_append_new(arr, cview_job_json(c->jobs[i].o));
        con_emit(c, json_pack("{s:s, s:o, s:b}", "event", "list", "jobs", arr, "connected",
                              c->state == LINK_UP));
        return;
    }
    if (!c->njobs) {
        con_say(c, "目前没有未完成的任务 / no open jobs%s\n",
                c->state == LINK_UP ? "" : "（未连接 not connected）");
        return;
    }
    con_say(c, "本站未完成的任务 / open jobs (%zu)%s:\n", c->njobs,
            c->state == LINK_UP ? "" : "（未连接，可能不是最新 not connected, may be stale）");
    int64_t now = util_wall_ms();
    for (size_t i = 0; i < c->njobs; i++)
        cview_job_line(stdout, c->jobs[i].o, now);
}

static void cmd_job(Console *c, const char *cmd, char *rest)
{
    long id;
    char *w = next_word(&rest);
    if (!con_parse_long(w, 1, LONG_MAX, &id)) {
        con_usage_error(c, "%s 需要任务编号 / `%s ID` needs a job number, e.g. `%s 12`", cmd, cmd,
                        cmd);
        return;
    }
    Job *j = con_job_find(c, id);
    if (strcmp(cmd, "accept") == 0) {
        con_send_update(c, id, S(JOB_ACTION__ACCEPT), 0, "");
    } else if (strcmp(cmd, "go") == 0) {
        con_send_update(c, id, S(JOB_ACTION__GO_EN_ROUTE), 0, "");
    } else if (strcmp(cmd, "done") == 0) {
        if (!j) {
            con_usage_error(c, "任务 #%ld 不在本屏 / job %ld is not on this screen (see `list`)",
                            id, id);
            return;
        }
        con_send_update(c, id, con_done_action(j->o), 0, "");
    } else { /* reject / fail */
        bool fail = strcmp(cmd, "fail") == 0;
        char *rw = next_word(&rest);
        int reason = rw ? con_reason_of(rw, fail) : 0;
        if (!reason) {
            con_usage_error(c, fail ? "fail ID nothome|unwell|refused|other [备注 note]"
                                    : "reject ID full|staff|area|other [备注 note]");
            return;
        }
        while (*rest == ' ' || *rest == '\t')
            rest++;
        size_t n = strlen(rest);
        if (n > MAX_NOTE || !util_utf8_valid(rest, n)) {
            con_usage_error(c, "备注最多 %d 字节 / the note must be at most %d bytes of UTF-8",
                            MAX_NOTE, MAX_NOTE);
            return;
        }
        con_send_update(c, id, fail ? S(JOB_ACTION__FAIL) : S(JOB_ACTION__REJECT), reason, rest);
    }
}

static void cmd_status(Console *c, const char *cmd, char *rest)
{
    char *w = next_word(&rest);
    long n;
    if (strcmp(cmd, "staff") == 0) {
        if (!con_parse_long(w, 0, 10000, &n)) {
            con_usage_error(c, "staff N: 在岗护理员人数 / caregivers on duty, 0..10000");
            return;
        }
        c->staff = (int)n;
        if (c->open_known)
            con_send_status(c, c->open, 0, 0, NULL);
        else
            con_say(c,
                    "在岗 %d 人，将随 open/close 一起发送 / noted; sent with the next open or "
                    "close\n",
                    c->staff);
    } else if (strcmp(cmd, "open") == 0) {
        if (w && !con_parse_long(w, 0, 10000, &n)) {
            con_usage_error(c, "open [N]: N = 在岗护理员人数 / caregivers on duty, 0..10000");
            return;
        }
        if (w)
            c->staff = (int)n;
        if (c->staff < 0) {
            con_usage_error(c,
                            "请同时告诉系统在岗护理员人数，例如 `open 3`（只送餐的站点写 0）/ say "
                            "how many caregivers are on duty, e.g. `open 3` (0 for meals only): "
                            "the daemon records it with every status");
            return;
        }
        con_send_status(c, true, 0, 0, NULL);
    } else if (strcmp(cmd, "close") == 0) {
        con_send_status(c, false, 0, 0, NULL);
    } else { /* capacity */
        int slot = 0;
        if (w && (strcasecmp(w, "lunch") == 0 || strcmp(w, "午餐") == 0))
            slot = S(MEAL_SLOT__LUNCH);
        else if (w && (strcasecmp(w, "dinner") == 0 || strcmp(w, "晚餐") == 0))
            slot = S(MEAL_SLOT__DINNER);
        char *nw = next_word(&rest), *date = next_word(&rest);
        if (!slot || !con_parse_long(nw, 0, 100000, &n) ||
            (date && (strlen(date) != 10 || date[4] != '-' || date[7] != '-'))) {
            con_usage_error(c, "capacity lunch|dinner N [YYYY-MM-DD]: 还能供应的餐数 / meals left");
            return;
        }
        con_send_status(c, c->open, slot, (int)n, date);
    }
}

static void on_command(Console *c, char *line)
{
    char *rest = line;
    char *w = next_word(&rest);
    if (!w)
        return;
    const char *cmd = alias(w);
    if (strcmp(cmd, "help") == 0) {
        if (c->opt.json)
            con_emit(c, json_pack("{s:s, s:s}", "event", "help", "text", help_text));
        else
            con_say(c, "%s", help_text);
    } else if (strcmp(cmd, "quit") == 0) {
        c->quit = true;
    } else if (strcmp(cmd, "list") == 0) {
        cmd_list(c);
    } else if (strcmp(cmd, "accept") == 0 || strcmp(cmd, "reject") == 0 || strcmp(cmd, "go") == 0 ||
               strcmp(cmd, "done") == 0 || strcmp(cmd, "fail") == 0) {
        cmd_job(c, cmd, rest);
    } else if (strcmp(cmd, "open") == 0 || strcmp(cmd, "close") == 0 || strcmp(cmd, "staff") == 0 ||
               strcmp(cmd, "capacity") == 0) {
        cmd_status(c, cmd, rest);
    } else {
        con_usage_error(c, "不认识的命令 / unknown command \"%s\"; type `help`", w);
    }
}

void con_stdin_read(Console *c)
{
    char buf[1024];
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        c->stdin_open = false;
        if (!c->opt.json) /* scripts keep running on stdin=/dev/null */
            c->quit = true;
        return;
    }
    for (ssize_t i = 0; i < n && !c->quit; i++) {
        char ch = buf[i];
        if (ch == '\n') {
            c->line[c->linelen] = '\0';
            if (c->linelen && c->line[c->linelen - 1] == '\r')
                c->line[c->linelen - 1] = '\0';
            if (c->line_too_long)
                con_usage_error(c, "输入太长 / line too long (max %zu bytes)", sizeof(c->line) - 1);
            else
                on_command(c, c->line);
            c->linelen = 0;
            c->line_too_long = false;
            c->printed = true;
        } else if (c->linelen + 1 < sizeof(c->line)) {
            c->line[c->linelen++] = ch;
        } else {
            c->line_too_long = true;
        }
    }
}
