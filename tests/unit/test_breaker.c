/*
 * test_breaker: the PostgreSQL circuit breaker's state machine (store/breaker.c), the
 * Prometheus histogram (base/metrics.c) and the deadline set (core/deadline.c).
 */
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "base/metrics.h"
#include "common/util.h"
#include "core/deadline.h"
#include "store/breaker.h"
#include "t.h"

static void breaker_trips_probes_and_closes(void)
{
    Breaker b;
    breaker_init(&b, 250);
    T_ASSERT(breaker_allows(&b));
    T_ASSERT(!breaker_observe(&b, false, 1000));
    T_ASSERT(breaker_allows(&b));
    T_ASSERT(!breaker_probe_due(&b, 1000)); /* closed: no probes */
    T_ASSERT(breaker_observe(&b, true, 1000));
    T_EQ_INT(b.state, BREAKER_OPEN);
    T_EQ_INT((int)b.trips, 1);
    T_ASSERT(!breaker_allows(&b));
    T_ASSERT(!breaker_observe(&b, true, 1100)); /* already open: no second trip */
    T_EQ_INT((int)b.trips, 1);
    T_ASSERT(!breaker_probe_due(&b, 1249)); /* not before probe_ms */
    T_ASSERT(breaker_probe_due(&b, 1250));
    T_EQ_INT(b.state, BREAKER_HALF_OPEN);
    T_ASSERT(!breaker_allows(&b));
    T_ASSERT(!breaker_probe_due(&b, 1300)); /* one probe out at a time */
    breaker_probe_result(&b, false, 1400);  /* still stalled */
    T_EQ_INT(b.state, BREAKER_OPEN);
    T_ASSERT(!breaker_probe_due(&b, 1649));
    T_ASSERT(breaker_probe_due(&b, 1650));
    breaker_probe_result(&b, true, 1660); /* it answers */
    T_EQ_INT(b.state, BREAKER_CLOSED);
    T_ASSERT(breaker_allows(&b));
    T_ASSERT(breaker_observe(&b, true, 5000)); /* a new stall is a new trip */
    T_EQ_INT((int)b.trips, 2);
    breaker_success(&b); /* any statement's answer closes it, probe or not */
    T_ASSERT(breaker_allows(&b));
    breaker_probe_result(&b, false, 5100); /* a late failed probe changes nothing */
    T_ASSERT(breaker_allows(&b));
    T_EQ_STR(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
}

static void histogram_renders_cumulative_buckets(void)
{
    MetricsHist h = {0};
    metrics_hist_observe(&h, 0.0005); /* le 0.001 */
    metrics_hist_observe(&h, 0.001);  /* le 0.001: bounds are inclusive */
    metrics_hist_observe(&h, 0.3);    /* le 0.5 */
    metrics_hist_observe(&h, 60);     /* +Inf only */
    metrics_hist_observe(&h, -1);     /* a clock step counts as 0 */
    struct evbuffer *b = evbuffer_new();
    metrics_hist_render(b, "x_seconds", "Test.", NULL, &h);
    metrics_hist_render(b, "y_seconds", NULL, "op=\"a\"", &h);
    evbuffer_add(b, "", 1);
    const char *txt = (const char *)evbuffer_pullup(b, -1);
    T_ASSERT(strstr(txt, "# TYPE x_seconds histogram\n"));
    T_ASSERT(strstr(txt, "x_seconds_bucket{le=\"0.001\"} 3\n"));
    T_ASSERT(strstr(txt, "x_seconds_bucket{le=\"0.25\"} 3\n"));
    T_ASSERT(strstr(txt, "x_seconds_bucket{le=\"0.5\"} 4\n"));
    T_ASSERT(strstr(txt, "x_seconds_bucket{le=\"10\"} 4\n"));
    T_ASSERT(strstr(txt, "x_seconds_bucket{le=\"+Inf\"} 5\n"));
    T_ASSERT(strstr(txt, "x_seconds_count 5\n"));
    T_ASSERT(strstr(txt, "x_seconds_sum 60.301500\n"));
    T_ASSERT(strstr(txt, "y_seconds_bucket{op=\"a\",le=\"+Inf\"} 5\n"));
    T_ASSERT(strstr(txt, "y_seconds_count{op=\"a\"} 5\n"));
    T_ASSERT(!strstr(txt, "# HELP y_seconds"));
    evbuffer_free(b);
}

typedef struct {
    int fired;
    DeadlineItem *other; /* disarmed from inside the callback */
    Deadlines *ds;
    int64_t at_fire;
} Fire;

static void fire_cb(DeadlineItem *it, void *arg)
{
    Fire *f = arg;
    T_ASSERT(!it->armed);
    f->fired++;
    f->at_fire = util_now_ms();
    if (f->other)
        deadline_disarm(f->ds, f->other);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    event_base_loopexit(arg, NULL);
}

static void deadlines_fire_once_in_time(void)
{
    struct event_base *base = event_base_new();
    Deadlines *ds = deadlines_new(base, 10);
    DeadlineItem a = {0}, b = {0}, c = {0}, never = {0};
    Fire fa = {0}, fb = {0}, fc = {0}, fn = {0};
    int64_t t0 = util_now_ms();
    deadline_arm(ds, &a, t0 + 50, fire_cb, &fa);
    deadline_arm(ds, &b, t0 + 100, fire_cb, &fb);
    deadline_arm(ds, &c, t0 + 30, fire_cb, &fc);
    fc = (Fire){.other = &b, .ds = ds}; /* c disarms b when it fires */
    deadline_arm(ds, &never, t0 + 60000, fire_cb, &fn);
    T_EQ_INT((int)deadlines_armed(ds), 4);
    deadline_disarm(ds, &never);
    deadline_disarm(ds, &never); /* twice is harmless */
    struct event *stop = evtimer_new(base, stop_cb, base);
    util_timer_ms(stop, 300);
    event_base_dispatch(base);
    T_EQ_INT(fa.fired, 1);
    T_EQ_INT(fc.fired, 1);
    T_EQ_INT(fb.fired, 0);
    T_EQ_INT(fn.fired, 0);
    T_ASSERT(fa.at_fire >= t0 + 50);
    T_EQ_INT((int)deadlines_armed(ds), 0);
    event_free(stop);
    deadlines_free(ds);
    event_base_free(base);
}

static const TCase cases[] = {
    {"breaker_trips_probes_and_closes", breaker_trips_probes_and_closes, 0},
    {"breaker_histogram_renders_cumulative_buckets", histogram_renders_cumulative_buckets, 0},
    {"breaker_deadlines_fire_once_in_time", deadlines_fire_once_in_time, 0},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
