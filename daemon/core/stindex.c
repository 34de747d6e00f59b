/*
 * stindex: the station index's lifecycle and updates. Stations live in slots (StIndex.st);
 * an id map finds a station's slot (stindex_map.c) and a pooled grid finds the stations near
 * a point (stindex_grid.c, queried in stindex_query.c). An upsert or remove touches one or
 * two cells; the grid is rebuilt only when stations outside its extent, or overflow
 * entries, exceed n/16 + 64.
 */
#include "core/stindex_int.h"
#include "common/log.h"

#include <stdlib.h>

/* A free slot: a freed one first, else the next unused one (growing the arrays). */
static uint32_t slot_take(StIndex *ix)
{
    if (ix->n_free)
        return ix->free_slot[--ix->n_free];
    if (ix->n_slots == ix->cap_slots) {
        size_t cap = ix->cap_slots ? ix->cap_slots * 2 : 16;
        ASSERT(cap < ST_NONE);
        ix->st = xrealloc(ix->st, cap * sizeof(*ix->st));
        ix->cell_of = xrealloc(ix->cell_of, cap * sizeof(*ix->cell_of));
        ix->pos_of = xrealloc(ix->pos_of, cap * sizeof(*ix->pos_of));
        ix->free_slot = xrealloc(ix->free_slot, cap * sizeof(*ix->free_slot));
        ix->cap_slots = cap;
    }
    ix->cell_of[ix->n_slots] = ST_NONE;
    ix->pos_of[ix->n_slots] = ST_NONE;
    return (uint32_t)ix->n_slots++;
}

StIndex *stindex_new_sized(const StStation *stations, size_t n, double cell_deg)
{
    if (!(cell_deg > 0.0) || !isfinite(cell_deg)) {
        log_error("stindex: bad cell size %g", cell_deg);
        return NULL;
    }
    if (n >= ST_NONE / 2) {
        log_error("stindex: too many stations (%zu)", n);
        return NULL;
    }
    StIndex *ix = xcalloc(1, sizeof(*ix));
    ix->cell_req = cell_deg;
    stmap_init(ix, n);
    for (size_t i = 0; i < n; i++) {
        const StStation *st = &stations[i];
        if (!st_coord_ok(st->lat, st->lon)) {
            log_error("stindex: station %lld has a bad coordinate (%g, %g)", (long long)st->id,
                      st->lat, st->lon);
            goto fail;
        }
        if (stmap_find(ix, st->id) != ST_NONE) {
            log_error("stindex: station id %lld repeats", (long long)st->id);
            goto fail;
        }
        uint32_t s = slot_take(ix);
        ix->st[s] = *st;
        ix->pos_of[s] = 0; /* live; stgrid_build places it */
        stmap_put(ix, st->id, s);
        ix->n_live++;
    }
    stgrid_build(ix);
    return ix;
fail:
    stindex_free(ix);
    return NULL;
}

StIndex *stindex_new(const StStation *stations, size_t n)
{
    return stindex_new_sized(stations, n, STINDEX_CELL_DEG_DEFAULT);
}

void stindex_free(StIndex *ix)
{
    if (!ix)
        return;
    stgrid_free(ix);
    free(ix->st);
    free(ix->cell_of);
    free(ix->pos_of);
    free(ix->free_slot);
    free(ix->h_key);
    free(ix->h_val);
    free(ix);
}

size_t stindex_count(const StIndex *ix)
{
    return ix->n_live;
}

const StStation *stindex_get(const StIndex *ix, int64_t id)
{
    uint32_t s = stmap_find(ix, id);
    return s == ST_NONE ? NULL : &ix->st[s];
}

bool stindex_upsert(StIndex *ix, const StStation *st)
{
    if (!st_coord_ok(st->lat, st->lon))
        return false;
    uint32_t s = stmap_find(ix, st->id);
    if (s != ST_NONE) {
        stgrid_del(ix, s);
    } else {
        s = slot_take(ix);
        stmap_put(ix, st->id, s);
        ix->n_live++;
    }
    ix->st[s] = *st;
    stgrid_add(ix, s);
    if (ix->outside > ix->n_live / 16 + 64 || ix->n_ovf > ix->n_live / 16 + 64)
        stgrid_build(ix);
    return true;
}

bool stindex_remove(StIndex *ix, int64_t id)
{
    uint32_t s = stmap_find(ix, id);
    if (s == ST_NONE)
        return false;
    stgrid_del(ix, s);
    stmap_del(ix, id);
    ix->free_slot[ix->n_free++] = s;
    ix->n_live--;
    return true;
}
