/*
 * lg_hist: log-linear buckets in the spirit of HdrHistogram with 5 significant bits: the
 * bucket of v is found from its highest set bit and the 5 bits below it, so recording is a
 * clz, a shift and an increment.
 */
#include "lg_hist.h"

#include <stdlib.h>

#include "common/util.h"

#define LG_SUB      64                      /* exact values below this */
#define LG_HALF     32                      /* linear sub-buckets per power of two above */
#define LG_NBUCKETS (LG_SUB + 58 * LG_HALF) /* highest set bit 6..63 */

struct LgHist {
    uint64_t counts[LG_NBUCKETS];
    uint64_t n;        /* sum of counts */
    uint64_t min, max; /* exact extremes of the recorded values; min valid when n > 0 */
    long double sum;   /* for the mean */
};

static int bucket_of(uint64_t v)
{
    if (v < LG_SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v); /* >= 6 */
    int shift = msb - 5;               /* v >> shift lies in [32, 63] */
    return LG_SUB + (shift - 1) * LG_HALF + (int)((v >> shift) - LG_HALF);
}

static uint64_t bucket_hi(int i)
{
    if (i < LG_SUB)
        return (uint64_t)i;
    int j = i - LG_SUB;
    int shift = j / LG_HALF + 1;
    uint64_t sub = (uint64_t)(j % LG_HALF + LG_HALF);
    return ((sub + 1) << shift) - 1;
}

LgHist *lg_hist_new(void)
{
    return xcalloc(1, sizeof(LgHist));
}

void lg_hist_free(LgHist *h)
{
    free(h);
}

void lg_hist_reset(LgHist *h)
{
    *h = (LgHist){0};
}

void lg_hist_record(LgHist *h, uint64_t v)
{
    h->counts[bucket_of(v)]++;
    if (h->n == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->n++;
    h->sum += v;
}

void lg_hist_merge(LgHist *dst, const LgHist *src)
{
    if (src->n == 0)
        return;
    for (int i = 0; i < LG_NBUCKETS; i++)
        dst->counts[i] += src->counts[i];
    if (dst->n == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->n += src->n;
    dst->sum += src->sum;
}

uint64_t lg_hist_count(const LgHist *h)
{
    return h->n;
}

uint64_t lg_hist_min(const LgHist *h)
{
    return h->n ? h->min : 0;
}

uint64_t lg_hist_max(const LgHist *h)
{
    return h->max;
}

double lg_hist_mean(const LgHist *h)
{
    return h->n ? (double)(h->sum / h->n) : 0.0;
}

uint64_t lg_hist_quantile(const LgHist *h, double q)
{
    if (h->n == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999999);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < LG_NBUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t hi = bucket_hi(i);
            return hi > h->max ? h->max : (hi < h->min ? h->min : hi);
        }
    }
    return h->max;
}
