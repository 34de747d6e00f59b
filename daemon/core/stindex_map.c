/*
 * stindex_map: station id -> slot, an open-addressing table with linear probing and
 * backward-shift deletion (no tombstones, so lookups never slow down after many removes),
 * kept at most half full.
 */
#include "core/stindex_int.h"

#include <stdlib.h>
#include <string.h>

void stmap_init(StIndex *ix, size_t n)
{
    ix->h_cap = 16;
    while (ix->h_cap < 2 * n + 2)
        ix->h_cap *= 2;
    ix->h_key = xmalloc(ix->h_cap * sizeof(*ix->h_key));
    ix->h_val = xmalloc(ix->h_cap * sizeof(*ix->h_val));
    memset(ix->h_val, 0xff, ix->h_cap * sizeof(*ix->h_val));
}

static size_t stmap_bucket(const StIndex *ix, int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (size_t)(x ^ (x >> 29)) & (ix->h_cap - 1);
}

uint32_t stmap_find(const StIndex *ix, int64_t id)
{
    for (size_t b = stmap_bucket(ix, id);; b = (b + 1) & (ix->h_cap - 1)) {
        if (ix->h_val[b] == ST_NONE)
            return ST_NONE;
        if (ix->h_key[b] == id)
            return ix->h_val[b];
    }
}

static void stmap_put_raw(StIndex *ix, int64_t id, uint32_t slot)
{
    size_t b = stmap_bucket(ix, id);
    while (ix->h_val[b] != ST_NONE)
        b = (b + 1) & (ix->h_cap - 1);
    ix->h_key[b] = id;
    ix->h_val[b] = slot;
}

static void stmap_resize(StIndex *ix, size_t cap)
{
    int64_t *ok = ix->h_key;
    uint32_t *ov = ix->h_val;
    size_t ocap = ix->h_cap;
    ix->h_cap = cap;
    ix->h_key = xmalloc(cap * sizeof(*ix->h_key));
    ix->h_val = xmalloc(cap * sizeof(*ix->h_val));
    memset(ix->h_val, 0xff, cap * sizeof(*ix->h_val));
    for (size_t b = 0; b < ocap; b++)
        if (ov[b] != ST_NONE)
            stmap_put_raw(ix, ok[b], ov[b]);
    free(ok);
    free(ov);
}

void stmap_put(StIndex *ix, int64_t id, uint32_t slot)
{
    if ((ix->n_live + 1) * 2 > ix->h_cap)
        stmap_resize(ix, ix->h_cap * 2);
    stmap_put_raw(ix, id, slot);
}

void stmap_del(StIndex *ix, int64_t id)
{
    size_t mask = ix->h_cap - 1, b = stmap_bucket(ix, id);
    while (ix->h_key[b] != id || ix->h_val[b] == ST_NONE) {
        ASSERT(ix->h_val[b] != ST_NONE);
        b = (b + 1) & mask;
    }
    /* backward-shift: pull later members of the probe run into the hole */
    for (size_t j = (b + 1) & mask; ix->h_val[j] != ST_NONE; j = (j + 1) & mask) {
        size_t home = stmap_bucket(ix, ix->h_key[j]);
        if (((j - home) & mask) >= ((j - b) & mask)) {
            ix->h_key[b] = ix->h_key[j];
            ix->h_val[b] = ix->h_val[j];
            b = j;
        }
    }
    ix->h_val[b] = ST_NONE;
}
