/*
 * frame: the wire codec (no sockets, no state of its own). A frame is a 4-byte big-endian
 * payload length N (1..max) followed by N bytes of one serialized careline.v1.Envelope.
 * The length is checked before any payload is buffered. Two faces over the same
 * primitives: an evbuffer one for the daemon's bufferevents, and a flat-buffer one for the
 * clients' blocking and poll()-driven sockets. frame_header_parse() and frame_pack() are
 * the only code that knows the header's layout.
 */
#ifndef CARELINE_FRAME_H
#define CARELINE_FRAME_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>

#include "careline.pb-c.h"
#include "common/util.h"

typedef Careline__V1__Envelope Envelope;

#define FRAME_HEADER 4
/* The largest payload any peer may send (dispatchd's max_frame_bytes cannot exceed it):
 * what the clients accept from the daemon. */
#define FRAME_MAX_PAYLOAD (16u * 1024 * 1024)

typedef enum {
    FRAME_OK,           /* *out holds an Envelope the caller frees with frame_free() */
    FRAME_NEED_MORE,    /* *need = bytes the buffer must hold before calling again */
    FRAME_EMPTY,        /* length prefix 0; nothing drained, the stream is unusable */
    FRAME_TOO_LARGE,    /* length prefix > max; nothing drained, the stream is unusable */
    FRAME_BAD_ENVELOPE, /* the frame was drained but its payload is not an Envelope */
} FrameStatus;

/* ---- evbuffer face (dispatchd) ---- */

/* Takes the next frame off `in`. *len receives the length prefix whenever one was read. */
FrameStatus frame_next(struct evbuffer *in, uint32_t max, Envelope **out, size_t *need,
                       uint32_t *len);

/* Appends one frame holding env to out; returns the bytes appended. */
size_t frame_append(struct evbuffer *out, const Envelope *env);

/* ---- flat-buffer face (clients) ---- */

/* Reads the length prefix in hdr[0..FRAME_HEADER) into *len and checks it: FRAME_OK,
 * FRAME_EMPTY (0) or FRAME_TOO_LARGE (> max). */
FrameStatus frame_header_parse(const uint8_t *hdr, uint32_t max, uint32_t *len);

/* The bytes one frame holding env takes (header + packed Envelope). */
size_t frame_size(const Envelope *env);

/* Writes the frame holding env into out, which has room for frame_size(env) bytes; returns
 * the bytes written (== frame_size(env)). */
size_t frame_pack(const Envelope *env, uint8_t *out);

/* The frame holding env in a new buffer (xmalloc: never NULL) of *n bytes; free() it. */
uint8_t *frame_encode(const Envelope *env, size_t *n);

/* The frame at the start of p[0..have), consuming nothing: as frame_next, except that on
 * FRAME_OK and FRAME_BAD_ENVELOPE the caller drops the frame's FRAME_HEADER + *len bytes
 * itself. */
FrameStatus frame_parse(const uint8_t *p, size_t have, uint32_t max, Envelope **out, size_t *need,
                        uint32_t *len);

/* ---- either ---- */

void frame_free(Envelope *env);

/* The oneof body's message name, e.g. "SubmitRequest", for errors and logs. */
const char *frame_body_name(const Envelope *env);

#endif
