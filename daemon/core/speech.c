/*
 * speech: sentence templates. Times are spoken the way people say them on the phone
 * ("11点半", "12点"), because text-to-speech reads "11:30" digit by digit.
 */
#include "core/speech.h"

#include <stdio.h>
#include <string.h>

#include "base/cal.h"

#define S(x) CARELINE__V1__##x

static void say_time(int minute, char *out, size_t n)
{
    int h = minute / 60 % 24, m = minute % 60;
    if (m == 0)
        snprintf(out, n, "%d点", h);
    else if (m == 30)
        snprintf(out, n, "%d点半", h);
    else
        snprintf(out, n, "%d点%d分", h, m);
}

static void say_day(CalDay day, CalDay today, char *out, size_t n)
{
    int mon, mday;
    if (day == today)
        snprintf(out, n, "今天");
    else if (day == today + 1)
        snprintf(out, n, "明天");
    else if (day == today + 2)
        snprintf(out, n, "后天");
    else {
        cal_month_day(day, &mon, &mday);
        snprintf(out, n, "%d月%d日", mon, mday);
    }
}

static const char *care_name(Careline__V1__CareSubtype t)
{
    switch (t) {
    case S(CARE_SUBTYPE__BATHING):
        return "助浴";
    case S(CARE_SUBTYPE__CLEANING):
        return "保洁";
    case S(CARE_SUBTYPE__COMPANIONSHIP):
        return "陪伴";
    case S(CARE_SUBTYPE__MEDICAL_ESCORT):
        return "陪同就医";
    default:
        return "上门服务";
    }
}

static const char *meal_name(Careline__V1__MealSlot s)
{
    return s == S(MEAL_SLOT__DINNER) ? "晚餐" : "午餐";
}

static void say_window(const SpeechArgs *a, char *out, size_t n)
{
    int m1, m2;
    CalDay today = cal_day_of(a->now_ms, NULL);
    CalDay day = cal_day_of(a->window_start_ms, &m1);
    cal_day_of(a->window_end_ms, &m2);
    char d[32], t1[32], t2[32];
    say_day(day, today, d, sizeof(d));
    say_time(m1, t1, sizeof(t1));
    say_time(m2, t2, sizeof(t2));
    snprintf(out, n, "%s%s到%s", d, t1, t2);
}

static void what(const SpeechArgs *a, char *out, size_t n)
{
    if (a->kind == S(SERVICE_KIND__MEAL_DELIVERY))
        snprintf(out, n, "%s", meal_name(a->slot));
    else
        snprintf(out, n, "%s", care_name(a->subtype));
}

void speech_request(const SpeechArgs *a, char *out, size_t n)
{
    char win[128] = "", w[32];
    const char *st = a->station_name && *a->station_name ? a->station_name : "服务站";
    what(a, w, sizeof(w));
    if (a->window_start_ms && a->window_end_ms)
        say_window(a, win, sizeof(win));
    bool meal = a->kind == S(SERVICE_KIND__MEAL_DELIVERY);
    switch (a->state) {
    case S(REQUEST_STATE__QUEUED):
        if (meal)
            snprintf(out, n, "好的，%s会在%s把%s送到您家。", st, win, w);
        else
            snprintf(out, n, "好的，%s会在%s上门为您%s。", st, win, w);
        return;
    case S(REQUEST_STATE__ACCEPTED):
        snprintf(out, n, "%s已经接单，会在%s%s。", st, win, meal ? "送到" : "上门");
        return;
    case S(REQUEST_STATE__EN_ROUTE):
        snprintf(out, n, "%s的工作人员已经出发，马上就到，请您在家等候。", st);
        return;
    case S(REQUEST_STATE__DELIVERED):
        snprintf(out, n, "您的%s已经送到了。", w);
        return;
    case S(REQUEST_STATE__DONE):
        snprintf(out, n, "您的%s已经完成了。", w);
        return;
    case S(REQUEST_STATE__FAILED):
        snprintf(out, n, "这次%s没有完成，工作人员会和您联系。", w);
        return;
    case S(REQUEST_STATE__CANCELLED):
        snprintf(out, n, "您的%s已经取消了。", w);
        return;
    case S(REQUEST_STATE__RECEIVED):
        snprintf(out, n, "您的需求已经登记，正在为您安排服务站，请稍后再查询。");
        return;
    case S(REQUEST_STATE__NOT_REGISTERED):
        snprintf(out, n,
                 "您的电话还没有登记。我们已经记下您的来电，社区工作人员会联系您办理登记。");
        return;
    case S(REQUEST_STATE__WAITLISTED):
        snprintf(
            out, n,
            "附近服务站的名额已经满了。您的需求已经登记，%s有名额会马上为您安排，并打电话告诉您。",
            a->priority ? "您是优先照顾的老人，" : "");
        return;
    case S(REQUEST_STATE__DEAD_LETTER):
        snprintf(out, n, "暂时没有服务站能接您的单，民政局工作人员会尽快联系您。");
        return;
    case S(REQUEST_STATE__REJECTED):
        break;
    default:
        snprintf(out, n, "您的需求已经收到。");
        return;
    }
    switch (a->reason) {
    case S(REASON_CODE__SLOT_PASSED):
        snprintf(out, n, "今天的%s送餐时间已经过了，您可以预订明天的%s。", w, w);
        break;
    case S(REASON_CODE__DATE_TOO_FAR):
        snprintf(out, n, "送餐只能预订%d天以内的，请您到时候再来电。", a->booking_days);
        break;
    case S(REASON_CODE__STATION_CLOSED):
        snprintf(out, n, "附近的服务站这个时间不开门，请您换个时间再来电。");
        break;
    default:
        snprintf(
            out, n,
            "很抱歉，您家附近暂时没有能提供%s的服务站。我们已经记下您的需求，工作人员会和您联系。",
            w);
        break;
    }
}

void speech_cancel(bool cancelled, Careline__V1__RequestState state, char *out, size_t n)
{
    if (cancelled)
        snprintf(out, n, "好的，已经为您取消了。");
    else if (state == S(REQUEST_STATE__DELIVERED) || state == S(REQUEST_STATE__DONE))
        snprintf(out, n, "这次服务已经完成了，不能再取消。");
    else if (state == S(REQUEST_STATE__CANCELLED))
        snprintf(out, n, "这个预约之前已经取消了。");
    else
        snprintf(out, n, "这个预约已经结束了，不能再取消。");
}
