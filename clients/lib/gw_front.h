/*
 * gw_front: how calls reach the hotline gateway. Over HTTP, a call centre POSTs signed
 * call events to webhook_path (GET /healthz and /metrics on the same port); with --stdio,
 * call events are JSON lines on stdin and answers JSON lines on stdout. Both check the
 * event and hand it to gw_take_call(); refusals are answered here with a reason.
 */
#ifndef CARELINE_GW_FRONT_H
#define CARELINE_GW_FRONT_H

#include <event2/bufferevent.h>
#include <stdbool.h>
#include <stddef.h>

#include "gw_queue.h"

/* Listens on http_addr:http_port and writes port_file; false with err on failure. */
bool gw_http_start(Gw *g, char *err, size_t errlen);

/* bufferevent callbacks for stdin in --stdio mode (arg: the Gw). */
void gw_stdin_read_cb(struct bufferevent *bev, void *arg);
void gw_stdin_event_cb(struct bufferevent *bev, short what, void *arg);

#endif
