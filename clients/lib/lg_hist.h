/*
 * lg_hist: a small HDR-style latency histogram for the load generator. Values (nanoseconds,
 * or any unsigned 64-bit quantity) fall into log-linear buckets: exact below 64, then 32
 * linear sub-buckets per power of two, so a reported percentile is within 1/32 (about 3%)
 * of the true value. Fixed size (about 15 KiB), no allocation after lg_hist_new, O(1) record.
 */
#ifndef CARELINE_LG_HIST_H
#define CARELINE_LG_HIST_H

#include <stdint.h>

typedef struct LgHist LgHist;

/* A new empty histogram; aborts on OOM (xcalloc). Free with lg_hist_free (NULL is a no-op). */
LgHist *lg_hist_new(void);
void lg_hist_free(LgHist *h);
void lg_hist_reset(LgHist *h);

void lg_hist_record(LgHist *h, uint64_t v);
/* Adds every count of src into dst. */
void lg_hist_merge(LgHist *dst, const LgHist *src);

uint64_t lg_hist_count(const LgHist *h);
uint64_t lg_hist_min(const LgHist *h); /* 0 when empty */
uint64_t lg_hist_max(const LgHist *h); /* exact */
double lg_hist_mean(const LgHist *h);
/* The value at quantile q (0..1): the upper edge of the bucket holding the ceil(q*n)-th
 * smallest value, capped at the exact max. 0 when empty. */
uint64_t lg_hist_quantile(const LgHist *h, double q);

#endif
