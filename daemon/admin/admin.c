/*
 * admin: the module's life cycle. The doors (admin_proto.c, admin_http.c), the run and the
 * answers (admin_run.c) and the revocation listener (admin_revoke.c) are installed here;
 * the operations themselves are SQL functions (sql/functions/admin*.sql), one per
 * operation, each checking, writing and auditing in one transaction.
 */
#include "admin/admin_int.h"

#include <stdlib.h>

Admin *admin_new(const Env *env, Dispatch *dispatch, Stations *st)
{
    Admin *a = xcalloc(1, sizeof(*a));
    a->env = env;
    a->dispatch = dispatch;
    a->st = st;
    admin_proto_install(a);
    admin_http_install(a);
    admin_revoke_install(a);
    return a;
}

void admin_free(Admin *a)
{
    free(a);
}
