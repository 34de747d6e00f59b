/*
 * careline-cli: talk to dispatchd by hand — submit a request as the hotline gateway would,
 * ask its status, cancel it, or ping. Prints the reply as readable lines (or --json).
 *
 *   careline-cli [--host H] [--port P] [--token T | --tokens FILE] COMMAND [options]
 *   submit --phone N | --resident ID  (--meal lunch|dinner [--date YYYY-MM-DD] |
 *          --care bathing|cleaning|companionship|medical_escort|other) [--key K] [--note T]
 *          [--urgent]
 *   status --request ID | --key K | --phone N
 *   cancel --request ID | --key K | --phone N
 *   ping
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cl.h"

#define S(x) CARELINE__V1__##x

typedef struct {
    const char *host, *token, *tokens, *phone, *key, *note, *date, *meal, *care;
    int port;
    long long request, resident;
    bool urgent;
    TlsClientOpts tls;
} Opts;

static void usage(void)
{
    fprintf(stderr,
            "usage: careline-cli [--host H] [--port P] [--token T | --tokens FILE] COMMAND ...\n"
            "  submit --phone N | --resident ID  (--meal lunch|dinner [--date YYYY-MM-DD] |\n"
            "         --care bathing|cleaning|companionship|medical_escort|other)\n"
            "         [--key K] [--note TEXT] [--urgent]\n"
            "  status --request ID | --key K | --phone N\n"
            "  cancel --request ID | --key K | --phone N\n"
            "  ping\n"
            "" TLSC_USAGE
            "The token defaults to the gateway line of var/dev-tokens.txt (from `make run`).\n");
    exit(2);
}

static const char *enum_name(const ProtobufCEnumDescriptor *d, int v)
{
    const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value(d, v);
    return e ? e->name : "?";
}

static void print_time(const char *label, long long ms)
{
    if (!ms)
        return;
    time_t t = (time_t)(ms / 1000) + 8 * 3600; /* county time, UTC+8 */
    struct tm tm;
    gmtime_r(&t, &tm);
    char b[32];
    strftime(b, sizeof(b), "%Y-%m-%d %H:%M", &tm);
    printf("%-16s %s (Asia/Shanghai)\n", label, b);
}

static int print_reply(ClEnvelope *r)
{
    switch (r->body_case) {
    case CARELINE__V1__ENVELOPE__BODY_ERROR:
        fprintf(stderr, "error %s: %s%s%s\n",
                enum_name(&careline__v1__error_code__descriptor, r->error->code), r->error->message,
                r->error->field[0] ? " (field " : "", r->error->field[0] ? r->error->field : "");
        if (r->error->field[0])
            fprintf(stderr, ")\n");
        return 1;
    case CARELINE__V1__ENVELOPE__BODY_SUBMIT_RESULT: {
        Careline__V1__SubmitResult *s = r->submit_result;
        printf("%-16s %lld%s\n", "request", (long long)s->request_id,
               s->duplicate ? " (repeat of an earlier call)" : "");
        printf("%-16s %s\n", "state",
               enum_name(&careline__v1__request_state__descriptor, s->state));
        if (s->reason_code)
            printf("%-16s %s: %s\n", "reason",
                   enum_name(&careline__v1__reason_code__descriptor, s->reason_code), s->reason);
        if (s->station_id)
            printf("%-16s %lld %s (%u min away)\n", "station", (long long)s->station_id,
                   s->station_name, s->travel_minutes);
        if (s->job_id)
            printf("%-16s %lld\n", "job", (long long)s->job_id);
        print_time("window from", s->window_start_ms);
        print_time("window to", s->window_end_ms);
        for (size_t i = 0; i < s->n_priority; i++)
            printf("%-16s %s\n", "priority",
                   enum_name(&careline__v1__priority_flag__descriptor, s->priority[i]));
        printf("%-16s %s\n", "caller hears", s->speech_zh);
        return 0;
    }
    case CARELINE__V1__ENVELOPE__BODY_REQUEST_STATUS: {
        Careline__V1__RequestStatus *s = r->request_status;
        printf("%-16s %lld\n", "request", (long long)s->request_id);
        printf("%-16s %s\n", "state",
               enum_name(&careline__v1__request_state__descriptor, s->state));
        if (s->station_id)
            printf("%-16s %lld %s\n", "station", (long long)s->station_id, s->station_name);
        print_time("window from", s->window_start_ms);
        print_time("window to", s->window_end_ms);
        for (size_t i = 0; i < s->n_history; i++) {
            Careline__V1__RequestEvent *e = s->history[i];
            print_time(enum_name(&careline__v1__request_state__descriptor, e->state), e->at_ms);
            printf("%-16s   by %s%s%s\n", "", e->actor, e->reason[0] ? ": " : "", e->reason);
        }
        printf("%-16s %s\n", "caller hears", s->speech_zh);
        return 0;
    }
    case CARELINE__V1__ENVELOPE__BODY_CANCEL_RESULT:
        printf("%-16s %lld\n", "request", (long long)r->cancel_result->request_id);
        printf("%-16s %s\n", "cancelled", r->cancel_result->cancelled ? "yes" : "no");
        printf("%-16s %s\n", "state",
               enum_name(&careline__v1__request_state__descriptor, r->cancel_result->state));
        printf("%-16s %s\n", "caller hears", r->cancel_result->speech_zh);
        return 0;
    case CARELINE__V1__ENVELOPE__BODY_PONG:
        printf("pong (server time %lld)\n", (long long)r->pong->server_time_ms);
        return 0;
    default:
        fprintf(stderr, "unexpected reply (body %d)\n", r->body_case);
        return 1;
    }
}

static int care_code(const char *s)
{
    static const char *const names[] = {
        "", "bathing", "cleaning", "companionship", "medical_escort", "other"};
    for (int i = 1; i < 6; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

int main(int argc, char **argv)
{
    Opts o = {.host = "127.0.0.1", .port = 7400, .tokens = "var/dev-tokens.txt"};
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
        else if (OPT("--phone"))
            o.phone = v;
        else if (OPT("--resident"))
            o.resident = atoll(v);
        else if (OPT("--request"))
            o.request = atoll(v);
        else if (OPT("--key"))
            o.key = v;
        else if (OPT("--note"))
            o.note = v;
        else if (OPT("--date"))
            o.date = v;
        else if (OPT("--meal"))
            o.meal = v;
        else if (OPT("--care"))
            o.care = v;
        else if (strcmp(a, "--urgent") == 0)
            o.urgent = true;
        else if (tlsc_arg(&o.tls, argc, argv, &i))
            continue;
        else if (!cmd && a[0] != '-')
            cmd = a;
        else
            usage();
#undef OPT
    }
    if (!cmd)
        usage();
    char *tok = o.token ? strdup(o.token) : cl_token_from_file(o.tokens, "gateway", 0);
    if (!tok) {
        fprintf(stderr, "careline-cli: no token: give --token or run `make run` first (%s)\n",
                o.tokens);
        return 2;
    }
    char err[256];
    ClConn *c = cl_open_opts(o.host, o.port, &o.tls, 3000, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "careline-cli: %s%s\n", err,
                strncmp(err, "TLS", 3) ? " (is dispatchd running? `make run`)" : "");
        return 1;
    }
    ClEnvelope *r = cl_hello(c, tok, "careline-cli", 5000, err, sizeof(err));
    free(tok);
    if (!r || r->body_case != CARELINE__V1__ENVELOPE__BODY_HELLO_OK) {
        int rc = r ? print_reply(r) : (fprintf(stderr, "careline-cli: %s\n", err), 1);
        cl_free(r);
        cl_close(c);
        return rc ? rc : 1;
    }
    cl_free(r);
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    Careline__V1__SubmitRequest sub = CARELINE__V1__SUBMIT_REQUEST__INIT;
    Careline__V1__StatusQuery sq = CARELINE__V1__STATUS_QUERY__INIT;
    Careline__V1__CancelRequest cr = CARELINE__V1__CANCEL_REQUEST__INIT;
    Careline__V1__Ping ping = CARELINE__V1__PING__INIT;
    char keybuf[64];
    if (strcmp(cmd, "submit") == 0) {
        snprintf(keybuf, sizeof(keybuf), "cli-%ld-%d", (long)time(NULL), (int)getpid());
        sub.idempotency_key = (char *)(o.key ? o.key : keybuf);
        if (o.phone) {
            sub.who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE;
            sub.caller_phone = (char *)o.phone;
        } else if (o.resident) {
            sub.who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_RESIDENT_ID;
            sub.resident_id = o.resident;
        }
        if (o.meal) {
            sub.kind = S(SERVICE_KIND__MEAL_DELIVERY);
            sub.meal_slot =
                strcmp(o.meal, "dinner") == 0 ? S(MEAL_SLOT__DINNER) : S(MEAL_SLOT__LUNCH);
        } else if (o.care) {
            sub.kind = S(SERVICE_KIND__HOME_CARE);
            sub.care_subtype = care_code(o.care);
        }
        sub.service_date = (char *)(o.date ? o.date : "");
        sub.note = (char *)(o.note ? o.note : "");
        sub.urgency = o.urgent ? S(URGENCY__URGENCY_URGENT) : S(URGENCY__URGENCY_NORMAL);
        e.body_case = CARELINE__V1__ENVELOPE__BODY_SUBMIT;
        e.submit = &sub;
    } else if (strcmp(cmd, "status") == 0 || strcmp(cmd, "cancel") == 0) {
        bool st = cmd[0] == 's';
        if (o.request) {
            sq.ref_case = CARELINE__V1__STATUS_QUERY__REF_REQUEST_ID;
            sq.request_id = o.request;
            cr.ref_case = CARELINE__V1__CANCEL_REQUEST__REF_REQUEST_ID;
            cr.request_id = o.request;
        } else if (o.key) {
            sq.ref_case = CARELINE__V1__STATUS_QUERY__REF_IDEMPOTENCY_KEY;
            sq.idempotency_key = (char *)o.key;
            cr.ref_case = CARELINE__V1__CANCEL_REQUEST__REF_IDEMPOTENCY_KEY;
            cr.idempotency_key = (char *)o.key;
        } else if (o.phone) {
            sq.ref_case = CARELINE__V1__STATUS_QUERY__REF_CALLER_PHONE;
            sq.caller_phone = (char *)o.phone;
            cr.ref_case = CARELINE__V1__CANCEL_REQUEST__REF_CALLER_PHONE;
            cr.caller_phone = (char *)o.phone;
        } else {
            usage();
        }
        e.body_case =
            st ? CARELINE__V1__ENVELOPE__BODY_STATUS_QUERY : CARELINE__V1__ENVELOPE__BODY_CANCEL;
        e.status_query = &sq;
        if (!st)
            e.cancel = &cr;
    } else if (strcmp(cmd, "ping") == 0) {
        e.body_case = CARELINE__V1__ENVELOPE__BODY_PING;
        e.ping = &ping;
    } else {
        usage();
    }
    r = cl_call(c, &e, 15000, err, sizeof(err), NULL, NULL);
    int rc = r ? print_reply(r) : (fprintf(stderr, "careline-cli: %s\n", err), 1);
    cl_free(r);
    cl_close(c);
    return rc;
}
