/*
 * fuzz_frame: a byte stream, cut into chunks at arbitrary points, through the three readers
 * of the frame codec — frame_parse over the whole buffer (the clients), frame_next over an
 * evbuffer filled chunk by chunk, and the daemon's own connection (conn.c: frames to the
 * session, bad ones answered with a fatal Error), optionally followed by the peer's EOF.
 * All three must see the same frames and stop at the same fault; no frame above the limit
 * is ever buffered whole; every decoded Envelope survives re-encoding and is freed.
 *
 * Input: byte 0 flags (bit 0: EOF after the stream; bit 1: a 100-byte limit instead of the
 * default 64 KiB; bits 2-4: the largest chunk, 1 << n bytes), byte 1 a seed for the chunk
 * sizes, then the stream.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_env.h"

#define MAX_FRAMES 4096

typedef struct {
    FrameStatus end; /* the status that stopped the reader (NEED_MORE: ran out of data) */
    size_t nframes;
    uint64_t seq[MAX_FRAMES];
    int body[MAX_FRAMES];
    uint32_t len[MAX_FRAMES];
} Seen;

static void record(Seen *s, const Envelope *env, uint32_t len)
{
    if (s->nframes < MAX_FRAMES) {
        s->seq[s->nframes] = env->seq;
        s->body[s->nframes] = (int)env->body_case;
        s->len[s->nframes] = len;
    }
    s->nframes++;
}

/* m or a message inside it kept fields this protocol does not know. */
static bool has_unknown(const ProtobufCMessage *m)
{
    if (m->n_unknown_fields)
        return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (has_unknown(v[k]))
                    return true;
            continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);
        if (sub && has_unknown(sub))
            return true;
    }
    return false;
}

/* Re-encodes env: the frame parses back to the same message of the same size. (Not when it
 * kept unknown fields: libprotobuf-c 1.4.1 takes field number 0 written as an overlong
 * varint, 80 00, keeps it as unknown, writes it back as 00 00 and then refuses that. The
 * daemon never re-encodes what it received, and ignores unknown fields.) */
static void roundtrip(const Envelope *env, uint32_t max)
{
    FUZZ_ASSERT(frame_body_name(env) != NULL, "no body name");
    size_t n;
    uint8_t *b = frame_encode(env, &n);
    FUZZ_ASSERT(n == frame_size(env), "frame_encode wrote %zu of %zu bytes", n, frame_size(env));
    Envelope *back = NULL;
    size_t need = 0;
    uint32_t len = 0;
    FrameStatus st = frame_parse(b, n, FRAME_MAX_PAYLOAD, &back, &need, &len);
    /* an Envelope of defaults only (no body, seq 0) packs to nothing: a frame no reader takes
     * (FRAME_EMPTY); the daemon and the clients never send one, as they always set a body */
    if ((st != FRAME_OK && has_unknown(&env->base)) ||
        (st == FRAME_EMPTY && env->body_case == CARELINE__V1__ENVELOPE__BODY__NOT_SET)) {
        free(b);
        return;
    }
    FUZZ_ASSERT(st == FRAME_OK, "a re-encoded Envelope does not parse (status %d)", (int)st);
    FUZZ_ASSERT(back->seq == env->seq && back->body_case == env->body_case,
                "a re-encoded Envelope changed");
    FUZZ_ASSERT(frame_size(back) == n, "re-encoding is not stable (%zu then %zu bytes)", n,
                frame_size(back));
    (void)max;
    frame_free(back);
    free(b);
}

/* The clients' reader: frames off a flat buffer holding the whole stream. */
static void read_flat(const uint8_t *p, size_t n, uint32_t max, Seen *s)
{
    size_t at = 0;
    for (;;) {
        Envelope *env = NULL;
        size_t need = 0;
        uint32_t len = 0;
        FrameStatus st = frame_parse(p + at, n - at, max, &env, &need, &len);
        if (st == FRAME_NEED_MORE) {
            FUZZ_ASSERT(need > n - at && need <= FRAME_HEADER + (size_t)max,
                        "need %zu with %zu buffered (max %u)", need, n - at, max);
        }
        if (st != FRAME_OK) {
            FUZZ_ASSERT(st != FRAME_BAD_ENVELOPE || len <= max, "a bad frame above the limit");
            FUZZ_ASSERT(st != FRAME_TOO_LARGE || len > max, "TOO_LARGE for %u <= %u", len, max);
            FUZZ_ASSERT(env == NULL, "an Envelope with status %d", (int)st);
            s->end = st;
            return;
        }
        FUZZ_ASSERT(len >= 1 && len <= max, "frame of %u bytes accepted (max %u)", len, max);
        roundtrip(env, max);
        record(s, env, len);
        frame_free(env);
        at += FRAME_HEADER + len;
    }
}

typedef struct {
    uint32_t x;
} Rng;

static size_t chunk_len(Rng *r, size_t maxchunk)
{
    r->x = r->x * 1103515245u + 12345u;
    return 1 + (r->x >> 8) % maxchunk;
}

/* frame_next over an evbuffer that grows chunk by chunk. */
static void read_chunked(const uint8_t *p, size_t n, uint32_t max, Rng rng, size_t maxchunk,
                         Seen *s)
{
    struct evbuffer *in = evbuffer_new();
    size_t at = 0;
    s->end = FRAME_NEED_MORE;
    while (at < n) {
        size_t k = chunk_len(&rng, maxchunk);
        if (k > n - at)
            k = n - at;
        evbuffer_add(in, p + at, k);
        at += k;
        for (;;) {
            Envelope *env = NULL;
            size_t need = 0;
            uint32_t len = 0;
            size_t before = evbuffer_get_length(in);
            FrameStatus st = frame_next(in, max, &env, &need, &len);
            if (st == FRAME_NEED_MORE) {
                FUZZ_ASSERT(need > before && need <= FRAME_HEADER + (size_t)max,
                            "need %zu with %zu buffered", need, before);
                FUZZ_ASSERT(evbuffer_get_length(in) == before, "NEED_MORE drained bytes");
                break;
            }
            if (st == FRAME_OK) {
                FUZZ_ASSERT(evbuffer_get_length(in) == before - FRAME_HEADER - len,
                            "a frame drained the wrong number of bytes");
                record(s, env, len);
                frame_free(env);
                continue;
            }
            FUZZ_ASSERT(env == NULL, "an Envelope with status %d", (int)st);
            s->end = st;
            evbuffer_free(in);
            return;
        }
    }
    evbuffer_free(in);
}

typedef struct {
    size_t frames;
} ConnSeen;

static ConnSeen conn_seen;

static void conn_frame(void *owner, Conn *c, Envelope *env)
{
    (void)owner, (void)c;
    FUZZ_ASSERT(env && frame_body_name(env), "the session got a NULL Envelope");
    conn_seen.frames++;
    frame_free(env);
}

typedef struct {
    int code;       /* the one fatal Error sent, 0 if none */
    size_t errors;  /* fatal Errors */
    size_t refused; /* frames refused for a string field (NUL, invalid UTF-8): not fatal */
} ConnReplies;

static void conn_reply(const Envelope *env, void *arg)
{
    ConnReplies *r = arg;
    FUZZ_ASSERT(env->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR,
                "the connection sent a %s on its own", frame_body_name(env));
    if (!env->error->fatal) {
        /* common/wirecheck: a well-framed Envelope with a bad string, answered and dropped */
        FUZZ_ASSERT(env->error->code == CARELINE__V1__ERROR_CODE__INVALID_ARGUMENT &&
                        env->error->field && env->error->field[0],
                    "a non-fatal frame error must be INVALID_ARGUMENT naming its field");
        r->refused++;
        return;
    }
    FUZZ_ASSERT(env->seq == 0, "a fatal frame error must have seq 0");
    r->code = (int)env->error->code;
    r->errors++;
}

/* in holds a whole frame or a bad header: work the connection has yet to do. */
static bool frame_waiting(struct evbuffer *in, uint32_t max)
{
    uint8_t hdr[FRAME_HEADER];
    if (evbuffer_copyout(in, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr))
        return false;
    uint32_t len;
    return frame_header_parse(hdr, max, &len) != FRAME_OK ||
           evbuffer_get_length(in) >= FRAME_HEADER + (size_t)len;
}

/* The daemon's reader: conn.c's input path, fed chunk by chunk, then maybe EOF. */
static void read_conn(Fuzz *f, const uint8_t *p, size_t n, uint32_t max, Rng rng, size_t maxchunk,
                      bool eof, ConnReplies *rep)
{
    int peer = -1;
    Conn *c = fuzz_conn(f, CARELINE__V1__ROLE__ROLE_UNSPECIFIED, 0, &peer);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t at = 0;
    while (at < n && c->state == CONN_OPEN) {
        size_t k = chunk_len(&rng, maxchunk);
        if (k > n - at)
            k = n - at;
        /* as the socket would: a bufferevent freezes the end of its input to all but itself */
        evbuffer_unfreeze(in, 0);
        int rc = evbuffer_add(in, p + at, k);
        evbuffer_freeze(in, 0);
        FUZZ_ASSERT(rc == 0, "evbuffer_add failed");
        at += k;
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
        /* frames beyond frames_per_wakeup are taken from a deferred callback */
        for (int i = 0; i < 64 && c->state == CONN_OPEN && frame_waiting(in, max); i++) {
            size_t before = evbuffer_get_length(in);
            event_base_loop(f->base, EVLOOP_NONBLOCK);
            if (evbuffer_get_length(in) == before)
                break;
        }
    }
    if (eof && c->state == CONN_OPEN) {
        shutdown(peer, SHUT_WR);
        for (int i = 0; i < 8 && c->state == CONN_OPEN && !c->eof; i++)
            event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
    fuzz_replies(c, conn_reply, rep);
    FUZZ_ASSERT(rep->errors <= 1, "%zu fatal errors on one connection", rep->errors);
    FUZZ_ASSERT(rep->errors == 0 || c->state != CONN_OPEN, "a fatal error left the conn open");
    FUZZ_ASSERT(c->inflight == 0, "inflight %u after the input", c->inflight);
    fuzz_conn_close(f, c);
    close(peer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    Fuzz *f = fuzz_env();
    f->set.on_frame = conn_frame;
    bool eof = data[0] & 1;
    uint32_t max = (data[0] & 2) ? 100 : 64 * 1024;
    size_t maxchunk = (size_t)1 << ((data[0] >> 2) & 7);
    Rng rng = {data[1] * 2654435761u};
    const uint8_t *p = data + 2;
    size_t n = size - 2;

    static Seen flat, chunked;
    flat.nframes = chunked.nframes = 0;
    read_flat(p, n, max, &flat);
    read_chunked(p, n, max, rng, maxchunk, &chunked);
    FUZZ_ASSERT(flat.end == chunked.end, "flat reader stopped with %d, chunked with %d",
                (int)flat.end, (int)chunked.end);
    FUZZ_ASSERT(flat.nframes == chunked.nframes, "flat read %zu frames, chunked %zu", flat.nframes,
                chunked.nframes);
    for (size_t i = 0; i < flat.nframes && i < MAX_FRAMES; i++)
        FUZZ_ASSERT(flat.seq[i] == chunked.seq[i] && flat.body[i] == chunked.body[i] &&
                        flat.len[i] == chunked.len[i],
                    "frame %zu differs between the readers", i);

    f->cfg.max_frame_bytes = (int)max;
    conn_seen.frames = 0;
    ConnReplies rep = {0, 0, 0};
    read_conn(f, p, n, max, rng, maxchunk, eof, &rep);
    FUZZ_ASSERT(conn_seen.frames + rep.refused == flat.nframes,
                "the connection took %zu frames and refused %zu, the codec read %zu",
                conn_seen.frames, rep.refused, flat.nframes);
    int want = 0;
    switch (flat.end) {
    case FRAME_EMPTY:
        want = CARELINE__V1__ERROR_CODE__FRAME_EMPTY;
        break;
    case FRAME_TOO_LARGE:
        want = CARELINE__V1__ERROR_CODE__FRAME_TOO_LARGE;
        break;
    case FRAME_BAD_ENVELOPE:
        want = CARELINE__V1__ERROR_CODE__BAD_ENVELOPE;
        break;
    default: { /* ran out: a partial frame at EOF is truncated */
        size_t used = 0;
        for (size_t i = 0; i < flat.nframes && i < MAX_FRAMES; i++)
            used += FRAME_HEADER + flat.len[i];
        if (eof && flat.nframes <= MAX_FRAMES && used < n)
            want = CARELINE__V1__ERROR_CODE__FRAME_TRUNCATED;
        break;
    }
    }
    if (flat.nframes <= MAX_FRAMES)
        FUZZ_ASSERT(rep.code == want, "the connection answered error %d, expected %d", rep.code,
                    want);
    return 0;
}
