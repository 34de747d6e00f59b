/*
 * wirecheck: a second, read-only walk over a received payload, before protobuf-c unpacks it,
 * to find string fields that would be cut at a NUL or carry invalid UTF-8 into the daemon.
 * It reads tags and lengths exactly as the unpacker does and gives up (WIRE_MALFORMED)
 * wherever the unpacker would refuse the message anyway, so it never has to be stricter
 * about framing than protobuf-c, only about strings.
 */
#include "common/wirecheck.h"

#include <stdio.h>
#include <string.h>

#include "careline.pb-c.h"
#include "common/frame.h"
#include "common/util.h"

#define MAX_FIELDS 64 /* repeated fields are numbered ([i]) in messages with at most this many */

typedef struct {
    WireFault *f;
    int max_depth;
    /* the fields entered, outermost first: only turned into a path when one is bad */
    const ProtobufCFieldDescriptor *at[WIRECHECK_MAX_DEPTH + 2];
    long index[WIRECHECK_MAX_DEPTH + 2]; /* the entry of a repeated field, else -1 */
} Walk;

/* Reads a varint at *pos (at most 10 bytes, all inside n); false if there is none. */
static bool varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70 && *pos < n; shift += 7) {
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* Writes the path of the fields entered, at[0..depth], into f->field. */
static void path_write(const Walk *w, int depth)
{
    size_t o = 0, cap = sizeof(w->f->field);
    for (int i = 0; i <= depth && o < cap - 1; i++) {
        int n = snprintf(w->f->field + o, cap - o, "%s%s", i ? "." : "", w->at[i]->name);
        if (n > 0 && w->index[i] >= 0 && o + (size_t)n < cap - 1)
            n += snprintf(w->f->field + o + (size_t)n, cap - o - (size_t)n, "[%ld]", w->index[i]);
        o = n < 0 ? o : o + (size_t)n >= cap ? cap - 1 : o + (size_t)n;
    }
}

static WireStatus check_string(Walk *w, const uint8_t *s, size_t n)
{
    size_t valid = util_utf8_prefix((const char *)s, n);
    const uint8_t *nul = memchr(s, 0, valid);
    if (nul) {
        w->f->offset = (size_t)(nul - s);
        return WIRE_NUL;
    }
    if (valid < n) {
        w->f->offset = valid;
        return WIRE_BAD_UTF8;
    }
    return WIRE_OK;
}

/* One field off the wire: its number, wire type and value. */
typedef struct {
    uint32_t number;
    unsigned type;       /* 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit */
    uint64_t value;      /* type 0 */
    const uint8_t *data; /* type 2: the bytes, len of them */
    size_t len;
} WireField;

/* Reads the field at *pos and moves past it; false where protobuf-c would refuse the bytes
 * (truncated, field number 0, groups and the reserved wire types). */
static bool next_field(const uint8_t *p, size_t n, size_t *pos, WireField *out)
{
    uint64_t tag, v;
    if (!varint(p, n, pos, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX)
        return false;
    out->number = (uint32_t)(tag >> 3);
    out->type = (unsigned)(tag & 7);
    switch (out->type) {
    case 0:
        return varint(p, n, pos, &out->value);
    case 1:
    case 5: {
        size_t w = out->type == 1 ? 8 : 4;
        if (n - *pos < w)
            return false;
        *pos += w;
        return true;
    }
    case 2:
        if (!varint(p, n, pos, &v) || v > n - *pos)
            return false;
        out->data = p + *pos;
        out->len = (size_t)v;
        *pos += (size_t)v;
        return true;
    default:
        return false;
    }
}

static WireStatus walk(Walk *w, const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t n,
                       int depth)
{
    unsigned seen[MAX_FIELDS]; /* entries so far of each repeated field, by field index */
    uint64_t seen_set = 0;     /* bit i: seen[i] is in use (saves clearing the array) */
    size_t pos = 0;
    WireField wf;
    while (pos < n) {
        if (!next_field(p, n, &pos, &wf))
            return WIRE_MALFORMED;
        if (wf.type != 2)
            continue;
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field(desc, wf.number);
        if (!fd || (fd->type != PROTOBUF_C_TYPE_STRING && fd->type != PROTOBUF_C_TYPE_MESSAGE))
            continue; /* unknown fields, bytes and packed scalars hold no strings */
        size_t fi = (size_t)(fd - desc->fields);
        w->at[depth] = fd;
        w->index[depth] = -1;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED && fi < MAX_FIELDS) {
            if (!(seen_set & (1ull << fi)))
                seen[fi] = 0, seen_set |= 1ull << fi;
            w->index[depth] = (long)seen[fi]++;
        }
        WireStatus st;
        if (fd->type == PROTOBUF_C_TYPE_STRING)
            st = check_string(w, wf.data, wf.len);
        else if (depth >= w->max_depth)
            st = WIRE_TOO_DEEP;
        else
            st = walk(w, fd->descriptor, wf.data, wf.len, depth + 1);
        if (st != WIRE_OK && st != WIRE_MALFORMED && !w->f->field[0])
            path_write(w, depth); /* the innermost frame names the whole path */
        if (st != WIRE_OK)
            return st;
    }
    return WIRE_OK;
}

WireStatus wirecheck_message(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                             size_t len, int max_depth, WireFault *f)
{
    /* not a memset: this runs for every frame, and the buffers only need to start empty */
    f->status = WIRE_OK;
    f->field[0] = f->message[0] = '\0';
    f->offset = 0;
    f->seq = 0;
    f->body_field = f->field;
    ASSERT(max_depth >= 0 && max_depth <= WIRECHECK_MAX_DEPTH);
    Walk w;
    w.f = f;
    w.max_depth = max_depth;
    f->status = walk(&w, desc, data, len, 0);
    switch (f->status) {
    case WIRE_NUL:
        snprintf(f->message, sizeof(f->message),
                 "%s contains a NUL byte (at byte %zu); text fields must not contain NUL", f->field,
                 f->offset);
        break;
    case WIRE_BAD_UTF8:
        snprintf(f->message, sizeof(f->message),
                 "%s is not valid UTF-8 (from byte %zu); text fields must be UTF-8", f->field,
                 f->offset);
        break;
    case WIRE_TOO_DEEP:
        snprintf(f->message, sizeof(f->message), "%s is nested more than %d messages deep",
                 f->field, max_depth);
        break;
    default:
        f->field[0] = '\0';
        break;
    }
    return f->status;
}

/* The Envelope's seq, read off the wire (0 when absent). */
static uint64_t envelope_seq(const uint8_t *p, size_t n)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(&careline__v1__envelope__descriptor, "seq");
    ASSERT(fd);
    uint64_t seq = 0;
    size_t pos = 0;
    WireField wf;
    while (pos < n && next_field(p, n, &pos, &wf))
        if (wf.type == 0 && wf.number == fd->id)
            seq = wf.value; /* the last one wins, as when unpacking */
    return seq;
}

bool wirecheck_frame(struct evbuffer *in, uint32_t max, WireFault *f)
{
    uint8_t hdr[FRAME_HEADER];
    uint32_t len;
    if (evbuffer_copyout(in, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr) ||
        frame_header_parse(hdr, max, &len) != FRAME_OK ||
        evbuffer_get_length(in) < FRAME_HEADER + (size_t)len)
        return false;
    /* the frame is whole: making it contiguous now saves the codec doing it */
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(FRAME_HEADER + (size_t)len));
    WireStatus st = wirecheck_message(&careline__v1__envelope__descriptor, p + FRAME_HEADER, len,
                                      WIRECHECK_MAX_DEPTH, f);
    if (st == WIRE_OK || st == WIRE_MALFORMED)
        return false;
    /* the walk stops at the first bad string: a frame broken further on is still the codec's
     * (a fatal BAD_ENVELOPE), so one verdict holds whichever fault comes first */
    Envelope *env = careline__v1__envelope__unpack(NULL, len, p + FRAME_HEADER);
    if (!env)
        return false;
    careline__v1__envelope__free_unpacked(env, NULL);
    f->seq = envelope_seq(p + FRAME_HEADER, len);
    const char *dot = strchr(f->field, '.');
    f->body_field = dot ? dot + 1 : f->field;
    evbuffer_drain(in, FRAME_HEADER + (size_t)len);
    return true;
}
