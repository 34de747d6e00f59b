/*
 * wirecheck: finds, in a serialized protobuf message, the first string field that holds a
 * NUL byte or is not well-formed UTF-8. protobuf-c hands strings over as NUL-terminated
 * char * and does not validate proto3 strings, so once a message is unpacked "K\0A" reads
 * as "K" and raw bytes pass on to replies; only the wire bytes still show what was sent.
 * The walk follows the message's protobuf-c descriptor into nested messages (to a bounded
 * depth), names the field by its path ("submit.idempotency_key",
 * "station_status.capacity[1].service_date") and skips unknown fields. It allocates
 * nothing and never reads outside the buffer.
 */
#ifndef CARELINE_WIRECHECK_H
#define CARELINE_WIRECHECK_H

#include <event2/buffer.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRECHECK_MAX_DEPTH 8 /* nested messages followed; the schema needs 3 */

typedef enum {
    WIRE_OK,        /* every string is NUL-free UTF-8 */
    WIRE_NUL,       /* fault.field holds a NUL byte */
    WIRE_BAD_UTF8,  /* fault.field is not well-formed UTF-8 */
    WIRE_TOO_DEEP,  /* messages nested beyond max_depth (at fault.field) */
    WIRE_MALFORMED, /* not a well-formed message: the unpacker decides (and refuses it) */
} WireStatus;

typedef struct {
    WireStatus status;
    char field[128];        /* path of the field, e.g. "submit.note"; "" for WIRE_OK/MALFORMED */
    size_t offset;          /* WIRE_NUL, WIRE_BAD_UTF8: the first bad byte's offset in the string */
    uint64_t seq;           /* wirecheck_frame: the Envelope's seq (0 if not sent) */
    const char *body_field; /* wirecheck_frame: the path inside the Envelope's body, as the
                             * message's own validation names fields ("idempotency_key"),
                             * for Error.field; points into field */
    char message[256];      /* one human sentence naming the field, for an Error reply */
} WireFault;

/* Walks data[0..len) as a message of type desc, following nested messages at most
 * max_depth levels below it. Fills *f (always) and returns f->status. */
WireStatus wirecheck_message(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                             size_t len, int max_depth, WireFault *f);

/* Looks at the frame at the head of `in` (a 4-byte length, then a careline.v1.Envelope) when
 * it is complete and its length is 1..max. When one of its strings is bad (WIRE_NUL,
 * WIRE_BAD_UTF8, WIRE_TOO_DEEP) the frame is drained, *f says which field (the full path in
 * field and in the sentence, the path inside the body in body_field), with the Envelope's
 * seq, and the result is true — only if the frame is otherwise an Envelope protobuf-c
 * accepts (the bad path unpacks it once to make sure). Otherwise nothing is drained and
 * the result is false: an incomplete, oversized or malformed frame is the frame codec's to
 * judge. */
bool wirecheck_frame(struct evbuffer *in, uint32_t max, WireFault *f);

#endif
