/*
 * followup_format: the follow-up list rendered as JSON or CSV (see the header). Phones are
 * only ever the masked form the daemon stores.
 */
#include "common/followup_format.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/report_format.h"
#include "common/util.h"

static const char *const state_names[] = {"", "open", "contacted", "registered", "declined"};

const char *followup_state_name(int state)
{
    return state > 0 && (size_t)state < ARRAY_LEN(state_names) ? state_names[state] : "";
}

int followup_state_of(const char *name)
{
    for (size_t i = 1; i < ARRAY_LEN(state_names); i++)
        if (strcmp(state_names[i], name) == 0)
            return (int)i;
    return -1;
}

static json_t *one_json(const Careline__V1__Followup *x)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(x->id));
    json_object_set_new(o, "phone_masked", json_string(x->phone_masked));
    json_object_set_new(o, "village_code", json_string(x->village_code));
    json_object_set_new(o, "village_name", json_string(x->village_name));
    json_object_set_new(o, "town_code", json_string(x->town_code));
    json_object_set_new(o, "town_name", json_string(x->town_name));
    json_object_set_new(o, "first_call_ms", json_integer(x->first_call_ms));
    json_object_set_new(o, "last_call_ms", json_integer(x->last_call_ms));
    json_object_set_new(o, "calls", json_integer(x->calls));
    json_object_set_new(o, "state", json_string(followup_state_name(x->state)));
    json_object_set_new(o, "first_contact_ms",
                        x->first_contact_ms ? json_integer(x->first_contact_ms) : json_null());
    json_object_set_new(o, "resident_id",
                        x->resident_id ? json_integer(x->resident_id) : json_null());
    json_object_set_new(o, "note", json_string(x->note));
    return o;
}

char *followup_json(Careline__V1__Followup **fs, size_t n, bool more, bool one, size_t *len)
{
    json_t *o;
    if (one) {
        o = json_object();
        json_object_set_new(o, "followup", n ? one_json(fs[0]) : json_null());
    } else {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, one_json(fs[i]));
        o = json_object();
        json_object_set_new(o, "followups", a);
        json_object_set_new(o, "more", json_boolean(more));
    }
    return report_json_line(o, JSON_COMPACT | JSON_PRESERVE_ORDER, len);
}

char *followup_csv(Careline__V1__Followup **fs, size_t n, size_t *len)
{
    char *buf = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&buf, &sz);
    ASSERT(f);
    fputs("id,phone_masked,village_code,village_name,town_code,town_name,first_call_ms,"
          "last_call_ms,calls,state,first_contact_ms,resident_id,note\n",
          f);
    for (size_t i = 0; i < n; i++) {
        const Careline__V1__Followup *x = fs[i];
        fprintf(f, "%lld,", (long long)x->id);
        report_csv_field(f, x->phone_masked);
        fprintf(f, ",%s,", x->village_code);
        report_csv_field(f, x->village_name);
        fprintf(f, ",%s,", x->town_code);
        report_csv_field(f, x->town_name);
        fprintf(f, ",%lld,%lld,%u,%s,", (long long)x->first_call_ms, (long long)x->last_call_ms,
                x->calls, followup_state_name(x->state));
        if (x->first_contact_ms)
            fprintf(f, "%lld", (long long)x->first_contact_ms);
        fputc(',', f);
        if (x->resident_id)
            fprintf(f, "%lld", (long long)x->resident_id);
        fputc(',', f);
        report_csv_field(f, x->note);
        fputc('\n', f);
    }
    ASSERT(fclose(f) == 0);
    *len = sz;
    return buf;
}
