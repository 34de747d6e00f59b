/*
 * pgcols: result columns by name. A reader lists the columns it wants (an enum and a
 * matching array of names), binds them to a result once, and reads cells through the bound
 * numbers, so a column added, dropped or moved in SQL never shifts what a field means: a
 * missing column is an error the caller reports, never a silently wrong value.
 *
 *   enum { C_ID, C_NAME, C_N };
 *   static const char *const cols[C_N] = {"id", "name"};
 *   PgCols pc = {0};
 *   if (!pgcols_bind(&pc, res, cols, C_N)) ... log pc.missing ...
 *   int64_t id = pgcols_ll(&pc, row, C_ID);
 *
 * A PgCols starts zeroed, and borrows res and names; rebinding to the same res is cheap
 * (per-row callbacks of a batch call pgcols_bind for every row: later rows only confirm each
 * bound number still names its column, so a new result at a reused address is safe).
 */
#ifndef CARELINE_PGCOLS_H
#define CARELINE_PGCOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/util.h"

#define PGCOLS_MAX 48

typedef struct PgCols {
    const PGresult *res;      /* the result bound to (borrowed) */
    const char *const *names; /* the names bound (borrowed) */
    int ix[PGCOLS_MAX];       /* column number per wanted name */
    const char *missing;      /* after a failed bind: the first name not in the result */
} PgCols;

/* Looks each of names[0..n) up in res (n <= PGCOLS_MAX); false if one is missing. */
bool pgcols_bind(PgCols *pc, const PGresult *res, const char *const *names, size_t n) MUSTCHECK;

/* Cells of the bound result by wanted column k. A NULL reads as "", 0 or false. */
const char *pgcols_str(const PgCols *pc, int row, int k);
bool pgcols_null(const PgCols *pc, int row, int k);
int64_t pgcols_ll(const PgCols *pc, int row, int k);
int pgcols_int(const PgCols *pc, int row, int k);
double pgcols_double(const PgCols *pc, int row, int k);
bool pgcols_bool(const PgCols *pc, int row, int k); /* PostgreSQL's 't' */

#endif
