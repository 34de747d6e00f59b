/*
 * console_state: bin/station-console's state, shared by its modules: the options, the
 * table of open jobs keyed by job id, the requests in flight, the link's state machine and
 * the screen. One poll() loop owns it all (no threads); every function here runs on it.
 * console_state.c: output, the job table, sending and auto mode; console_session.c: the
 * link and what the daemon sends; console_cmd.c: the operator's commands.
 */
#ifndef CARELINE_CONSOLE_STATE_H
#define CARELINE_CONSOLE_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl.h"
#include "common/util.h"
#include "console_link.h"
#include "console_view.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
#define CONNECT_TIMEOUT_MS 5000
#define HELLO_TIMEOUT_MS   10000
#define SETTLE_MS          5000 /* after a reconnect, jobs not resent by then are gone */
#define DEAD_AFTER_BEATS   3    /* silence for this many heartbeats: the link is dead */
#define FINISHED_RING      4096 /* finished job ids remembered, to ignore their late pushes */
#define MAX_NOTE           500  /* the daemon's limit on JobUpdate.note */
#define EXIT_USAGE         2    /* bad arguments, no token, or the token was refused */

typedef struct {
    const char *host, *token_arg, *tokens_file;
    int port;
    long station;
    bool json, auto_accept;
    long complete_after_ms; /* -1: off */
    int reject_all;         /* ReasonCode; 0: off */
    long exit_after;        /* 0: off */
    int caregivers;         /* -1: not given */
    TlsClientOpts tls;      /* --ca, --cert, --key, --plaintext */
} Opts;

typedef struct {
    ClEnvelope *env; /* owns the latest push for this job */
    JobOffer *o;     /* env->job_offer; its state follows our own updates too */
    bool resent;     /* pushed again since the last HelloOk */
    bool busy;       /* an update of ours is in flight for it */
    int64_t due_ms;  /* auto mode: when next_action is due (monotonic); 0 = none */
    int next_action;
} Job;

typedef struct {
    uint64_t seq;
    int64_t job_id; /* 0 for a StationStatus */
    int action;
    bool open; /* StationStatus: the open flag sent */
    int slot;  /* StationStatus: the capacity reported, if any (slot 0: none) */
    int capacity;
    char date[11]; /* "" = today */
} Pending;

typedef enum {
    LINK_DOWN,       /* waiting for retry_at */
    LINK_CONNECTING, /* TCP connect in progress */
    LINK_HELLO,      /* Hello sent, waiting for HelloOk */
    LINK_UP,         /* authenticated; pushes flow */
} LinkState;

typedef struct {
    Opts opt;
    char *token;
    bool interactive_tty; /* text mode with a terminal on stdin: show a prompt */
    ClinkConn *link;
    LinkState state;
    bool was_up;           /* the last connection got as far as HelloOk */
    int64_t deadline_ms;   /* CONNECTING / HELLO: give up at */
    int64_t retry_at_ms;   /* DOWN: next attempt */
    int64_t backoff_ms;    /* the next wait; BACKOFF_MIN_MS..BACKOFF_MAX_MS */
    unsigned failures;     /* failed attempts since the last success */
    uint32_t heartbeat_ms; /* from HelloOk */
    int64_t next_ping_ms, last_rx_ms, settle_at_ms;
    char position[80]; /* the last feed position the daemon gave: StationResume sends it */
    uint64_t next_seq, ping_nonce;
    int64_t station_id;
    char station_name[128];
    Job *jobs;
    size_t njobs, capjobs;
    Pending *pend;
    size_t npend, cappend;
    int64_t finished[FINISHED_RING]; /* ring of recently finished job ids */
    size_t nfinished_ring;
    long finished_count; /* jobs seen reaching a final state (for --exit-after) */
    bool open_known, open;
    int staff; /* caregivers on duty to report; -1 unknown */
    bool stdin_open;
    char line[2048];
    size_t linelen;
    bool line_too_long;
    bool printed; /* something went to the screen since the last prompt */
    bool quit;
    int exit_code;
} Console;

/* ---- output (console_state.c) ---- */
/* Writes what is buffered for the screen or the JSON stream. */
void con_flush(Console *c);
/* --json: writes j as one line (takes ownership of j). */
void con_emit(Console *c, json_t *j);
/* Text mode: one formatted message for the operator. */
void con_say(Console *c, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* An error of our own making (code, e.g. "USAGE"), as text or a JSON event. */
void con_local_error(Console *c, const char *code, const char *fmt, ...) PRINTF_LIKE(3, 4);
#define con_usage_error(c, ...) con_local_error(c, "USAGE", __VA_ARGS__)
/* Shows the prompt when the operator is at a terminal and something was printed. */
void con_prompt(Console *c);
/* ---- the job table, keyed by job id ---- */
Job *con_job_find(Console *c, int64_t id);
/* Adds a job for a pushed offer; takes ownership of env. */
Job *con_job_add(Console *c, ClEnvelope *env);
/* qsort order of the table (by job id). */
int con_job_cmp(const void *a, const void *b);
void con_job_remove(Console *c, Job *j);
/* true when id reached a final state recently (its late pushes are ignored). */
bool con_finished_has(const Console *c, int64_t id);
void con_job_finished(Console *c, int64_t id);
/* ---- sending ---- */
/* Queues env on the link (seq as given); false unless the link is up (Hello excepted). */
bool con_send_env(Console *c, ClEnvelope *env);
/* Takes the request in flight with this seq off the pending list. */
bool con_pending_take(Console *c, uint64_t seq, Pending *out);
bool con_send_update(Console *c, int64_t job_id, int action, int reason, const char *note);
bool con_send_status(Console *c, bool open, int slot, int capacity, const char *date);
/* The action that finishes a job of this kind (COMPLETE for home care, else DELIVER). */
int con_done_action(const JobOffer *o);
/* Auto mode: schedules or takes the next step for j. */
void con_auto_step(Console *c, Job *j);
/* Auto mode: takes the steps that are due. */
void con_run_timers(Console *c, int64_t now);
/* ---- the link (console_session.c) ---- */
/* Starts connecting (or schedules the retry). */
void con_link_start(Console *c);
/* Does the link's I/O poll() reported and handles the frames received. */
void con_link_io(Console *c, short revents);
/* Deadlines: connect and Hello timeouts, heartbeats, reconnect, the backlog's settling. */
void con_link_tick(Console *c, int64_t now);
/* ---- commands (console_cmd.c) ---- */
/* The ReasonCode for a reason word (reject or fail), 0 when unknown. */
int con_reason_of(const char *w, bool fail);
/* Parses a whole number within lo..hi. */
bool con_parse_long(const char *w, long lo, long hi, long *out);
/* Reads what stdin has and runs each complete command line. */
void con_stdin_read(Console *c);

#endif
