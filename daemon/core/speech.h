/*
 * speech: the short plain-Chinese sentences an IVR reads back to an elderly caller. One
 * sentence per outcome, no jargon, times as "11点到12点半", dates as "今天/明天/3月5日".
 */
#ifndef CARELINE_SPEECH_H
#define CARELINE_SPEECH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "careline.pb-c.h"

typedef struct {
    Careline__V1__RequestState state;
    Careline__V1__ReasonCode reason;
    Careline__V1__ServiceKind kind;
    Careline__V1__MealSlot slot;
    Careline__V1__CareSubtype subtype;
    const char *station_name; /* may be NULL */
    int64_t window_start_ms, window_end_ms;
    int64_t now_ms; /* to say 今天 / 明天 */
    bool priority;
    int booking_days;
} SpeechArgs;

/* Writes the sentence for a request's outcome or status into out (always NUL-terminated). */
void speech_request(const SpeechArgs *a, char *out, size_t n);

/* Sentence for a cancel: cancelled, or why not (already final in `state`). */
void speech_cancel(bool cancelled, Careline__V1__RequestState state, char *out, size_t n);

#endif
