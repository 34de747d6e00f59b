/*
 * fuzz_webhook: the hotline gateway's webhook over arbitrary bytes — the signature and
 * timestamp check (gw_sig_check), the replay cache, the call event's JSON (gw_call_parse)
 * and what follows from an accepted one: the IVR plan (gw_call_plan), the spool payload
 * read back into a SubmitRequest (gw_submit_from_payload) and its frame. Checked: what the
 * parser accepts is within the documented bounds, a signature made with the secret always
 * passes and one byte changed never does, an accepted call always yields a payload the
 * gateway can send.
 *
 * Input: byte 0 flags (bit 0: sign the body properly; bit 1: use the menu digit specs
 * below), then "timestamp\nsignature\nbody".
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frame.h"
#include "fuzz_env.h"
#include "gw_call.h"

#define NOW      1700000000
#define MAX_SKEW 300

static const char secret[] = "fuzz-webhook-secret-of-32-bytes!";

/* The next line of p[*at..n) as a string (free()). */
static char *line(const uint8_t *p, size_t n, size_t *at)
{
    const uint8_t *nl = memchr(p + *at, '\n', n - *at);
    size_t k = nl ? (size_t)(nl - (p + *at)) : n - *at;
    char *s = fuzz_strndup(p + *at, k);
    *at += k + (nl ? 1 : 0);
    return s;
}

static void check_call(const GwCall *c)
{
    size_t k = strlen(c->call_id);
    FUZZ_ASSERT(k >= 1 && k <= GW_CALL_ID_MAX, "call_id of %zu bytes", k);
    for (size_t i = 0; i < k; i++)
        FUZZ_ASSERT((unsigned char)c->call_id[i] >= 0x20 && c->call_id[i] != 0x7f,
                    "a control character in call_id");
    size_t p = strlen(c->caller), d = p - (c->caller[0] == '+');
    FUZZ_ASSERT(d >= 5 && d <= 15 && strspn(c->caller + (c->caller[0] == '+'), "0123456789") == d,
                "caller '%s'", c->caller);
    FUZZ_ASSERT(strlen(c->called) <= GW_PHONE_MAX, "called");
    FUZZ_ASSERT(c->time_s >= 0, "time %lld", (long long)c->time_s);
    FUZZ_ASSERT(strspn(c->digits, "0123456789*#") == strlen(c->digits), "digits '%s'", c->digits);
    size_t sl = strlen(c->speech);
    FUZZ_ASSERT(sl <= GW_NOTE_MAX && util_utf8_valid(c->speech, sl), "speech of %zu bytes", sl);
}

static void plan(const GwMenu *menu, const GwCall *c, int64_t now)
{
    json_t *payload = NULL;
    const char *say = NULL;
    GwPlan p = gw_call_plan(menu, c, now, &payload, &say);
    FUZZ_ASSERT(say != NULL, "no sentence");
    if (p != GW_PLAN_SUBMIT) {
        FUZZ_ASSERT(payload == NULL, "a payload without a submission");
        return;
    }
    FUZZ_ASSERT(payload != NULL, "a submission without a payload");
    Careline__V1__SubmitRequest m;
    bool ok = gw_submit_from_payload(payload, &m);
    FUZZ_ASSERT(ok, "the gateway cannot read back its own payload");
    FUZZ_ASSERT(strcmp(m.idempotency_key, c->call_id) == 0, "the key is not the call id");
    FUZZ_ASSERT(strlen(m.note) <= GW_NOTE_MAX && util_utf8_valid(m.note, strlen(m.note)),
                "note of %zu bytes", strlen(m.note));
    Envelope env = CARELINE__V1__ENVELOPE__INIT;
    env.seq = 7;
    env.body_case = CARELINE__V1__ENVELOPE__BODY_SUBMIT;
    env.submit = &m;
    size_t n;
    uint8_t *b = frame_encode(&env, &n);
    Envelope *back = NULL;
    size_t need;
    uint32_t len;
    FUZZ_ASSERT(frame_parse(b, n, FRAME_MAX_PAYLOAD, &back, &need, &len) == FRAME_OK,
                "the submission's frame does not parse");
    FUZZ_ASSERT(strcmp(back->submit->caller_phone, c->caller) == 0, "the phone changed");
    frame_free(back);
    free(b);
    json_decref(payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    (void)fuzz_env(); /* logging off */
    uint8_t flags = data[0];
    size_t at = 1;
    char *ts = line(data, size, &at);
    char *sig = line(data, size, &at);
    const char *body = (const char *)data + at;
    size_t len = size - at;
    char good[65 + 7];
    if (flags & 1) { /* a delivery the call centre signed */
        gw_sign(secret, strlen(secret), ts, body, len, good);
        free(sig);
        sig = xstrdup(good);
    }
    const char *why = NULL;
    bool sig_ok = gw_sig_check(secret, strlen(secret), ts, sig, body, len, NOW, MAX_SKEW, &why);
    if (!sig_ok)
        FUZZ_ASSERT(why && (!strcmp(why, "missing_signature") || !strcmp(why, "stale_timestamp") ||
                            !strcmp(why, "bad_signature")),
                    "reason '%s'", why ? why : "(null)");
    if (sig_ok) {
        FUZZ_ASSERT(flags & 1 || strlen(sig) >= 64, "a forged signature passed");
        /* the same delivery again is a replay; one more body byte breaks the signature */
        GwReplay *rp = gw_replay_new(2, MAX_SKEW);
        FUZZ_ASSERT(!gw_replay_seen(rp, sig, NOW), "seen in an empty cache");
        FUZZ_ASSERT(gw_replay_add(rp, sig, NOW), "an empty cache is full");
        FUZZ_ASSERT(gw_replay_seen(rp, sig, NOW + 1), "a replay was not seen");
        FUZZ_ASSERT(!gw_replay_seen(rp, sig, NOW + MAX_SKEW + 1), "seen after the window");
        gw_replay_free(rp);
        char *more = xmalloc(len + 1);
        memcpy(more, body, len);
        more[len] = ' ';
        FUZZ_ASSERT(
            !gw_sig_check(secret, strlen(secret), ts, sig, more, len + 1, NOW, MAX_SKEW, &why),
            "a changed body kept its signature");
        free(more);
    } else if (flags & 1) {
        FUZZ_ASSERT(strcmp(why, "bad_signature") != 0, "a proper signature was refused");
    }
    GwCall call;
    const char *field = NULL;
    char msg[256];
    if (gw_call_parse(body, len, &call, &field, msg, sizeof(msg))) {
        check_call(&call);
        GwMenu menu;
        gw_menu_defaults(&menu);
        plan(&menu, &call, NOW);
        if (flags & 2) { /* every digit something else: meal +N, care with a subtype */
            static const char *const specs[] = {"meal dinner +14",
                                                "care other",
                                                "care",
                                                "meal lunch tomorrow",
                                                "operator",
                                                "none",
                                                "status",
                                                "cancel",
                                                "care bathing",
                                                "meal lunch today"};
            char err[512];
            for (int dg = 0; dg < 10; dg++)
                FUZZ_ASSERT(gw_menu_set(&menu, dg, specs[dg], err, sizeof(err)), "%s", err);
            plan(&menu, &call, NOW);
        }
    } else {
        FUZZ_ASSERT(field && field[0] && msg[0], "a refusal without a field or a sentence");
    }
    free(ts);
    free(sig);
    return 0;
}
