/*
 * admin_proto: the protocol door. An AdminRequest (the session already checked that only
 * the admin role sends it) becomes careline_admin's document: its args map as an object,
 * its records as an array of objects; the frame is freed once copied.
 */
#include "admin/admin_int.h"

#include "net/session.h"

static json_t *map_object(size_t n, Careline__V1__AdminRequest__ArgsEntry **kv)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, kv[i]->key ? kv[i]->key : "",
                            json_string(kv[i]->value ? kv[i]->value : ""));
    return o;
}

static void handle_request(void *arg, Conn *c, Envelope *env)
{
    Admin *a = arg;
    const Careline__V1__AdminRequest *q = env->admin_request;
    AdminReq *r = admin_req_new(a, q->op ? q->op : "", c, env->seq, NULL);
    json_object_set_new(r->doc, "args", map_object(q->n_args, q->args));
    if (q->reason && q->reason[0])
        json_object_set_new(r->doc, "reason", json_string(q->reason));
    if (q->n_records > 0) {
        json_t *recs = json_array();
        for (size_t i = 0; i < q->n_records; i++) {
            json_t *o = json_object();
            for (size_t j = 0; j < q->records[i]->n_fields; j++) {
                const Careline__V1__AdminRecord__FieldsEntry *f = q->records[i]->fields[j];
                json_object_set_new(o, f->key ? f->key : "", json_string(f->value ? f->value : ""));
            }
            json_array_append_new(recs, o);
        }
        json_object_set_new(r->doc, "records", recs);
    }
    json_object_set_new(r->doc, "dry_run", json_boolean(q->dry_run));
    frame_free(env);
    admin_req_run(r, c->principal_id, c->principal);
}

void admin_proto_install(Admin *a)
{
    session_route(a->env->sessions, CARELINE__V1__ENVELOPE__BODY_ADMIN_REQUEST, handle_request, a);
}
