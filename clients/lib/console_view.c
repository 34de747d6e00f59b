/*
 * console_view: names, labels and layouts for station consoles. Names come from small
 * tables rather than the protobuf descriptors so the JSON stream's vocabulary is written
 * down here (and stays put if an enum value is ever renamed in the proto).
 */
#include "console_view.h"

#include <string.h>
#include <time.h>

#include "common/util.h"

#define S(x)                CARELINE__V1__##x
#define COUNTY_UTC_OFFSET_S (8 * 3600) /* Asia/Shanghai: UTC+8 all year, no DST */

static const char *pick(const char *const *names, size_t n, int v)
{
    if (v < 0 || (size_t)v >= n || !names[v])
        return "unknown";
    return names[v];
}

const char *cview_state_name(int state)
{
    static const char *const names[] = {"",     "offered",  "accepted", "en_route",  "delivered",
                                        "done", "rejected", "failed",   "cancelled", "expired"};
    return pick(names, ARRAY_LEN(names), state);
}

const char *cview_kind_name(int kind)
{
    static const char *const names[] = {"", "meal_delivery", "home_care"};
    return pick(names, ARRAY_LEN(names), kind);
}

const char *cview_slot_name(int slot)
{
    static const char *const names[] = {"", "lunch", "dinner"};
    return pick(names, ARRAY_LEN(names), slot);
}

const char *cview_care_name(int subtype)
{
    static const char *const names[] = {
        "", "bathing", "cleaning", "companionship", "medical_escort", "other"};
    return pick(names, ARRAY_LEN(names), subtype);
}

const char *cview_priority_name(int flag)
{
    static const char *const names[] = {"", "lives_alone", "disabled", "aged_80_plus"};
    return pick(names, ARRAY_LEN(names), flag);
}

const char *cview_action_name(int action)
{
    static const char *const names[] = {"",        "accept",   "reject", "go_en_route",
                                        "deliver", "complete", "fail"};
    return pick(names, ARRAY_LEN(names), action);
}

const char *cview_error_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&careline__v1__error_code__descriptor, code);
    return v ? v->name : "UNKNOWN";
}

const char *cview_state_label(int state)
{
    static const char *const labels[] = {"",
                                         "待接单 offered",
                                         "已接单 accepted",
                                         "已出发 en route",
                                         "已送达 delivered",
                                         "已完成 done",
                                         "已拒单 rejected",
                                         "未完成 failed",
                                         "已取消 cancelled",
                                         "已超时，改派他站 expired"};
    return pick(labels, ARRAY_LEN(labels), state);
}

bool cview_state_final(int state)
{
    return state != S(JOB_STATE__OFFERED) && state != S(JOB_STATE__JOB_ACCEPTED) &&
           state != S(JOB_STATE__JOB_EN_ROUTE);
}

bool cview_local_tm(int64_t ms, struct tm *out)
{
    if (ms == 0)
        return false;
    /* floor division, so times before 1970 would still land on the right second */
    int64_t secs = (ms >= 0 ? ms : ms - 999) / 1000;
    time_t t = (time_t)(secs + COUNTY_UTC_OFFSET_S);
    return gmtime_r(&t, out) != NULL;
}

static json_t *str_or_null(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

json_t *cview_job_json(const JobOffer *o)
{
    json_t *pri = json_array();
    for (size_t i = 0; i < o->n_priority; i++)
        json_array_append_new(pri, json_string(cview_priority_name(o->priority[i])));
    json_t *j = json_object();
    json_object_set_new(j, "job_id", json_integer(o->job_id));
    json_object_set_new(j, "request_id", json_integer(o->request_id));
    json_object_set_new(j, "state", json_string(cview_state_name(o->state)));
    json_object_set_new(j, "attempt", json_integer(o->attempt));
    json_object_set_new(j, "kind", json_string(cview_kind_name(o->kind)));
    json_object_set_new(j, "meal_slot",
                        str_or_null(o->meal_slot ? cview_slot_name(o->meal_slot) : NULL));
    json_object_set_new(j, "service_date", str_or_null(o->service_date));
    json_object_set_new(j, "care_subtype",
                        str_or_null(o->care_subtype ? cview_care_name(o->care_subtype) : NULL));
    json_object_set_new(j, "resident", json_string(o->resident_name_masked));
    json_object_set_new(j, "village", json_string(o->village_name));
    json_object_set_new(j, "address", json_string(o->address));
    json_object_set_new(j, "lat", json_real(o->lat));
    json_object_set_new(j, "lon", json_real(o->lon));
    json_object_set_new(j, "priority", pri);
    json_object_set_new(j, "note", json_string(o->note));
    json_object_set_new(j, "window_start_ms", json_integer(o->window_start_ms));
    json_object_set_new(j, "window_end_ms", json_integer(o->window_end_ms));
    json_object_set_new(j, "offer_expires_at_ms", json_integer(o->offer_expires_at_ms));
    json_object_set_new(j, "travel_minutes", json_integer(o->travel_minutes));
    if (o->resident_phone && o->resident_phone[0])
        json_object_set_new(j, "resident_phone", json_string(o->resident_phone));
    return j;
}

void cview_need(const JobOffer *o, char *out, size_t n)
{
    if (o->kind == S(SERVICE_KIND__MEAL_DELIVERY)) {
        const char *slot = o->meal_slot == S(MEAL_SLOT__DINNER)  ? "晚餐送餐 dinner delivery"
                           : o->meal_slot == S(MEAL_SLOT__LUNCH) ? "午餐送餐 lunch delivery"
                                                                 : "送餐 meal delivery";
        snprintf(out, n, "%s %s", slot, o->service_date);
        return;
    }
    static const char *const care[] = {"上门服务 home care",      "上门助浴 bathing",
                                       "上门保洁 cleaning",       "上门陪伴 companionship",
                                       "陪同就医 medical escort", "上门服务（其他）other care"};
    size_t sub = (size_t)o->care_subtype < ARRAY_LEN(care) ? (size_t)o->care_subtype : 0;
    const char *what =
        o->kind == S(SERVICE_KIND__HOME_CARE) ? care[sub] : "未知服务 unknown service";
    snprintf(out, n, "%s %s", what, o->service_date);
}

static void priority_words(const JobOffer *o, char *out, size_t n)
{
    static const char *const zh[] = {"", "独居 lives alone", "失能 disabled", "高龄 80+"};
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < o->n_priority && len < n; i++) {
        int f = o->priority[i];
        const char *w = f > 0 && (size_t)f < ARRAY_LEN(zh) ? zh[f] : "?";
        len += (size_t)snprintf(out + len, n - len, "%s%s", len ? " · " : "", w);
    }
}

static void window_words(const JobOffer *o, char *out, size_t n)
{
    struct tm a, b;
    char as[24], bs[16];
    if (!cview_local_tm(o->window_start_ms, &a) || !cview_local_tm(o->window_end_ms, &b)) {
        snprintf(out, n, "未定 not set");
        return;
    }
    strftime(as, sizeof(as), "%m-%d %H:%M", &a);
    strftime(bs, sizeof(bs), "%H:%M", &b);
    snprintf(out, n, "%s–%s", as, bs);
}

static void left_words(int64_t ms_left, char *out, size_t n)
{
    if (ms_left <= 0) {
        snprintf(out, n, "已过期 passed");
        return;
    }
    long s = (long)(ms_left / 1000);
    if (s >= 3600)
        snprintf(out, n, "还剩 %ld 小时 %ld 分 / %ldh%02ldm left", s / 3600, s % 3600 / 60,
                 s / 3600, s % 3600 / 60);
    else
        snprintf(out, n, "还剩 %ld 分 %ld 秒 / %ldm%02lds left", s / 60, s % 60, s / 60, s % 60);
}

void cview_job_print(FILE *f, const JobOffer *o, const char *headline, int64_t now_ms)
{
    char need[128], pri[128], win[64];
    cview_need(o, need, sizeof(need));
    priority_words(o, pri, sizeof(pri));
    window_words(o, win, sizeof(win));
    fprintf(f, "%s 任务 job #%lld  [%s]  (请求 request %lld, 第 %u 站 attempt %u)\n", headline,
            (long long)o->job_id, cview_state_label(o->state), (long long)o->request_id, o->attempt,
            o->attempt);
    fprintf(f, "    服务 need     : %s\n", need);
    fprintf(f, "    老人 resident : %s%s%s%s\n", o->resident_name_masked, pri[0] ? "  【" : "", pri,
            pri[0] ? "】" : "");
    fprintf(f, "    地址 address  : %s · %s\n", o->village_name, o->address);
    fprintf(f, "    时段 window   : %s（北京时间 China time）  路程 travel %u 分钟 min\n", win,
            o->travel_minutes);
    if (o->state == S(JOB_STATE__OFFERED) && o->offer_expires_at_ms) {
        char at[32] = "", left[96];
        struct tm tm;
        if (cview_local_tm(o->offer_expires_at_ms, &tm))
            strftime(at, sizeof(at), "%H:%M:%S", &tm);
        left_words(o->offer_expires_at_ms - now_ms, left, sizeof(left));
        fprintf(f, "    接单截止 accept by: %s（%s）\n", at, left);
    }
    if (o->resident_phone && o->resident_phone[0])
        fprintf(f, "    电话 phone    : %s\n", o->resident_phone);
    if (o->note && o->note[0])
        fprintf(f, "    备注 note     : %s\n", o->note);
}

void cview_job_line(FILE *f, const JobOffer *o, int64_t now_ms)
{
    char need[128], win[64], pri[128];
    cview_need(o, need, sizeof(need));
    window_words(o, win, sizeof(win));
    priority_words(o, pri, sizeof(pri));
    fprintf(f, "  #%-6lld %-16s %s | %s %s | %s%s%s", (long long)o->job_id,
            cview_state_label(o->state), need, o->resident_name_masked, o->village_name, win,
            pri[0] ? " | " : "", pri);
    if (o->state == S(JOB_STATE__OFFERED) && o->offer_expires_at_ms) {
        char left[96];
        left_words(o->offer_expires_at_ms - now_ms, left, sizeof(left));
        fprintf(f, " | 接单 accept: %s", left);
    }
    fputc('\n', f);
}
