/*
 * admin_int.h: what the files of the admin module share; nothing outside daemon/admin/
 * includes it. One request type (AdminReq) serves both doors: admin_proto.c and
 * admin_http.c fill its JSON document, admin_run.c sends it to careline_admin(jsonb), does
 * the daemon's part of the outcome and answers exactly once (freeing the request).
 */
#ifndef CARELINE_ADMIN_INT_H
#define CARELINE_ADMIN_INT_H

#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "admin/admin.h"
#include "net/conn.h"

struct Admin {
    const Env *env;     /* borrowed */
    Dispatch *dispatch; /* borrowed: re-dispatch of a retired station's offers */
    Stations *st;       /* borrowed: its consoles are told */
};

typedef struct AdminReq {
    Admin *a;
    char op[32];
    json_t *doc; /* careline_admin's argument (owned) */
    /* protocol door */
    Conn *c; /* ref held, inflight counted; NULL for HTTP */
    uint64_t seq;
    /* HTTP door */
    struct evhttp_request *hreq; /* NULL once its connection went away */
    bool http;
    char secret[2 * 24 + 1]; /* token.issue: the new token, shown once */
} AdminReq;

/* A request for op from the door given (c != NULL: protocol, else HTTP hreq); doc starts as
 * {"op": op}. */
AdminReq *admin_req_new(Admin *a, const char *op, Conn *c, uint64_t seq,
                        struct evhttp_request *hreq);
/* Adds who asks (principal id and name) and, for token.issue, a fresh secret's hash; then
 * runs careline_admin and answers. */
void admin_req_run(AdminReq *r, int64_t principal_id, const char *principal);
/* Answers r with a failure of the request as a whole (Error frame, or JSON error with the
 * HTTP status of code) and frees it. */
void admin_req_fail(AdminReq *r, int code, const char *field, const char *msg);

/* HTTP only: sends o (borrowed) with status and frees r. */
void admin_req_send_json(AdminReq *r, int status, json_t *o);

/* true for the operations that change something (they need a reason, and POST). */
bool admin_op_changes(const char *op);

void admin_proto_install(Admin *a);
void admin_http_install(Admin *a);
void admin_revoke_install(Admin *a);

#endif
