/*
 * console_view: how a station console shows jobs — lower-case names for the JSON stream,
 * Chinese + English labels for operators, county-local times (Asia/Shanghai, UTC+8, no
 * DST), one JSON object per JobOffer (jansson) and a readable block per job.
 * Pure formatting: no I/O besides the FILE * given, no state.
 */
#ifndef CARELINE_CONSOLE_VIEW_H
#define CARELINE_CONSOLE_VIEW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "careline.pb-c.h"

typedef Careline__V1__JobOffer JobOffer;

/* Lower-case names of protocol enums, without the type's prefix: "offered", "accepted",
 * "en_route", "delivered" ...; "meal_delivery"; "lunch"; "bathing"; "lives_alone";
 * "go_en_route". Unknown values give "unknown"; the UNSPECIFIED value gives "". Static. */
const char *cview_state_name(int state);
const char *cview_kind_name(int kind);
const char *cview_slot_name(int slot);
const char *cview_care_name(int subtype);
const char *cview_priority_name(int flag);
const char *cview_action_name(int action);
/* Upper-case as in the proto, e.g. "INVALID_TRANSITION". Static. */
const char *cview_error_name(int code);

/* Operators' words for a job state, e.g. "待接单 offered". Static. */
const char *cview_state_label(int state);
/* true for the states after which the job leaves the station's screen. */
bool cview_state_final(int state);

/* Breaks epoch milliseconds down into county time (for strftime); false for 0. */
bool cview_local_tm(int64_t ms, struct tm *out);

/* A new JSON object with every field of the offer (the caller owns the reference):
 * job_id, request_id, state, attempt, kind, meal_slot, service_date, care_subtype, resident,
 * village, address, lat, lon, priority [..], note, window_start_ms, window_end_ms,
 * offer_expires_at_ms, travel_minutes, and resident_phone once the daemon gives it. */
json_t *cview_job_json(const JobOffer *o);

/* What is needed, in words: "午餐送餐 lunch delivery 2025-06-02" or "上门助浴 bathing
 * 2025-06-02". */
void cview_need(const JobOffer *o, char *out, size_t n);

/* A readable block of several lines for one job, headed by headline. now_ms (wall clock)
 * gives the time left to accept an offer. */
void cview_job_print(FILE *f, const JobOffer *o, const char *headline, int64_t now_ms);
/* One line for the `list` command. */
void cview_job_line(FILE *f, const JobOffer *o, int64_t now_ms);

#endif
