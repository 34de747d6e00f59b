/*
 * lg_report: loadgen's results: throughput, outcomes and latency percentiles, as a table
 * for people or as KEY=VALUE lines for scripts (tests/bench read those).
 */
#include "lg_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void print_hist(FILE *f, const char *label, const LgHist *h)
{
    fprintf(f, "%-22s n=%llu p50=%.3f p90=%.3f p99=%.3f p99.9=%.3f max=%.3f mean=%.3f ms\n", label,
            (unsigned long long)lg_hist_count(h), ms(lg_hist_quantile(h, 0.5)),
            ms(lg_hist_quantile(h, 0.9)), ms(lg_hist_quantile(h, 0.99)),
            ms(lg_hist_quantile(h, 0.999)), ms(lg_hist_max(h)), lg_hist_mean(h) / 1e6);
}

static void kv_hist(FILE *f, const char *p, const LgHist *h)
{
    fprintf(f,
            "%s_n=%llu\n%s_p50_ms=%.3f\n%s_p90_ms=%.3f\n%s_p99_ms=%.3f\n%s_p999_ms=%.3f\n"
            "%s_max_ms=%.3f\n",
            p, (unsigned long long)lg_hist_count(h), p, ms(lg_hist_quantile(h, 0.5)), p,
            ms(lg_hist_quantile(h, 0.9)), p, ms(lg_hist_quantile(h, 0.99)), p,
            ms(lg_hist_quantile(h, 0.999)), p, ms(lg_hist_max(h)));
}

static const char *enum_name(const ProtobufCEnumDescriptor *d, int v)
{
    const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value(d, v);
    return e ? e->name : "?";
}

void lg_report(Lg *lg, FILE *f, bool kv)
{
    double secs = (double)(lg->t_end - lg->t_warm) / 1e9;
    if (secs <= 0)
        secs = 1e-9;
    double tput = (double)lg->replies_measured / secs;
    uint64_t noreply = lg_gw_inflight(lg);
    uint64_t errs = 0;
    for (int i = 0; i < 40; i++)
        errs += lg->errors[i];
    /* the generator fell behind its schedule by more than 100 ms worth of requests */
    bool lagged = !lg->o.closed && (double)lg->max_lag > lg->o.rate * 0.1 + 1;
    if (kv) {
        fprintf(f, "mode=%s\noffered_rate=%.0f\nconns=%d\nwindow=%d\nmeasured_s=%.3f\n",
                lg->o.closed ? "closed" : "open", lg->o.closed ? 0.0 : lg->o.rate, lg->ngw,
                lg->o.window, secs);
        fprintf(f,
                "issued=%llu\nreplies=%llu\nthroughput=%.0f\nerrors=%llu\nno_reply=%llu\n"
                "lost=%llu\ngen_lagged=%d\nmax_lag=%llu\n",
                (unsigned long long)lg->issued, (unsigned long long)lg->replies, tput,
                (unsigned long long)errs, (unsigned long long)noreply, (unsigned long long)lg->lost,
                lagged, (unsigned long long)lg->max_lag);
        for (int i = 1; i < 16; i++)
            if (lg->states[i])
                fprintf(f, "state_%s=%llu\n",
                        enum_name(&careline__v1__request_state__descriptor, i),
                        (unsigned long long)lg->states[i]);
        for (int i = 0; i < 40; i++)
            if (lg->errors[i])
                fprintf(f, "error_%s=%llu\n", enum_name(&careline__v1__error_code__descriptor, i),
                        (unsigned long long)lg->errors[i]);
        kv_hist(f, "submit", lg->h_submit);
        kv_hist(f, "push", lg->h_push);
        fprintf(f,
                "consoles=%d\nconsoles_ready=%d\nconsoles_closed=%d\nauth_failed=%d\n"
                "offers=%llu\noffers_matched=%llu\naccepted=%llu\ndelivered=%llu\n"
                "updates_ok=%llu\nupdates_err=%llu\n",
                lg->nconn - lg->ngw, lg->con_ready, lg->con_dead, lg->auth_failed,
                (unsigned long long)lg->offers, (unsigned long long)lg->offers_matched,
                (unsigned long long)lg->accepted, (unsigned long long)lg->delivered,
                (unsigned long long)lg->upd_ok, (unsigned long long)lg->upd_err);
        return;
    }
    if (lg->o.closed)
        fprintf(f, "loadgen: closed loop, %d connections x window %d, %.1f s measured\n", lg->ngw,
                lg->o.window, secs);
    else
        fprintf(f,
                "loadgen: open loop at %.0f req/s offered, %d connections x window %d, %.1f s "
                "measured%s\n",
                lg->o.rate, lg->ngw, lg->o.window, secs,
                lagged ? " (GENERATOR FELL BEHIND: every window was full)" : "");
    fprintf(f, "requests   issued %llu, replies %llu, errors %llu, no reply %llu, lost %llu\n",
            (unsigned long long)lg->issued, (unsigned long long)lg->replies,
            (unsigned long long)errs, (unsigned long long)noreply, (unsigned long long)lg->lost);
    fprintf(f, "throughput %.0f replies/s in the measured window\n", tput);
    fprintf(f, "states    ");
    for (int i = 1; i < 16; i++)
        if (lg->states[i])
            fprintf(f, " %s=%llu", enum_name(&careline__v1__request_state__descriptor, i),
                    (unsigned long long)lg->states[i]);
    fprintf(f, "\n");
    if (errs) {
        fprintf(f, "errors    ");
        for (int i = 0; i < 40; i++)
            if (lg->errors[i])
                fprintf(f, " %s=%llu", enum_name(&careline__v1__error_code__descriptor, i),
                        (unsigned long long)lg->errors[i]);
        fprintf(f, "\n");
    }
    print_hist(f, "submit -> reply", lg->h_submit);
    if (lg->nconn > lg->ngw) {
        print_hist(f, "QUEUED -> JobOffer", lg->h_push);
        fprintf(f,
                "consoles   %d of %d ready (%d closed, %d refused); offers %llu (%llu timed, "
                "%llu before the reply), accepted %llu, delivered %llu, updates ok %llu, "
                "refused %llu\n",
                lg->con_ready, lg->nconn - lg->ngw, lg->con_dead, lg->auth_failed,
                (unsigned long long)lg->offers, (unsigned long long)lg->offers_matched,
                (unsigned long long)lg->offers_first, (unsigned long long)lg->accepted,
                (unsigned long long)lg->delivered, (unsigned long long)lg->upd_ok,
                (unsigned long long)lg->upd_err);
    }
}
