/*
 * rds: Redis through hiredis 0.14's async API on the libevent loop. One command link
 * (pipelined, bounded by max_inflight, with an op deadline that resets the link) and, on
 * first rds_subscribe(), one pub/sub link. Both reconnect on their own with backoff
 * (100 ms doubling to 5 s plus jitter) and have our own connect timeout (hiredis 0.14 has
 * none).
 *
 * host must be an IP address (or use a unix socket path in a later version): hiredis resolves
 * host names with a blocking getaddrinfo() on every (re)connect.
 *
 * Callbacks run on the loop thread. They may call rds_command/rds_eval/rds_subscribe
 * re-entrantly; they must NOT call rds_free().
 */
#ifndef CARELINE_RDS_H
#define CARELINE_RDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "common/util.h"

typedef struct Rds Rds;
typedef struct RdsScript RdsScript;

/*
 * Completion of one accepted command; called exactly once.
 * reply: borrowed for the callback only (hiredis frees it after). A Redis error reply is
 *        delivered as reply->type == REDIS_REPLY_ERROR with err NULL.
 *        NULL when the link failed, the op timed out (the link is then reset, failing every
 *        op in flight on it) or the client is shutting down; err is then a human sentence
 *        (borrowed for the callback).
 */
typedef void (*RdsReplyCb)(redisReply *reply, const char *err, void *arg);

/*
 * Pub/sub delivery. msg/len: the message, borrowed for the callback. msg == NULL (len 0)
 * means "(re)subscribed": fired once each time the subscription becomes active (the first
 * time and after every reconnect) so the caller can resync what it may have missed.
 */
typedef void (*RdsMessageCb)(const char *channel, const char *msg, size_t len, void *arg);

/*
 * Creates the client and starts connecting the command link. host: an IP address (copied;
 * a name is refused: config_resolve_hosts resolves it at start).
 * op_timeout_ms: deadline of every op, and the connect timeout (at least 1 s).
 * max_inflight: cap on ops sent but not yet answered.
 * password_file: NULL or "" = no AUTH (logged as a warning). Otherwise every connect and
 * reconnect of both links sends "AUTH user password" first (user NULL or "": "AUTH
 * password", Redis' default user) and the link counts as up only once Redis accepts it; a
 * refusal is logged (once per streak of failures, never the password) and retried with the
 * reconnect backoff. The file's first line is the password; it is read now (a missing,
 * empty or world-readable file: NULL is returned, with the reason logged) and again before
 * each reconnect, so a rotated password is used without a restart (a failed re-read keeps
 * the previous one). Both strings are copied.
 * Returns NULL on bad arguments or an unusable password file.
 */
Rds *rds_new(struct event_base *base, const char *host, int port, int op_timeout_ms,
             int max_inflight, const char *user, const char *password_file);

/*
 * Sends one command (argv/argvlen are copied into hiredis' buffer; binary safe).
 * Returns false, and never calls cb, when the link is not up (answer UNAVAILABLE) or
 * max_inflight ops are in flight (answer OVERLOADED). Otherwise cb fires exactly once, later.
 * Replies come in order (one pipelined link).
 */
bool rds_command(Rds *r, RdsReplyCb cb, void *arg, int argc, const char **argv,
                 const size_t *argvlen) MUSTCHECK;

/*
 * Registers a Lua script: copies lua_source and computes its SHA1 locally. The script is
 * owned by r and freed by rds_free(); never NULL.
 */
RdsScript *rds_script_new(Rds *r, const char *lua_source);

/*
 * Runs s with EVALSHA; on a NOSCRIPT error (e.g. after a Redis restart or SCRIPT FLUSH) it is
 * re-sent once as EVAL, transparently. args holds nkeys keys followed by nargs arguments
 * (nkeys + nargs entries, lens their lengths; copied). Same return and callback rules as
 * rds_command; the op counts once against max_inflight.
 */
bool rds_eval(Rds *r, RdsScript *s, RdsReplyCb cb, void *arg, int nkeys, int nargs,
              const char **args, const size_t *lens) MUSTCHECK;

/* true when the command link is up (connected and, with a password, authenticated). */
bool rds_ready(const Rds *r);

/* How many times the command link came up: a new value means a new connection, to a Redis
 * that may have restarted or failed over since (core/rebuild.c checks it again). */
uint64_t rds_link_epoch(const Rds *r);

/* true when reply is Redis refusing a write it would otherwise do: OOM (maxmemory with
 * noeviction), MISCONF (a failed RDB save), READONLY (a replica), NOREPLICAS, an AOF write
 * error ("MISCONF ... AOF"), also when wrapped by a script error. */
bool rds_write_refused(const redisReply *reply);

/* Changes op_timeout_ms (SIGHUP). New ops and connects get it; ops in flight keep their
 * deadline, or get now + op_timeout_ms if that is sooner (never extended). */
void rds_set_op_timeout(Rds *r, int op_timeout_ms);

/* Ops sent and not yet answered (for drain and metrics). */
size_t rds_inflight(const Rds *r);

/*
 * Subscribes to channel on the pub/sub link (started on first use), and again after every
 * reconnect. Copies channel. cb: see RdsMessageCb. Returns false only while shutting down.
 */
bool rds_subscribe(Rds *r, const char *channel, RdsMessageCb cb, void *arg) MUSTCHECK;

/*
 * Frees the client: every pending op callback gets reply NULL and err "shutting down" now,
 * then both links close and scripts are freed. rds_free(NULL) is a no-op. Not allowed from
 * inside an rds callback. For a graceful drain, wait for rds_inflight() == 0 first.
 */
void rds_free(Rds *r);

#endif
