/*
 * bureau: (stub) the coverage queries are not implemented yet.
 */
#include "bureau.h"

#include <stdlib.h>

#include "util.h"

struct Bureau {
    struct Server *srv;
};

Bureau *bureau_new(struct Server *s)
{
    Bureau *b = xcalloc(1, sizeof(*b));
    b->srv = s;
    return b;
}

void bureau_free(Bureau *b)
{
    free(b);
}
