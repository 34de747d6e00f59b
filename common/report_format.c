/*
 * report_format: the bureau's CoverageReport rendered as JSON or CSV. The daemon's HTTP
 * endpoints and the `bureau` client both call it, so both print the same shapes.
 */
#include "common/report_format.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define SCOPE(x) CARELINE__V1__COVERAGE_SCOPE__SCOPE_##x

static json_t *fig_json(const Careline__V1__CoverageFigure *f, double target)
{
    json_t *o = json_object();
    if (!f)
        return o;
    json_object_set_new(o, "villages", json_integer(f->villages));
    json_object_set_new(o, "villages_covered", json_integer(f->villages_covered));
    json_object_set_new(o, "rate", json_real(f->rate));
    json_object_set_new(o, "elderly", json_integer((json_int_t)f->elderly));
    json_object_set_new(o, "elderly_covered", json_integer((json_int_t)f->elderly_covered));
    json_object_set_new(o, "rate_elderly", json_real(f->rate_elderly));
    json_object_set_new(o, "approx_villages", json_integer(f->approx_villages));
    if (target > 0) {
        json_object_set_new(o, "target", json_real(target));
        json_object_set_new(o, "met", json_boolean(f->rate >= target));
    }
    return o;
}

static json_t *opt_minutes(double m)
{
    return m < 0 ? json_null() : json_real(m);
}

char *report_json(const Careline__V1__CoverageReport *r, Careline__V1__CoverageScope scope,
                  size_t *len)
{
    json_t *o = json_object();
    json_object_set_new(o, "as_of", json_string(r->as_of ? r->as_of : ""));
    json_object_set_new(o, "scope_code", json_string(r->scope_code ? r->scope_code : ""));
    if (r->scope_name && r->scope_name[0])
        json_object_set_new(o, "scope_name", json_string(r->scope_name));
    json_object_set_new(o, "service_circle_minutes", json_integer(r->service_circle_minutes));
    json_object_set_new(o, "target", json_real(r->target));
    if (r->inputs_version && r->inputs_version[0])
        json_object_set_new(o, "inputs_version", json_string(r->inputs_version));
    if (r->from_date && r->from_date[0]) {
        json_object_set_new(o, "from", json_string(r->from_date));
        json_object_set_new(o, "to", json_string(r->to_date ? r->to_date : ""));
    }
    if (r->snapshot_day && r->snapshot_day[0])
        json_object_set_new(o, "snapshot_day", json_string(r->snapshot_day));
    if (r->county)
        json_object_set_new(o, "county", fig_json(r->county, r->target));
    if (r->n_indicators) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_indicators; i++) {
            const Careline__V1__Indicator *in = r->indicators[i];
            json_t *x = json_object();
            json_object_set_new(x, "key", json_string(in->key));
            json_object_set_new(x, "name_zh", json_string(in->name_zh));
            json_object_set_new(x, "value", json_real(in->value));
            json_object_set_new(x, "target", json_real(in->target));
            json_object_set_new(x, "met", json_boolean(in->met));
            json_array_append_new(a, x);
        }
        json_object_set_new(o, "indicators", a);
    }
    if (r->n_towns || scope == SCOPE(TOWNS)) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_towns; i++) {
            json_t *x = fig_json(r->towns[i]->figure, r->target);
            json_object_set_new(x, "code", json_string(r->towns[i]->code));
            json_object_set_new(x, "name", json_string(r->towns[i]->name));
            json_array_append_new(a, x);
        }
        json_object_set_new(o, "towns", a);
    }
    if (r->n_villages || scope == SCOPE(VILLAGES)) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_villages; i++) {
            const Careline__V1__VillageCoverage *v = r->villages[i];
            json_t *x = json_object();
            json_object_set_new(x, "code", json_string(v->code));
            json_object_set_new(x, "name", json_string(v->name));
            json_object_set_new(x, "town_code", json_string(v->town_code));
            json_object_set_new(x, "covered", json_boolean(v->covered));
            json_object_set_new(x, "station_id",
                                v->nearest_station_id ? json_integer(v->nearest_station_id)
                                                      : json_null());
            json_object_set_new(x, "minutes", opt_minutes(v->nearest_minutes));
            json_object_set_new(x, "approximate_location", json_boolean(v->approximate_location));
            json_object_set_new(x, "elderly", json_integer(v->elderly));
            json_array_append_new(a, x);
        }
        json_object_set_new(o, "villages", a);
    }
    if (r->n_history || scope == SCOPE(HISTORY)) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_history; i++) {
            const Careline__V1__CoverageSnapshot *h = r->history[i];
            json_t *x = fig_json(h->figure, h->target);
            json_object_set_new(x, "day", json_string(h->day));
            json_object_set_new(x, "scope", json_string(h->scope));
            json_object_set_new(x, "inputs_version", json_string(h->inputs_version));
            json_array_append_new(a, x);
        }
        json_object_set_new(o, "history", a);
    }
    if (scope == SCOPE(PLAN)) {
        json_t *p = json_object();
        json_object_set_new(p, "covered_before", json_integer(r->plan_covered_before));
        json_object_set_new(p, "need", json_integer(r->plan_need));
        json_object_set_new(p, "reached", json_boolean(r->plan_reached));
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_plan; i++) {
            const Careline__V1__PlanStep *st = r->plan[i];
            json_t *x = json_object();
            json_object_set_new(x, "step", json_integer((json_int_t)i + 1));
            json_object_set_new(x, "village_code", json_string(st->village_code));
            json_object_set_new(x, "name", json_string(st->name));
            json_object_set_new(x, "town_code", json_string(st->town_code));
            json_object_set_new(x, "lat", json_real(st->lat));
            json_object_set_new(x, "lon", json_real(st->lon));
            json_object_set_new(x, "newly_covered", json_integer(st->newly_covered));
            json_object_set_new(x, "covered_after", json_integer(st->covered_after));
            json_object_set_new(x, "rate_after", json_real(st->rate_after));
            json_array_append_new(a, x);
        }
        json_object_set_new(p, "steps", a);
        json_object_set_new(o, "plan", p);
    }
    if (r->n_realized || scope == SCOPE(REALIZED)) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_realized; i++) {
            const Careline__V1__RealizedRow *w = r->realized[i];
            json_t *x = json_object();
            json_object_set_new(x, "scope", json_string(w->scope));
            json_object_set_new(x, "key", json_string(w->key));
            json_object_set_new(x, "name", json_string(w->name));
            json_object_set_new(x, "kind", json_string(w->kind));
            const struct {
                const char *k;
                uint32_t v;
            } n[] = {{"received", w->received},           {"queued", w->queued},
                     {"delivered", w->delivered},         {"on_time", w->on_time},
                     {"rejected", w->rejected},           {"waitlisted", w->waitlisted},
                     {"dead_lettered", w->dead_lettered}, {"not_registered", w->not_registered},
                     {"cancelled", w->cancelled},         {"failed", w->failed}};
            for (size_t k = 0; k < ARRAY_LEN(n); k++)
                json_object_set_new(x, n[k].k, json_integer(n[k].v));
            json_object_set_new(x, "median_minutes", opt_minutes(w->median_minutes));
            json_object_set_new(x, "p90_minutes", opt_minutes(w->p90_minutes));
            json_array_append_new(a, x);
        }
        json_object_set_new(o, "realized", a);
    }
    if (r->n_unmet || scope == SCOPE(UNMET)) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_unmet; i++) {
            const Careline__V1__UnmetRow *w = r->unmet[i];
            json_t *x = json_object();
            json_object_set_new(x, "scope", json_string(w->scope));
            json_object_set_new(x, "key", json_string(w->key));
            json_object_set_new(x, "name", json_string(w->name));
            const struct {
                const char *k;
                uint32_t v;
            } n[] = {{"followups", w->followups},
                     {"open", w->open},
                     {"contacted", w->contacted},
                     {"registered", w->registered},
                     {"declined", w->declined},
                     {"calls", w->calls},
                     {"registered_residents", w->registered_residents}};
            for (size_t k = 0; k < ARRAY_LEN(n); k++)
                json_object_set_new(x, n[k].k, json_integer(n[k].v));
            json_object_set_new(x, "median_hours_to_contact",
                                opt_minutes(w->median_hours_to_contact));
            json_array_append_new(a, x);
        }
        json_object_set_new(o, "unmet", a);
    }
    return report_json_line(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15), len);
}

void report_csv_field(FILE *f, const char *s)
{
    if (!s)
        s = "";
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_fig(FILE *f, const Careline__V1__CoverageFigure *g, double target)
{
    static const Careline__V1__CoverageFigure zero = CARELINE__V1__COVERAGE_FIGURE__INIT;
    if (!g)
        g = &zero;
    fprintf(f, ",%u,%u,%.10g,%llu,%llu,%.10g,%u,%.10g,%s", g->villages, g->villages_covered,
            g->rate, (unsigned long long)g->elderly, (unsigned long long)g->elderly_covered,
            g->rate_elderly, g->approx_villages, target, g->rate >= target ? "true" : "false");
}

#define FIG_HEADER                                                                                 \
    "villages,villages_covered,rate,elderly,elderly_covered,rate_elderly,approx_villages,"         \
    "target,met"

static void csv_minutes(FILE *f, double m)
{
    if (m >= 0 && isfinite(m))
        fprintf(f, ",%.2f", m);
    else
        fputs(",", f);
}

char *report_csv(const Careline__V1__CoverageReport *r, Careline__V1__CoverageScope scope,
                 size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    ASSERT(f);
    switch (scope) {
    case SCOPE(TOWNS):
    case SCOPE(SNAPSHOT):
        fputs("scope,code,name," FIG_HEADER "\n", f);
        fputs("county,", f);
        report_csv_field(f, r->scope_code);
        fputc(',', f);
        report_csv_field(f, r->scope_name);
        csv_fig(f, r->county, r->target);
        fputc('\n', f);
        for (size_t i = 0; i < r->n_towns; i++) {
            fputs("town,", f);
            report_csv_field(f, r->towns[i]->code);
            fputc(',', f);
            report_csv_field(f, r->towns[i]->name);
            csv_fig(f, r->towns[i]->figure, r->target);
            fputc('\n', f);
        }
        break;
    case SCOPE(VILLAGES):
        fputs("code,name,town_code,covered,station_id,minutes,approximate_location,elderly\n", f);
        for (size_t i = 0; i < r->n_villages; i++) {
            const Careline__V1__VillageCoverage *v = r->villages[i];
            report_csv_field(f, v->code);
            fputc(',', f);
            report_csv_field(f, v->name);
            fprintf(f, ",%s,%s,", v->town_code, v->covered ? "true" : "false");
            if (v->nearest_station_id)
                fprintf(f, "%lld", (long long)v->nearest_station_id);
            csv_minutes(f, v->nearest_minutes);
            fprintf(f, ",%s,%u\n", v->approximate_location ? "true" : "false", v->elderly);
        }
        break;
    case SCOPE(HISTORY):
        fputs("day,scope," FIG_HEADER ",inputs_version\n", f);
        for (size_t i = 0; i < r->n_history; i++) {
            const Careline__V1__CoverageSnapshot *h = r->history[i];
            fprintf(f, "%s,%s", h->day, h->scope);
            csv_fig(f, h->figure, h->target);
            fputc(',', f);
            report_csv_field(f, h->inputs_version);
            fputc('\n', f);
        }
        break;
    case SCOPE(PLAN):
        fputs("step,village_code,name,town_code,lat,lon,newly_covered,covered_after,"
              "rate_after\n",
              f);
        for (size_t i = 0; i < r->n_plan; i++) {
            const Careline__V1__PlanStep *st = r->plan[i];
            fprintf(f, "%zu,%s,", i + 1, st->village_code);
            report_csv_field(f, st->name);
            fprintf(f, ",%s,%.7f,%.7f,%u,%u,%.10g\n", st->town_code, st->lat, st->lon,
                    st->newly_covered, st->covered_after, st->rate_after);
        }
        break;
    case SCOPE(REALIZED):
        fputs("scope,key,name,kind,received,queued,delivered,on_time,rejected,waitlisted,"
              "dead_lettered,not_registered,cancelled,failed,median_minutes,p90_minutes\n",
              f);
        for (size_t i = 0; i < r->n_realized; i++) {
            const Careline__V1__RealizedRow *w = r->realized[i];
            fprintf(f, "%s,", w->scope);
            report_csv_field(f, w->key);
            fputc(',', f);
            report_csv_field(f, w->name);
            fprintf(f, ",%s,%u,%u,%u,%u,%u,%u,%u,%u,%u,%u", w->kind, w->received, w->queued,
                    w->delivered, w->on_time, w->rejected, w->waitlisted, w->dead_lettered,
                    w->not_registered, w->cancelled, w->failed);
            csv_minutes(f, w->median_minutes);
            csv_minutes(f, w->p90_minutes);
            fputc('\n', f);
        }
        break;
    case SCOPE(UNMET):
        fputs("scope,key,name,followups,open,contacted,registered,declined,calls,"
              "registered_residents,median_hours_to_contact\n",
              f);
        for (size_t i = 0; i < r->n_unmet; i++) {
            const Careline__V1__UnmetRow *w = r->unmet[i];
            fprintf(f, "%s,", w->scope);
            report_csv_field(f, w->key);
            fputc(',', f);
            report_csv_field(f, w->name);
            fprintf(f, ",%u,%u,%u,%u,%u,%u,%u", w->followups, w->open, w->contacted, w->registered,
                    w->declined, w->calls, w->registered_residents);
            csv_minutes(f, w->median_hours_to_contact);
            fputc('\n', f);
        }
        break;
    default: /* county */
        fputs("scope,code,name," FIG_HEADER "\n", f);
        fputs(r->scope_name && r->scope_name[0] ? "town," : "county,", f);
        report_csv_field(f, r->scope_code);
        fputc(',', f);
        report_csv_field(f, r->scope_name);
        csv_fig(f, r->county, r->target);
        fputc('\n', f);
        break;
    }
    ASSERT(fclose(f) == 0);
    if (len)
        *len = n;
    return buf;
}

char *report_json_line(json_t *o, size_t flags, size_t *len)
{
    char *s = json_dumps(o, flags);
    json_decref(o);
    ASSERT(s);
    size_t n = strlen(s);
    char *out = xmalloc(n + 2);
    memcpy(out, s, n);
    out[n] = '\n';
    out[n + 1] = '\0';
    free(s);
    if (len)
        *len = n + 1;
    return out;
}
