/*
 * pgcols: PQfnumber once per result and name; the cell readers are thin casts over
 * PQgetvalue with the bound numbers.
 */
#include "store/pgcols.h"

#include <stdlib.h>
#include <string.h>

/* A new result may sit at a freed one's address: the numbers are reused only while each
 * still names its column (n comparisons instead of a search per name). */
static bool still_bound(const PgCols *pc, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const char *f = PQfname(pc->res, pc->ix[k]);
        if (!f || strcmp(f, pc->names[k]) != 0)
            return false;
    }
    return true;
}

bool pgcols_bind(PgCols *pc, const PGresult *res, const char *const *names, size_t n)
{
    ASSERT(n <= PGCOLS_MAX);
    if (pc->res == res && pc->names == names && !pc->missing && still_bound(pc, n))
        return true;
    pc->res = res;
    pc->names = names;
    pc->missing = NULL;
    for (size_t k = 0; k < n; k++) {
        /* PQfnumber folds unquoted names to lower case; ours are lower case already */
        pc->ix[k] = PQfnumber(res, names[k]);
        if (pc->ix[k] < 0) {
            pc->missing = names[k];
            return false;
        }
    }
    return true;
}

const char *pgcols_str(const PgCols *pc, int row, int k)
{
    return PQgetvalue(pc->res, row, pc->ix[k]);
}

bool pgcols_null(const PgCols *pc, int row, int k)
{
    return PQgetisnull(pc->res, row, pc->ix[k]);
}

int64_t pgcols_ll(const PgCols *pc, int row, int k)
{
    return strtoll(pgcols_str(pc, row, k), NULL, 10);
}

int pgcols_int(const PgCols *pc, int row, int k)
{
    return atoi(pgcols_str(pc, row, k));
}

double pgcols_double(const PgCols *pc, int row, int k)
{
    return strtod(pgcols_str(pc, row, k), NULL);
}

bool pgcols_bool(const PgCols *pc, int row, int k)
{
    return pgcols_str(pc, row, k)[0] == 't';
}
