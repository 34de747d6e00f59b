/*
 * stindex_grid: a uniform latitude/longitude grid of station entries, all cells' entries pooled
 * in one array in row-major cell order (CSR-style, a little slack per cell, an overflow
 * chain per cell for what does not fit until the next rebuild).
 *
 * Why a grid and not a k-d tree: every query here is a fixed-radius search whose radius is
 * about one service circle (3-6 km), and stations are a few per circle even nationally
 * (600k stations over China's ~2,200 square degrees is ~0.7 per 0.05-degree cell). A grid with
 * cells about one circle wide answers with 2x2 to 3x3 cell visits and a handful of distance
 * computations, no tree descent and no rebalancing: upsert/remove touch one or two cells.
 * A k-d tree would need rebuilds or a dynamic variant for LISTEN/NOTIFY refresh and wins
 * only for unbounded k-nearest queries, which dispatch never asks (the circle bounds it).
 * The grid spans the stations' bounding box at build time (China at 0.05 deg: 720 x 1240
 * cells); later stations outside it are kept in the clamped edge cell (still
 * found, since query ranges are clamped the same way) until enough of them trigger a rebuild.
 *
 * Speed: a query's cost is cache misses (random queries over ~60 MB). A row's column range
 * is one contiguous span of the pool, and slot p holds the station at pool place p after a
 * build, so the station records of a span are contiguous too; all spans (and, before them,
 * the small qstart[] headers) are prefetched up front so the rows' misses overlap.
 */
#include "core/stindex_int.h"
#include "base/geo.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define GRID_MIN_CAP (1u << 20)

static bool is_outside(const StIndex *ix, double lat, double lon)
{
    double r = st_row_raw(ix, lat), c = st_col_raw(ix, lon);
    return r < 0.0 || r >= (double)ix->rows || c < 0.0 || c >= (double)ix->cols;
}

static uint32_t cell_index(const StIndex *ix, double lat, double lon)
{
    return st_clamp_idx(st_row_raw(ix, lat), ix->rows) * ix->cols +
           st_clamp_idx(st_col_raw(ix, lon), ix->cols);
}

static void entry_set(Entry *e, const StStation *st, uint32_t slot)
{
    e->lat = st->lat * GEO_DEG2RAD;
    e->lon = st->lon * GEO_DEG2RAD;
    e->cos_lat = cos(e->lat);
    e->slot = slot;
    e->next = ST_NONE;
}

static uint32_t cell_cap(const StIndex *ix, uint32_t ci)
{
    return ix->cells[ci + 1].start - ix->cells[ci].start;
}

void stgrid_add(StIndex *ix, uint32_t slot)
{
    const StStation *st = &ix->st[slot];
    uint32_t ci = cell_index(ix, st->lat, st->lon);
    Cell *c = &ix->cells[ci];
    if (c->n < cell_cap(ix, ci)) {
        uint32_t p = c->start + c->n++;
        entry_set(&ix->pool[p], st, slot);
        ix->pos_of[slot] = p;
    } else {
        uint32_t o = ix->ovf_free;
        if (o != ST_NONE) {
            ix->ovf_free = ix->ovf[o].next;
        } else {
            if (ix->n_ovf_used == ix->cap_ovf) {
                ix->cap_ovf = ix->cap_ovf ? ix->cap_ovf * 2 : 64;
                ASSERT(ix->cap_ovf < ST_OVF_BIT);
                ix->ovf = xrealloc(ix->ovf, ix->cap_ovf * sizeof(*ix->ovf));
            }
            o = (uint32_t)ix->n_ovf_used++;
        }
        entry_set(&ix->ovf[o], st, slot);
        ix->ovf[o].next = c->ovf;
        c->ovf = o;
        ix->ovf_bits[ci / 64] |= 1ull << (ci % 64);
        ix->pos_of[slot] = o | ST_OVF_BIT;
        ix->n_ovf++;
    }
    ix->cell_of[slot] = ci;
    if (is_outside(ix, st->lat, st->lon))
        ix->outside++;
}

/* Unlinks overflow entry o from cell c's chain and frees it. */
static void ovf_unlink(StIndex *ix, Cell *c, uint32_t o)
{
    uint32_t *link = &c->ovf;
    while (*link != o) {
        ASSERT(*link != ST_NONE);
        link = &ix->ovf[*link].next;
    }
    *link = ix->ovf[o].next;
    if (c->ovf == ST_NONE) {
        size_t ci = (size_t)(c - ix->cells);
        ix->ovf_bits[ci / 64] &= ~(1ull << (ci % 64));
    }
    ix->ovf[o].next = ix->ovf_free;
    ix->ovf_free = o;
    ix->n_ovf--;
}

void stgrid_del(StIndex *ix, uint32_t slot)
{
    Cell *c = &ix->cells[ix->cell_of[slot]];
    uint32_t p = ix->pos_of[slot];
    if (p & ST_OVF_BIT) {
        ASSERT(ix->ovf[p & ~ST_OVF_BIT].slot == slot);
        ovf_unlink(ix, c, p & ~ST_OVF_BIT);
    } else {
        ASSERT(p >= c->start && p < c->start + c->n && ix->pool[p].slot == slot);
        uint32_t last = c->start + --c->n;
        if (p != last) {
            ix->pool[p] = ix->pool[last];
            ix->pos_of[ix->pool[p].slot] = p;
        }
        ix->pool[last].lat = NAN; /* dead until refilled */
        ix->pool[last].slot = ST_NONE;
        if (c->ovf != ST_NONE) { /* the freed pool place takes one overflow entry back */
            uint32_t o = c->ovf;
            uint32_t q = c->start + c->n++;
            ix->pool[q] = ix->ovf[o];
            ix->pool[q].next = ST_NONE;
            ix->pos_of[ix->pool[q].slot] = q;
            ovf_unlink(ix, c, o);
        }
    }
    if (is_outside(ix, ix->st[slot].lat, ix->st[slot].lon))
        ix->outside--;
    ix->cell_of[slot] = ST_NONE;
    ix->pos_of[slot] = ST_NONE;
}

/* Large arrays that queries touch at random: ask for transparent huge pages so the TLB
 * is not a second miss per access (advisory; plain malloc memory otherwise). */
static void *big_alloc(size_t size)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    enum { HUGEPAGE_BYTES = 2u << 20 };
    if (size >= HUGEPAGE_BYTES) {
        void *p = NULL;
        size_t rounded = (size + HUGEPAGE_BYTES - 1) / HUGEPAGE_BYTES * HUGEPAGE_BYTES;
        if (posix_memalign(&p, HUGEPAGE_BYTES, rounded) == 0) {
            (void)madvise(p, rounded, MADV_HUGEPAGE);
            return p;
        }
    }
#endif
    return xmalloc(size ? size : 1);
}

void stgrid_free(StIndex *ix)
{
    free(ix->cells);
    free(ix->qstart);
    free(ix->ovf_bits);
    ix->qstart = NULL;
    ix->ovf_bits = NULL;
    free(ix->pool);
    free(ix->ovf);
    ix->cells = NULL;
    ix->pool = NULL;
    ix->ovf = NULL;
    ix->cap_ovf = ix->n_ovf_used = 0;
    ix->n_ovf = 0;
    ix->ovf_free = ST_NONE;
}

/* (Re)builds the grid over the bounding box of the live stations: one pooled entry array
 * in row-major cell order with a little slack per non-empty cell, and the slots renumbered
 * in the same order so a query's station records are as contiguous as its entries. */
void stgrid_build(StIndex *ix)
{
    stgrid_free(ix);
    double la0 = 90.0, la1 = -90.0, lo0 = 180.0, lo1 = -180.0;
    for (size_t s = 0; s < ix->n_slots; s++) {
        if (ix->pos_of[s] == ST_NONE)
            continue;
        const StStation *st = &ix->st[s];
        la0 = fmin(la0, st->lat), la1 = fmax(la1, st->lat);
        lo0 = fmin(lo0, st->lon), lo1 = fmax(lo1, st->lon);
    }
    if (la0 > la1)
        la0 = la1 = lo0 = lo1 = 0.0;
    size_t cap = ix->n_live * 2 > GRID_MIN_CAP ? ix->n_live * 2 : GRID_MIN_CAP;
    double cell = ix->cell_req;
    for (;;) {
        double r = floor((la1 - la0) / cell) + 1.0, c = floor((lo1 - lo0) / cell) + 1.0;
        if (r * c <= (double)cap) {
            ix->rows = (uint32_t)r, ix->cols = (uint32_t)c;
            break;
        }
        cell *= 1.25;
    }
    ix->cell_deg = cell, ix->lat0 = la0, ix->lon0 = lo0;
    size_t ncells = (size_t)ix->rows * ix->cols;
    ix->cells = big_alloc((ncells + 1) * sizeof(*ix->cells));
    memset(ix->cells, 0, (ncells + 1) * sizeof(*ix->cells));
    ix->outside = 0;
    /* count per cell (in .n), then lay out starts with slack, then place */
    for (size_t s = 0; s < ix->n_slots; s++)
        if (ix->pos_of[s] != ST_NONE)
            ix->cells[cell_index(ix, ix->st[s].lat, ix->st[s].lon)].n++;
    size_t total = 0;
    for (size_t i = 0; i <= ncells; i++) {
        Cell *c = &ix->cells[i];
        c->start = (uint32_t)total;
        c->ovf = ST_NONE;
        if (c->n)
            total += (size_t)c->n + c->n / 8 + 1;
        c->n = 0;
        ASSERT(total < ST_OVF_BIT);
    }
    ix->pool = big_alloc(total * sizeof(*ix->pool));
    ix->qstart = big_alloc((ncells + 1) * sizeof(*ix->qstart));
    for (size_t i = 0; i <= ncells; i++)
        ix->qstart[i] = ix->cells[i].start;
    ix->ovf_bits = xcalloc(ncells / 64 + 1, sizeof(*ix->ovf_bits));
    /* placement: pool[p].slot is still the old slot here */
    for (size_t s = 0; s < ix->n_slots; s++) {
        if (ix->pos_of[s] == ST_NONE)
            continue;
        Cell *c = &ix->cells[cell_index(ix, ix->st[s].lat, ix->st[s].lon)];
        entry_set(&ix->pool[c->start + c->n++], &ix->st[s], (uint32_t)s);
    }
    /* renumber: the station at pool position p gets slot p, so a query's station records
     * lie in the same order as its entries; the slack positions become free slots */
    size_t ncap = total > 16 ? total : 16;
    uint32_t *perm = xmalloc((ix->n_slots ? ix->n_slots : 1) * sizeof(*perm));
    StStation *nst = big_alloc(ncap * sizeof(*nst));
    uint32_t *ncell = xmalloc(ncap * sizeof(*ncell));
    uint32_t *npos = xmalloc(ncap * sizeof(*npos));
    uint32_t *nfree = xmalloc(ncap * sizeof(*nfree));
    size_t nf = 0;
    for (size_t i = 0; i < ncells; i++) {
        Cell *c = &ix->cells[i];
        uint32_t end = ix->cells[i + 1].start;
        for (uint32_t p = c->start; p < end; p++) {
            if (p >= c->start + c->n) {
                ix->pool[p].lat = NAN;
                ix->pool[p].slot = ST_NONE;
                ix->pool[p].next = ST_NONE;
                ncell[p] = ST_NONE, npos[p] = ST_NONE;
                continue;
            }
            uint32_t old = ix->pool[p].slot;
            nst[p] = ix->st[old];
            perm[old] = p;
            ix->pool[p].slot = p;
            ncell[p] = (uint32_t)i;
            npos[p] = p;
            if (is_outside(ix, nst[p].lat, nst[p].lon))
                ix->outside++;
        }
    }
    for (size_t p = total; p-- > 0;)
        if (npos[p] == ST_NONE)
            nfree[nf++] = (uint32_t)p;
    for (size_t b = 0; b < ix->h_cap; b++)
        if (ix->h_val[b] != ST_NONE)
            ix->h_val[b] = perm[ix->h_val[b]];
    free(perm);
    free(ix->st);
    free(ix->cell_of);
    free(ix->pos_of);
    free(ix->free_slot);
    ix->st = nst, ix->cell_of = ncell, ix->pos_of = npos, ix->free_slot = nfree;
    ix->cap_slots = ncap;
    ix->n_slots = total;
    ix->n_free = nf;
}

/* ---- lifecycle and updates --------------------------------------------------------------- */
