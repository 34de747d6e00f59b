/*
 * gw_call: call events in, plans out. The service date is fixed here, from the call's own
 * time, and stored in the spool payload: a webhook retried (or a spooled call resent) after
 * midnight then still carries the same content, so the daemon sees a duplicate, not a
 * conflicting new request.
 */
#include "gw_call.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S(x) CARELINE__V1__##x

static const char *const care_names[] = {
    "", "bathing", "cleaning", "companionship", "medical_escort", "other"};

void gw_menu_defaults(GwMenu *m)
{
    memset(m, 0, sizeof(*m));
    m->item[1] = (GwMenuItem){GW_ITEM_MEAL, S(MEAL_SLOT__LUNCH), 0, 0};
    m->item[2] = (GwMenuItem){GW_ITEM_MEAL, S(MEAL_SLOT__DINNER), 0, 0};
    m->item[3] = (GwMenuItem){GW_ITEM_MEAL, S(MEAL_SLOT__LUNCH), 1, 0};
    m->item[4] = (GwMenuItem){GW_ITEM_CARE, 0, 0, 0};
    m->item[8] = (GwMenuItem){GW_ITEM_STATUS, 0, 0, 0};
    m->item[9] = (GwMenuItem){GW_ITEM_CANCEL, 0, 0, 0};
    m->item[0] = (GwMenuItem){GW_ITEM_OPERATOR, 0, 0, 0};
    snprintf(m->prompt, sizeof(m->prompt), "%s",
             "没有听清您的选择。订今天午餐请按1，今天晚餐请按2，明天午餐请按3，"
             "上门服务请按4，查询请按8，取消请按9，人工服务请按0。");
    snprintf(m->care_prompt, sizeof(m->care_prompt), "%s",
             "上门服务：助浴请按1，保洁请按2，陪伴请按3，陪同就医请按4，其他请按5。");
}

bool gw_menu_set(GwMenu *m, int digit, const char *spec, char *err, size_t errlen)
{
    if (digit < 0 || digit > 9) {
        snprintf(err, errlen, "menu digit %d is not 0..9", digit);
        return false;
    }
    char w1[32] = "", w2[32] = "", w3[32] = "", extra[8] = "";
    int n = sscanf(spec, "%31s %31s %31s %7s", w1, w2, w3, extra);
    GwMenuItem it = {GW_ITEM_NONE, 0, 0, 0};
    if (n == 1 && !strcmp(w1, "none")) {
        it.kind = GW_ITEM_NONE;
    } else if (n == 1 && !strcmp(w1, "status")) {
        it.kind = GW_ITEM_STATUS;
    } else if (n == 1 && !strcmp(w1, "cancel")) {
        it.kind = GW_ITEM_CANCEL;
    } else if (n == 1 && !strcmp(w1, "operator")) {
        it.kind = GW_ITEM_OPERATOR;
    } else if ((n == 1 || n == 2) && !strcmp(w1, "care")) {
        it.kind = GW_ITEM_CARE;
        for (int i = 1; n == 2 && i < 6; i++)
            if (!strcmp(w2, care_names[i]))
                it.subtype = i;
        if (n == 2 && !it.subtype)
            goto bad;
    } else if ((n == 2 || n == 3) && !strcmp(w1, "meal")) {
        it.kind = GW_ITEM_MEAL;
        if (!strcmp(w2, "lunch"))
            it.slot = S(MEAL_SLOT__LUNCH);
        else if (!strcmp(w2, "dinner"))
            it.slot = S(MEAL_SLOT__DINNER);
        else
            goto bad;
        if (n == 3) {
            if (!strcmp(w3, "today"))
                it.day_offset = 0;
            else if (!strcmp(w3, "tomorrow"))
                it.day_offset = 1;
            else if (w3[0] == '+' && isdigit((unsigned char)w3[1]) && atoi(w3 + 1) <= 14)
                it.day_offset = atoi(w3 + 1);
            else
                goto bad;
        }
    } else {
        goto bad;
    }
    m->item[digit] = it;
    return true;
bad:
    snprintf(err, errlen,
             "menu_%d: '%s' is not one of: meal lunch|dinner [today|tomorrow|+N], "
             "care [bathing|cleaning|companionship|medical_escort|other], status, cancel, "
             "operator, none",
             digit, spec);
    return false;
}

void gw_menu_describe(const GwMenu *m, char *out, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    for (int d = 0; d < 10 && o < n; d++) {
        const GwMenuItem *it = &m->item[d];
        char spec[96];
        switch (it->kind) {
        case GW_ITEM_MEAL:
            if (it->day_offset <= 1)
                snprintf(spec, sizeof(spec), "meal %s %s",
                         it->slot == S(MEAL_SLOT__DINNER) ? "dinner" : "lunch",
                         it->day_offset ? "tomorrow" : "today");
            else
                snprintf(spec, sizeof(spec), "meal %s +%d",
                         it->slot == S(MEAL_SLOT__DINNER) ? "dinner" : "lunch", it->day_offset);
            break;
        case GW_ITEM_CARE:
            snprintf(spec, sizeof(spec), "care%s%s", it->subtype ? " " : "",
                     it->subtype ? care_names[it->subtype] : "");
            break;
        case GW_ITEM_STATUS:
            snprintf(spec, sizeof(spec), "status");
            break;
        case GW_ITEM_CANCEL:
            snprintf(spec, sizeof(spec), "cancel");
            break;
        case GW_ITEM_OPERATOR:
            snprintf(spec, sizeof(spec), "operator");
            break;
        default:
            snprintf(spec, sizeof(spec), "none");
        }
        o += (size_t)snprintf(out + o, n - o, "menu_%d = %s\n", d, spec);
    }
}

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
static void utf8_cut(char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    s[n] = '\0';
}

static bool phone_clean(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        if (*p == ' ' || *p == '-')
            continue;
        if (!(isdigit((unsigned char)*p) || (*p == '+' && o == 0)) || o + 1 >= n)
            return false;
        out[o++] = *p;
    }
    out[o] = '\0';
    size_t digits = o - (out[0] == '+');
    return digits >= 5 && digits <= 15;
}

bool gw_call_parse(const char *body, size_t len, GwCall *out, const char **field, char *msg,
                   size_t msglen)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    const char *s;
    if (!j) {
        *field = "body";
        snprintf(msg, msglen, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        return false;
    }
    if (!json_is_object(j)) {
        *field = "body";
        snprintf(msg, msglen, "the body must be a JSON object");
        goto fail;
    }
    json_t *v = json_object_get(j, "call_id");
    s = json_string_value(v);
    if (!s || !*s || strlen(s) > GW_CALL_ID_MAX) {
        *field = "call_id";
        snprintf(msg, msglen, "call_id must be a string of 1..%d bytes", GW_CALL_ID_MAX);
        goto fail;
    }
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *field = "call_id";
            snprintf(msg, msglen, "call_id must not contain control characters");
            goto fail;
        }
    }
    snprintf(out->call_id, sizeof(out->call_id), "%s", s);
    s = json_string_value(json_object_get(j, "caller"));
    if (!s || !phone_clean(s, out->caller, sizeof(out->caller))) {
        *field = "caller";
        snprintf(msg, msglen, "caller must be the caller's number: 5..15 digits, optional +");
        goto fail;
    }
    v = json_object_get(j, "called");
    if (v && !(json_is_string(v) && strlen(json_string_value(v)) <= GW_PHONE_MAX)) {
        *field = "called";
        snprintf(msg, msglen, "called must be a string of up to %d bytes", GW_PHONE_MAX);
        goto fail;
    }
    if (v)
        snprintf(out->called, sizeof(out->called), "%s", json_string_value(v));
    v = json_object_get(j, "time");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            *field = "time";
            snprintf(msg, msglen, "time must be the call's start in epoch seconds");
            goto fail;
        }
        out->time_s = json_integer_value(v);
    }
    v = json_object_get(j, "digits");
    s = v ? json_string_value(v) : "";
    if (!s || strlen(s) >= sizeof(out->digits) || strspn(s, "0123456789*#") != strlen(s)) {
        *field = "digits";
        snprintf(msg, msglen, "digits must be a string of up to 16 keys 0-9 * #");
        goto fail;
    }
    snprintf(out->digits, sizeof(out->digits), "%s", s);
    v = json_object_get(j, "speech_text");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) {
            *field = "speech_text";
            snprintf(msg, msglen, "speech_text must be a string");
            goto fail;
        }
        snprintf(out->speech, sizeof(out->speech), "%s", json_string_value(v));
        utf8_cut(out->speech, GW_NOTE_MAX);
    }
    json_decref(j);
    return true;
fail:
    json_decref(j);
    return false;
}

void gw_county_date(int64_t t, int day_offset, char out[11])
{
    time_t x = (time_t)(t + 8 * 3600 + (int64_t)day_offset * 86400);
    struct tm tm;
    gmtime_r(&x, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

static json_t *payload_new(const GwCall *c, int64_t at, const char *op, int kind, int slot,
                           const char *date, int subtype, const char *note)
{
    return json_pack("{s:i, s:s, s:s, s:s, s:i, s:i, s:s, s:i, s:s, s:I}", "v", 1, "key",
                     c->call_id, "phone", c->caller, "op", op, "kind", kind, "slot", slot, "date",
                     date, "subtype", subtype, "note", note, "at", (json_int_t)at);
}

GwPlan gw_call_plan(const GwMenu *m, const GwCall *c, int64_t now_s, json_t **payload,
                    const char **say)
{
    *payload = NULL;
    *say = m->prompt;
    if (!c->digits[0] || !isdigit((unsigned char)c->digits[0]))
        return GW_PLAN_MENU;
    const GwMenuItem *it = &m->item[c->digits[0] - '0'];
    /* a call time more than a day off is a call-centre clock problem: use ours */
    int64_t at = c->time_s && llabs(c->time_s - now_s) <= 86400 ? c->time_s : now_s;
    char date[11];
    switch (it->kind) {
    case GW_ITEM_MEAL:
        gw_county_date(at, it->day_offset, date);
        *payload = payload_new(c, at, "meal", S(SERVICE_KIND__MEAL_DELIVERY), it->slot, date, 0,
                               c->speech);
        return GW_PLAN_SUBMIT;
    case GW_ITEM_CARE: {
        int sub = it->subtype;
        if (!sub) {
            int d2 = c->digits[1] - '0';
            if (d2 < 1 || d2 > 5) {
                *say = m->care_prompt;
                return GW_PLAN_MENU;
            }
            sub = d2;
        }
        *payload = payload_new(c, at, "care", S(SERVICE_KIND__HOME_CARE), 0, "", sub, c->speech);
        return GW_PLAN_SUBMIT;
    }
    case GW_ITEM_OPERATOR: {
        char note[GW_NOTE_MAX + 64];
        snprintf(note, sizeof(note), "%s%s%s", GW_OPERATOR_NOTE, c->speech[0] ? " " : "",
                 c->speech);
        utf8_cut(note, GW_NOTE_MAX);
        *payload = payload_new(c, at, "operator", S(SERVICE_KIND__HOME_CARE), 0, "",
                               S(CARE_SUBTYPE__CARE_OTHER), note);
        return GW_PLAN_SUBMIT;
    }
    case GW_ITEM_STATUS:
        return GW_PLAN_STATUS;
    case GW_ITEM_CANCEL:
        return GW_PLAN_CANCEL;
    default:
        return GW_PLAN_MENU;
    }
}

bool gw_submit_from_payload(json_t *p, Careline__V1__SubmitRequest *m)
{
    const char *key = NULL, *phone = NULL, *date = NULL, *note = NULL, *op = NULL;
    int v = 0, kind = 0, slot = 0, subtype = 0;
    json_int_t at = 0;
    if (json_unpack(p, "{s:i, s:s, s:s, s:s, s:i, s:i, s:s, s:i, s:s, s:I}", "v", &v, "key", &key,
                    "phone", &phone, "op", &op, "kind", &kind, "slot", &slot, "date", &date,
                    "subtype", &subtype, "note", &note, "at", &at) != 0 ||
        v != 1)
        return false;
    careline__v1__submit_request__init(m);
    m->idempotency_key = (char *)key;
    m->who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE;
    m->caller_phone = (char *)phone;
    m->kind = (Careline__V1__ServiceKind)kind;
    m->meal_slot = (Careline__V1__MealSlot)slot;
    m->service_date = (char *)date;
    m->care_subtype = (Careline__V1__CareSubtype)subtype;
    m->note = (char *)note;
    return true;
}

void gw_sign(const char *secret, size_t secretlen, const char *ts, const char *body, size_t len,
             char hex[65])
{
    size_t tl = strlen(ts);
    unsigned char *msg = xmalloc(tl + 1 + len + 1);
    memcpy(msg, ts, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, body, len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), secret, (int)secretlen, msg, tl + 1 + len, mac, &ml);
    free(msg);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
}

bool gw_sig_check(const char *secret, size_t secretlen, const char *ts, const char *sig,
                  const char *body, size_t len, int64_t now_s, int max_skew_s, const char **reason)
{
    if (!ts || !sig || !*ts || !*sig) {
        *reason = "missing_signature";
        return false;
    }
    char *end = NULL;
    long long t = strtoll(ts, &end, 10);
    if (!isdigit((unsigned char)ts[0]) || *end || strlen(ts) > 12 ||
        llabs(t - now_s) > max_skew_s) {
        *reason = "stale_timestamp";
        return false;
    }
    if (!strncmp(sig, "sha256=", 7))
        sig += 7;
    char want[65], got[65];
    gw_sign(secret, secretlen, ts, body, len, want);
    if (strlen(sig) != 64) {
        *reason = "bad_signature";
        return false;
    }
    for (int i = 0; i < 64; i++)
        got[i] = (char)tolower((unsigned char)sig[i]);
    got[64] = '\0';
    if (CRYPTO_memcmp(want, got, 64) != 0) {
        *reason = "bad_signature";
        return false;
    }
    return true;
}

/* A FIFO ring: entries are added in time order, so they also expire in that order. */
typedef struct {
    unsigned char mac[32];
    int64_t expires_s;
} ReplayEnt;

struct GwReplay {
    ReplayEnt *ring;
    size_t cap, head, n; /* oldest at head */
    int window_s;
};

GwReplay *gw_replay_new(size_t capacity, int window_s)
{
    GwReplay *r = xcalloc(1, sizeof(*r));
    r->cap = capacity ? capacity : 1;
    r->ring = xcalloc(r->cap, sizeof(ReplayEnt));
    r->window_s = window_s;
    return r;
}

void gw_replay_free(GwReplay *r)
{
    if (!r)
        return;
    free(r->ring);
    free(r);
}

static void sig_bytes(const char *sig, unsigned char out[32])
{
    if (!strncmp(sig, "sha256=", 7))
        sig += 7;
    memset(out, 0, 32);
    for (int i = 0; i < 64 && sig[i]; i++) {
        int c = tolower((unsigned char)sig[i]);
        int v = isdigit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : 0;
        out[i / 2] = (unsigned char)(out[i / 2] | (i % 2 ? v : v << 4));
    }
}

static void replay_expire(GwReplay *r, int64_t now_s)
{
    while (r->n && r->ring[r->head].expires_s <= now_s) {
        r->head = (r->head + 1) % r->cap;
        r->n--;
    }
}

bool gw_replay_seen(GwReplay *r, const char *sig, int64_t now_s)
{
    replay_expire(r, now_s);
    unsigned char mac[32];
    sig_bytes(sig, mac);
    for (size_t i = 0; i < r->n; i++)
        if (!memcmp(r->ring[(r->head + i) % r->cap].mac, mac, 32))
            return true;
    return false;
}

bool gw_replay_add(GwReplay *r, const char *sig, int64_t now_s)
{
    replay_expire(r, now_s);
    if (r->n == r->cap)
        return false;
    ReplayEnt *e = &r->ring[(r->head + r->n) % r->cap];
    sig_bytes(sig, e->mac);
    e->expires_s = now_s + r->window_s;
    r->n++;
    return true;
}
