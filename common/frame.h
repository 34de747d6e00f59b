/*
 * frame: the wire codec, pure over an evbuffer (no sockets, no state of its own).
 * A frame is a 4-byte big-endian payload length N (1..max) followed by N bytes of one
 * serialized careline.v1.Envelope. The length is checked before any payload is buffered.
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

typedef enum {
    FRAME_OK,           /* *out holds an Envelope the caller frees with frame_free() */
    FRAME_NEED_MORE,    /* *need = bytes the buffer must hold before calling again */
    FRAME_EMPTY,        /* length prefix 0; nothing drained, the stream is unusable */
    FRAME_TOO_LARGE,    /* length prefix > max; nothing drained, the stream is unusable */
    FRAME_BAD_ENVELOPE, /* the frame was drained but its payload is not an Envelope */
} FrameStatus;

/* Takes the next frame off `in`. *len receives the length prefix whenever one was read. */
FrameStatus frame_next(struct evbuffer *in, uint32_t max, Envelope **out, size_t *need,
                       uint32_t *len);

/* Appends one frame holding env to out; returns the bytes appended. */
size_t frame_append(struct evbuffer *out, const Envelope *env);

void frame_free(Envelope *env);

/* The oneof body's message name, e.g. "SubmitRequest", for errors and logs. */
const char *frame_body_name(const Envelope *env);

#endif
