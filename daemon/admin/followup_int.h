/*
 * followup_int.h: what daemon/admin/followup*.c share. One operation type (FuOp) serves
 * both doors: the protocol door (followup.c) and the HTTP door (followup_http.c) fill it,
 * followup_op_check validates it, followup_op_run runs its SQL (followup_sql.c) and the
 * answer goes back through the door it came from, exactly once; that frees it.
 */
#ifndef CARELINE_FOLLOWUP_INT_H
#define CARELINE_FOLLOWUP_INT_H

#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>

#include "admin/followup.h"
#include "common/followup_format.h"
#include "net/conn.h"

#define FU_NOTE_MAX      500 /* bytes of a note, as followup_events.note */
#define FU_LIMIT_DEFAULT 100
#define FU_LIMIT_MAX     500
#define FUS(x)           CARELINE__V1__FOLLOWUP_STATE__FOLLOWUP_##x
#define FUERR(x)         CARELINE__V1__ERROR_CODE__##x

struct Followups {
    const Env *env; /* borrowed from the server */
    Bureau *bureau; /* borrowed: the HTTP auth rules */
};

typedef struct FuOp {
    const Env *env;
    bool mark;        /* FollowupMark, else FollowupQuery */
    int64_t station;  /* the caller's scope: a station id, or 0 for the admin (the county) */
    char actor[96];   /* followup_events.actor: "admin:<principal>" or "station:<id>" */
    char village[16]; /* list filter ("" = any) */
    char town[16];    /* list filter ("" = any) */
    int state;        /* FollowupState: the list filter (0 = any) or the mark's */
    int64_t after;    /* list: ids above this */
    uint32_t limit;   /* list: rows (0 = FU_LIMIT_DEFAULT) */
    int64_t id;       /* mark: the follow-up */
    char note[FU_NOTE_MAX + 1];
    char set_village[16]; /* mark: the caller's village learnt on the call ("" = unchanged) */
    bool bad_text;        /* a string was too long to copy: reported by the check */
    const char *bad_field;
    /* the door */
    Conn *c; /* protocol: ref held, counted in flight; NULL for HTTP */
    uint64_t seq;
    struct evhttp_request *h; /* HTTP: NULL once its connection went away */
    bool csv;                 /* HTTP list: text/csv */
} FuOp;

/* A new operation for env (the door fills the rest). */
FuOp *followup_op_new(const Env *env);
/* Releases the Conn (ref, in flight) or stops watching the HTTP request; frees op. */
void followup_op_free(FuOp *op);
/* Checks op's fields; on a bad one answers INVALID_ARGUMENT naming it (op freed) and
 * returns false. No I/O. */
bool followup_op_check(FuOp *op) MUSTCHECK;
/* Runs the list or the mark; answers op. */
void followup_op_run(FuOp *op);

/* Answers an error through op's door (HTTP: the status of the code, and the field's HTTP
 * name) and frees op. field may be NULL. */
void followup_op_fail(FuOp *op, int code, const char *field, const char *fmt, ...)
    PRINTF_LIKE(4, 5);
/* Answers a list (fs, n, more) or a mark (one follow-up) and frees op. */
void followup_op_reply(FuOp *op, Careline__V1__Followup **fs, size_t n, bool more);

/* The protocol door's SessionHandlers (arg: the Followups); the fuzz harness calls them. */
void followup_handle_query(void *arg, Conn *c, Envelope *env);
void followup_handle_mark(void *arg, Conn *c, Envelope *env);

void followup_proto_install(Followups *f);
void followup_http_install(Followups *f);

#endif
