/*
 * intake: a SubmitRequest's way in. Every field is checked before anything is written —
 * a bad one is answered INVALID_ARGUMENT naming the field — and the request's content is
 * hashed so the same idempotency key with other content can be told from a retry. A valid
 * submission goes on to the resolve batch (submit.c).
 */
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "base/auth.h"
#include "core/dispatch_int.h"

#define COUNTY_NEAR_KM 10 /* a location inside the county has a village centroid this close */

bool intake_phone(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        if (*p == ' ' || *p == '-')
            continue;
        if (*p == '+' && p == in)
            continue;
        if (!isdigit((unsigned char)*p) || o + 1 >= n)
            return false;
        out[o++] = *p;
    }
    out[o] = '\0';
    /* the country code, written +86 or 0086, is not part of a stored number */
    const char *digits = out;
    if (in[0] == '+' && strncmp(out, "86", 2) == 0)
        digits = out + 2;
    else if (strncmp(out, "0086", 4) == 0)
        digits = out + 4;
    memmove(out, digits, strlen(digits) + 1);
    size_t len = strlen(out);
    return len >= 5 && len <= 15;
}

void intake_phone_hash(const Dispatch *d, const char *phone, char hex[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    ASSERT(d->phone_key_len >= CONFIG_KEY_MIN);
    unsigned char *ok = HMAC(EVP_sha256(), d->phone_key, (int)d->phone_key_len,
                             (const unsigned char *)phone, strlen(phone), mac, &n);
    ASSERT(ok && n == 32);
    for (unsigned i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
}

bool dispatch_phone_hash(const Dispatch *d, const char *phone, char norm[24], char hex[65])
{
    if (!intake_phone(phone, norm, 24))
        return false;
    intake_phone_hash(d, norm, hex);
    return true;
}

/* Over every field as sent (the date raw, so "" stays "today" whatever day a retry comes). */
static void content_hash(const Sub *s, char hex[65])
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "v1\n%s\n%lld\n%d\n%d\n%s\n%d\n%d\n%s\n%d:%.6f,%.6f", s->phone,
             (long long)s->resident_param, s->kind, s->slot, s->date_raw, s->subtype, s->urgency,
             s->note, s->has_loc, s->loc_lat, s->loc_lon);
    auth_token_hash_hex(buf, hex);
}

bool intake_validate(Sub *s, const Careline__V1__SubmitRequest *m, const DirSnap *snap)
{
#define BAD(field, ...)                                                                            \
    do {                                                                                           \
        sub_reply_error(s, S(ERROR_CODE__INVALID_ARGUMENT), field, __VA_ARGS__);                   \
        return false;                                                                              \
    } while (0)
    size_t klen = strlen(m->idempotency_key);
    if (klen == 0)
        BAD("idempotency_key", "idempotency_key is required (use the call's id)");
    if (klen > MAX_KEY || !util_utf8_valid(m->idempotency_key, klen))
        BAD("idempotency_key", "idempotency_key must be 1..%d bytes of valid UTF-8", MAX_KEY);
    memcpy(s->key, m->idempotency_key, klen + 1);
    if (m->who_case == CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE) {
        if (!intake_phone(m->caller_phone, s->phone, sizeof(s->phone)))
            BAD("caller_phone", "caller_phone must be 5..15 digits (optionally +86)");
        intake_phone_hash(s->d, s->phone, s->phone_hash);
    } else if (m->who_case == CARELINE__V1__SUBMIT_REQUEST__WHO_RESIDENT_ID) {
        if (m->resident_id <= 0)
            BAD("resident_id", "resident_id must be a positive id");
        s->resident_param = m->resident_id;
    } else {
        BAD("caller_phone", "caller_phone or resident_id is required");
    }
    s->kind = m->kind;
    if (m->kind == S(SERVICE_KIND__MEAL_DELIVERY)) {
        if (m->meal_slot != S(MEAL_SLOT__LUNCH) && m->meal_slot != S(MEAL_SLOT__DINNER))
            BAD("meal_slot", "meal_slot must be LUNCH or DINNER for a meal delivery");
        s->slot = m->meal_slot;
    } else if (m->kind == S(SERVICE_KIND__HOME_CARE)) {
        if (m->care_subtype < S(CARE_SUBTYPE__BATHING) ||
            m->care_subtype > S(CARE_SUBTYPE__CARE_OTHER))
            BAD("care_subtype", "care_subtype must be BATHING, CLEANING, COMPANIONSHIP, "
                                "MEDICAL_ESCORT or CARE_OTHER for home care");
        s->subtype = m->care_subtype;
    } else {
        BAD("kind", "kind must be MEAL_DELIVERY or HOME_CARE (got %d)", (int)m->kind);
    }
    CalDay today;
    sub_minute_now(&today);
    if (!m->service_date[0]) {
        s->day = today;
    } else {
        switch (cal_parse_checked(m->service_date, &s->day)) {
        case CAL_OK:
            if (s->day < today)
                BAD("service_date", "service_date %s is out of range: it is in the past",
                    m->service_date);
            break;
        case CAL_OUT_OF_RANGE:
            BAD("service_date",
                "service_date %s is out of range: meals are booked from today up to %d days "
                "ahead",
                m->service_date, s->d->env->cfg->booking_days);
        case CAL_NO_SUCH_DAY:
            BAD("service_date", "service_date %s is not a real date", m->service_date);
        default:
            BAD("service_date", "service_date '%.20s' is not a date (YYYY-MM-DD)", m->service_date);
        }
    }
    snprintf(s->date_raw, sizeof(s->date_raw), "%s", m->service_date);
    size_t nlen = strlen(m->note);
    if (nlen > MAX_NOTE)
        BAD("note", "note is %zu bytes; the limit is %d", nlen, MAX_NOTE);
    if (!util_utf8_valid(m->note, nlen))
        BAD("note", "note is not valid UTF-8");
    memcpy(s->note, m->note, nlen + 1);
    if (m->urgency != S(URGENCY__URGENCY_NORMAL) && m->urgency != S(URGENCY__URGENCY_URGENT))
        BAD("urgency", "urgency must be URGENCY_NORMAL or URGENCY_URGENT");
    s->urgency = m->urgency;
    if (m->location) {
        double lat = m->location->lat, lon = m->location->lon;
        if (!(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180) ||
            !dir_near_village(snap, lat, lon, COUNTY_NEAR_KM))
            BAD("location", "location %.5f,%.5f is outside the county (no village within %d km)",
                lat, lon, COUNTY_NEAR_KM);
        s->has_loc = true;
        s->loc_lat = lat;
        s->loc_lon = lon;
    }
    return true;
#undef BAD
}

void intake_submit(void *arg, Conn *c, Envelope *env)
{
    Dispatch *d = arg;
    Sub *s = sub_new(d, c, env->seq);
    if (!dispatch_ready(d)) {
        sub_reply_error(s, S(ERROR_CODE__UNAVAILABLE), NULL,
                        "the station directory is still loading; retry in a moment");
        goto done;
    }
    if (!intake_validate(s, env->submit, dir_snap(d->dir)))
        goto done;
    content_hash(s, s->hash);
    if (!pg_pool_available(d->env->pg)) {
        /* the breaker is open: waiting would only end in a timeout */
        sub_unavailable(s, SUB_NOTHING, "the database is not answering at the moment");
        goto done;
    }
    if (pgbatch_waiting(d->batch[BATCH_RESOLVE]) >= (size_t)d->env->cfg->pg_max_queue) {
        sub_reply_error(s, S(ERROR_CODE__OVERLOADED), NULL,
                        "too many requests are waiting for the database; retry shortly");
        goto done;
    }
    sub_arm_deadline(s, env->submit->deadline_ms);
    frame_free(env);
    sub_resolve(s);
    return;
done:
    frame_free(env);
    sub_free(s);
}
