/*
 * gw_call: the hotline gateway's pure logic, with no I/O: parsing a call event (JSON), the
 * IVR menu (digits -> what to do), the spool payload and the SubmitRequest built from it,
 * the webhook signature check (HMAC-SHA256 of "timestamp.body") and the replay cache, and
 * the fixed sentences the caller hears when the daemon has no answer of its own.
 */
#ifndef CARELINE_GW_CALL_H
#define CARELINE_GW_CALL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "careline.pb-c.h"
#include "common/util.h"

#define GW_CALL_ID_MAX 128
#define GW_PHONE_MAX   24
#define GW_NOTE_MAX    500

/* Sentences for TTS: short, plain Chinese. */
#define GW_SAY_SPOOLED            "您的需求已经记录，我们会给您回电。"
#define GW_SAY_NOT_TAKEN          "抱歉，系统暂时无法受理您的需求，请稍后再拨。"
#define GW_SAY_REFUSED            "抱歉，您的需求没有受理成功，请稍后再拨，或联系村里的服务站。"
#define GW_SAY_STATUS_UNAVAILABLE "抱歉，现在查询不到，请稍后再拨。"
#define GW_SAY_CANCEL_UNAVAILABLE "抱歉，现在无法取消，请稍后再拨。"
#define GW_SAY_NO_RECORD          "没有查到您的服务记录。"
#define GW_SAY_OPERATOR           "好的，已经通知工作人员，会尽快给您回电。"
#define GW_OPERATOR_NOTE          "请回电（来电选择人工服务）"

typedef enum {
    GW_ITEM_NONE,     /* digit not in the menu */
    GW_ITEM_MEAL,     /* meal delivery: slot, day_offset */
    GW_ITEM_CARE,     /* home care: subtype, or 0 = ask for a second digit */
    GW_ITEM_STATUS,   /* status of the caller's latest request */
    GW_ITEM_CANCEL,   /* cancel the caller's latest open request */
    GW_ITEM_OPERATOR, /* a human calls back: HOME_CARE / CARE_OTHER with GW_OPERATOR_NOTE */
} GwItemKind;

typedef struct {
    GwItemKind kind;
    int slot;       /* GW_ITEM_MEAL: CARELINE__V1__MEAL_SLOT__* */
    int day_offset; /* GW_ITEM_MEAL: 0 = today, 1 = tomorrow, ... (county time) */
    int subtype;    /* GW_ITEM_CARE: CARELINE__V1__CARE_SUBTYPE__*, 0 = second digit */
} GwMenuItem;

typedef struct {
    GwMenuItem item[10];    /* by first digit */
    char prompt[1024];      /* said for an unknown or missing digit */
    char care_prompt[1024]; /* said when the care subtype digit is missing or unknown */
} GwMenu;

/* The default menu: 1 lunch today, 2 dinner today, 3 lunch tomorrow, 4 home care + subtype
 * digit (1 bathing, 2 cleaning, 3 companionship, 4 medical escort, 5 other), 8 status,
 * 9 cancel, 0 operator. */
void gw_menu_defaults(GwMenu *m);
/* Sets one digit from a spec: "meal lunch|dinner [today|tomorrow|+N]", "care [bathing|
 * cleaning|companionship|medical_escort|other]", "status", "cancel", "operator", "none". */
bool gw_menu_set(GwMenu *m, int digit, const char *spec, char *err, size_t errlen) MUSTCHECK;
/* Writes the menu as "digit = spec" lines (for --help and -t). */
void gw_menu_describe(const GwMenu *m, char *out, size_t n);

typedef struct {
    char call_id[GW_CALL_ID_MAX + 1];
    char caller[GW_PHONE_MAX + 1]; /* as given, spaces and dashes removed */
    char called[GW_PHONE_MAX + 1]; /* may be empty */
    int64_t time_s;                /* call time (epoch s); 0 when not given */
    char digits[17];               /* IVR digits pressed, may be empty */
    char speech[GW_NOTE_MAX + 1];  /* recognised speech, cut at a UTF-8 boundary */
} GwCall;

/* Parses one call event:
 *   {"call_id": "...", "caller": "138...", "called": "96345", "time": 1700000000,
 *    "digits": "41", "speech_text": "..."}
 * call_id and caller are required; time may be epoch seconds (number) or omitted.
 * On failure returns false with *field naming the culprit ("body" for bad JSON) and msg. */
bool gw_call_parse(const char *body, size_t len, GwCall *out, const char **field, char *msg,
                   size_t msglen) MUSTCHECK;

typedef enum {
    GW_PLAN_SUBMIT, /* *payload: a new spool payload (caller owns the json) */
    GW_PLAN_STATUS,
    GW_PLAN_CANCEL,
    GW_PLAN_MENU, /* *say: the prompt to read (the IVR collects digits again) */
} GwPlan;

/* Decides what a call asks for. now_s is used when the call has no plausible time. */
GwPlan gw_call_plan(const GwMenu *m, const GwCall *c, int64_t now_s, json_t **payload,
                    const char **say);

/* Fills m from a spool payload; strings point into p, which must outlive m. */
bool gw_submit_from_payload(json_t *p, Careline__V1__SubmitRequest *m) MUSTCHECK;

/* HMAC-SHA256(secret, ts "." body) in lower-case hex (65 bytes with the NUL). */
void gw_sign(const char *secret, size_t secretlen, const char *ts, const char *body, size_t len,
             char hex[65]);
/* Checks the timestamp (decimal epoch seconds within max_skew_s of now_s) and the signature
 * (hex, either case, optional "sha256=" prefix; compared in constant time). On failure
 * *reason is "missing_signature", "stale_timestamp" or "bad_signature". */
bool gw_sig_check(const char *secret, size_t secretlen, const char *ts, const char *sig,
                  const char *body, size_t len, int64_t now_s, int max_skew_s,
                  const char **reason) MUSTCHECK;

/* Signatures seen recently, to refuse replays. Bounded: when full of live entries,
 * gw_replay_add refuses (the request is then refused too, never silently let through). */
typedef struct GwReplay GwReplay;
GwReplay *gw_replay_new(size_t capacity, int window_s);
void gw_replay_free(GwReplay *r);
/* true when sig was seen within the window (a replay). */
bool gw_replay_seen(GwReplay *r, const char *sig, int64_t now_s);
/* Remembers sig until now_s + window; false when the cache is full. */
bool gw_replay_add(GwReplay *r, const char *sig, int64_t now_s) MUSTCHECK;

/* "YYYY-MM-DD" of epoch second t + day_offset days in county time (UTC+8). */
void gw_county_date(int64_t t, int day_offset, char out[11]);

#endif
