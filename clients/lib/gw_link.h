/*
 * gw_link: the hotline gateway's one connection to dispatchd, on a libevent loop. It
 * connects, says Hello with the gateway token, keeps the link alive with Pings, and
 * reconnects with a bounded backoff (100 ms doubling to backoff_max_ms, plus jitter) after
 * any failure. It carries at most one request at a time, so requests reach the daemon in
 * the order the caller hands them over; every request has a deadline, after which the
 * link is dropped and rebuilt (a late reply can then never be mistaken for another's).
 */
#ifndef CARELINE_GW_LINK_H
#define CARELINE_GW_LINK_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/frame.h"
#include "common/util.h"
#include "tls_client.h"

typedef struct GwLink GwLink;

/* reply: the daemon's answer to the request (borrowed until the callback returns), or
 * NULL with err when the link failed or the deadline passed first. The link is idle again
 * when this runs, so the callback may issue the next gw_link_call. */
typedef void (*GwLinkReplyCb)(const Envelope *reply, const char *err, void *arg);
/* Fired (from the loop) each time the link comes up after a (re)connect. */
typedef void (*GwLinkUpCb)(void *arg);

/* host must be a numeric IPv4/IPv6 address (no DNS on the loop). token is copied. tls
 * (borrowed, outlives the link; NULL = plaintext) secures every connection: the handshake
 * runs in libevent's OpenSSL bufferevent within the connect deadline, and a refused
 * certificate is a link failure whose logged reason names it. */
GwLink *gw_link_new(struct event_base *base, const char *host, int port, TlsClient *tls,
                    const char *token, int backoff_max_ms, GwLinkUpCb up_cb, void *arg);
/* Starts connecting (asynchronously). */
void gw_link_start(GwLink *l);
/* Closes the connection and frees; an in-flight request's callback is NOT called. */
void gw_link_free(GwLink *l);

bool gw_link_up(const GwLink *l);   /* authenticated */
bool gw_link_idle(const GwLink *l); /* up and no request in flight */

/* Sends env (its seq is overwritten) and calls cb exactly once with the reply or a failure.
 * Returns false, without calling cb, unless gw_link_idle(). */
bool gw_link_call(GwLink *l, Envelope *env, int timeout_ms, GwLinkReplyCb cb, void *arg) MUSTCHECK;

uint64_t gw_link_failures(const GwLink *l); /* link failures since start */

#endif
