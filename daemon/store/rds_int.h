/*
 * rds_int: the Redis client's private types and the calls between its files, for
 * daemon/store/rds*.c only (everyone else includes store/rds.h).
 *   rds.c        the client: the op FIFO with one deadline timer, scripts, the public
 *                rds_* calls except rds_subscribe
 *   rds_link.c   one link's state machine DOWN -> CONNECTING -> UP, connect timer, backoff
 *   rds_auth.c   the password file and the AUTH sent first on every new context
 *   rds_pubsub.c subscriptions on the pub/sub link and their deliveries
 * Every call here runs on the loop thread; none blocks.
 */
#ifndef CARELINE_RDS_INT_H
#define CARELINE_RDS_INT_H

#include "store/rds.h"

#include <stdint.h>

#include <hiredis/async.h>

#define RDS_BACKOFF_MIN_MS         100
#define RDS_BACKOFF_MAX_MS         5000
#define RDS_CONNECT_TIMEOUT_MIN_MS 1000
#define RDS_ERR_LEN                256
#define RDS_SECRET_MAX             512 /* bytes of a password (Redis ACL passwords are short) */

typedef enum {
    RDS_DOWN,       /* ac == NULL; timer = backoff (unless closing) */
    RDS_CONNECTING, /* ac set, connect (and AUTH) in progress; timer = connect deadline */
    RDS_UP,         /* ac connected */
    RDS_CLOSING,    /* rds_free in progress */
} RdsState;

typedef struct RdsLink {
    Rds *r;                /* owner */
    const char *name;      /* "redis" or "redis pubsub", for logs */
    bool is_sub;           /* the pub/sub link */
    RdsState state;        /* see RdsState */
    redisAsyncContext *ac; /* NULL while DOWN; hiredis owns and frees it */
    bool failing;          /* hiredis is failing the pending callbacks; refuse new ops */
    struct event *timer;   /* backoff or connect deadline, by state */
    int backoff_ms;        /* next reconnect base delay */
    unsigned failures;     /* failed attempts since the link was last up */
    uint64_t ups;          /* times the link came up (rds_link_epoch) */
} RdsLink;

typedef struct RdsOp RdsOp;
struct RdsOp {
    RdsOp *prev, *next; /* r's inflight FIFO */
    Rds *r;             /* owner */
    RdsReplyCb cb;      /* called exactly once, then the op is freed */
    void *arg;          /* opaque for cb */
    int64_t deadline;   /* util_now_ms() after which the link is reset */
    RdsScript *script;  /* rds_eval only: for the NOSCRIPT fallback */
    int argc;           /* rds_eval only: argv for a re-send as EVAL */
    const char **argv;  /* [0] verb, [1] sha or source, [2] nkeys, then keys+args in blob */
    size_t *argvlen;
    char *blob;     /* owned copy of keys+args */
    char nkeys[16]; /* decimal nkeys, argv[2] points here */
    bool retried;   /* already re-sent as EVAL */
};

struct RdsScript {
    RdsScript *next; /* r's script list */
    char *src;       /* owned Lua source */
    size_t len;      /* strlen(src) */
    char sha[41];    /* lowercase hex SHA1 of src */
};

typedef struct RdsSub RdsSub;
struct RdsSub {
    RdsSub *next;    /* r's subscription list */
    Rds *r;          /* owner */
    char *channel;   /* owned copy */
    RdsMessageCb cb; /* messages and (re)subscribe events */
    void *arg;       /* opaque for cb */
};

struct Rds {
    struct event_base *base;
    char *host; /* owned IP string */
    int port;
    char *user;                        /* ACL user for AUTH; NULL = the default user */
    char *password_file;               /* NULL = no AUTH */
    char password[RDS_SECRET_MAX + 1]; /* last good read of password_file; never logged */
    size_t password_len;
    bool password_file_warned; /* a re-read failed (logged once; the last good one is used) */
    bool auth_warned;          /* a refused AUTH was logged since a link was last up */
    int op_timeout_ms;         /* op deadline */
    int max_inflight;          /* cap on ninflight */
    RdsLink cmd;               /* command link */
    RdsLink sub;               /* pub/sub link, started by the first rds_subscribe */
    bool sub_started;          /* sub link has been started */
    RdsOp *head, *tail;        /* inflight FIFO */
    size_t ninflight;          /* entries in the FIFO */
    struct event *op_timer;    /* fires at the head's deadline */
    const char *drop_reason;   /* err for NULL replies while we free a link on purpose */
    RdsScript *scripts;
    RdsSub *subs;
    bool closing; /* rds_free in progress */
    int cb_depth; /* > 0 while a user callback runs */
    uint32_t rng; /* xorshift state for backoff jitter */
};

/* ---- rds_link.c ---- */

/* Sets up l (DOWN, its timer created) without connecting. */
void rds_link_init(Rds *r, RdsLink *l, const char *name, bool is_sub);

/* Starts a connect of a DOWN link; a failure to start schedules a retry with backoff. */
void rds_link_connect(RdsLink *l);

/* The link works (connected, and authenticated when we have a password): UP, backoff reset,
 * the pub/sub link resubscribes every channel. */
void rds_link_up(RdsLink *l);

/* The link is gone (the caller has let go of ac): log and schedule a reconnect, unless
 * closing. auth_refused: the failure is a refused AUTH (logged once for both links). */
void rds_link_down_why(RdsLink *l, const char *why, bool auth_refused);
void rds_link_down(RdsLink *l, const char *why);

/* Drops a live or connecting link on purpose; every pending hiredis callback fires with NULL
 * (err r->drop_reason) before it returns. Never from inside a hiredis callback. */
void rds_link_drop(RdsLink *l, const char *reason);

/* ---- rds_auth.c ---- */

/* Reads the first line of r->password_file into r->password; false with a sentence in err
 * (never the password) when the file is missing, unreadable, others may read it, or its
 * first line is empty or too long. */
bool rds_password_load(Rds *r, char *err, size_t errlen) MUSTCHECK;

/* Re-reads the password file and queues AUTH [user] password as ac's first command; its
 * answer brings l up or down. false when hiredis refused the command. */
bool rds_auth_send(RdsLink *l, redisAsyncContext *ac) MUSTCHECK;

/* ---- rds_pubsub.c ---- */

/* Sends SUBSCRIBE for s on the (up) pub/sub link l; a refusal is logged. */
void rds_pubsub_send(RdsLink *l, RdsSub *s);

#endif
