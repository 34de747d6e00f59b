/* Unit tests of the frame codec over a raw evbuffer and over flat buffers (the clients'
 * face): every bad case, split and batched. */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "common/frame.h"
#include "t.h"

#define MAX 1024

static void put_ping(struct evbuffer *b, uint64_t seq, uint64_t nonce)
{
    Careline__V1__Ping p = CARELINE__V1__PING__INIT;
    p.nonce = nonce;
    Envelope e = CARELINE__V1__ENVELOPE__INIT;
    e.seq = seq;
    e.body_case = CARELINE__V1__ENVELOPE__BODY_PING;
    e.ping = &p;
    frame_append(b, &e);
}

static void put_len(struct evbuffer *b, uint32_t n)
{
    uint32_t be = htonl(n);
    evbuffer_add(b, &be, 4);
}

static FrameStatus next(struct evbuffer *b, Envelope **e, size_t *need, uint32_t *len)
{
    *need = 0;
    *len = 0;
    return frame_next(b, MAX, e, need, len);
}

static void roundtrip(void)
{
    struct evbuffer *b = evbuffer_new();
    put_ping(b, 7, 42);
    Envelope *e;
    size_t need;
    uint32_t len;
    T_EQ_INT(next(b, &e, &need, &len), FRAME_OK);
    T_EQ_INT(e->seq, 7);
    T_EQ_INT(e->body_case, CARELINE__V1__ENVELOPE__BODY_PING);
    T_EQ_INT(e->ping->nonce, 42);
    T_EQ_STR(frame_body_name(e), "Ping");
    T_EQ_INT(evbuffer_get_length(b), 0);
    frame_free(e);
    evbuffer_free(b);
}

static void byte_at_a_time(void)
{
    struct evbuffer *all = evbuffer_new(), *b = evbuffer_new();
    put_ping(all, 1, 99);
    size_t total = evbuffer_get_length(all);
    unsigned char *bytes = evbuffer_pullup(all, -1);
    Envelope *e = NULL;
    size_t need;
    uint32_t len;
    for (size_t i = 0; i < total; i++) {
        T_EQ_INT(next(b, &e, &need, &len), FRAME_NEED_MORE);
        T_ASSERT(need > evbuffer_get_length(b));
        T_EQ_INT(need, i < 4 ? 4 : total);
        evbuffer_add(b, bytes + i, 1);
    }
    T_EQ_INT(next(b, &e, &need, &len), FRAME_OK);
    T_EQ_INT(e->ping->nonce, 99);
    frame_free(e);
    evbuffer_free(all);
    evbuffer_free(b);
}

static void many_in_one_read(void)
{
    struct evbuffer *b = evbuffer_new();
    for (int i = 1; i <= 100; i++)
        put_ping(b, (uint64_t)i, (uint64_t)i * 3);
    evbuffer_add(b, "\0\0", 2); /* the start of a next header */
    Envelope *e;
    size_t need;
    uint32_t len;
    for (int i = 1; i <= 100; i++) {
        T_EQ_INT(next(b, &e, &need, &len), FRAME_OK);
        T_EQ_INT(e->seq, i);
        T_EQ_INT(e->ping->nonce, i * 3);
        frame_free(e);
    }
    T_EQ_INT(next(b, &e, &need, &len), FRAME_NEED_MORE);
    T_EQ_INT(need, 4);
    evbuffer_free(b);
}

static void empty_frame(void)
{
    struct evbuffer *b = evbuffer_new();
    put_len(b, 0);
    Envelope *e;
    size_t need;
    uint32_t len;
    T_EQ_INT(next(b, &e, &need, &len), FRAME_EMPTY);
    T_ASSERT(e == NULL);
    evbuffer_free(b);
}

static void too_large_before_payload(void)
{
    struct evbuffer *b = evbuffer_new();
    put_len(b, MAX + 1); /* no payload: the verdict must not wait for it */
    Envelope *e;
    size_t need;
    uint32_t len;
    T_EQ_INT(next(b, &e, &need, &len), FRAME_TOO_LARGE);
    T_EQ_INT(len, MAX + 1);
    evbuffer_free(b);
    b = evbuffer_new();
    put_len(b, 0xFFFFFFFFu);
    T_EQ_INT(next(b, &e, &need, &len), FRAME_TOO_LARGE);
    evbuffer_free(b);
}

static void max_size_is_allowed(void)
{
    struct evbuffer *b = evbuffer_new();
    put_len(b, MAX);
    Envelope *e;
    size_t need;
    uint32_t len;
    T_EQ_INT(next(b, &e, &need, &len), FRAME_NEED_MORE);
    T_EQ_INT(need, MAX + 4);
    evbuffer_free(b);
}

static void garbage_payload(void)
{
    struct evbuffer *b = evbuffer_new();
    const unsigned char junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    put_len(b, sizeof(junk));
    evbuffer_add(b, junk, sizeof(junk));
    put_ping(b, 5, 5);
    Envelope *e;
    size_t need;
    uint32_t len;
    T_EQ_INT(next(b, &e, &need, &len), FRAME_BAD_ENVELOPE);
    T_ASSERT(e == NULL);
    /* the bad frame was drained whole; the codec itself could go on */
    T_EQ_INT(next(b, &e, &need, &len), FRAME_OK);
    T_EQ_INT(e->seq, 5);
    frame_free(e);
    evbuffer_free(b);
}

static void truncated_payload_waits(void)
{
    struct evbuffer *b = evbuffer_new();
    put_len(b, 10);
    evbuffer_add(b, "abc", 3);
    Envelope *e;
    size_t need;
    uint32_t len;
    T_EQ_INT(next(b, &e, &need, &len), FRAME_NEED_MORE);
    T_EQ_INT(need, 14);
    T_EQ_INT(evbuffer_get_length(b), 7); /* nothing consumed */
    evbuffer_free(b);
}

static void unknown_body_parses_as_not_set(void)
{
    /* field 99 (a message from a newer protocol), length-delimited, 0 bytes */
    const unsigned char newer[] = {0x08, 0x05, 0x9a, 0x06, 0x00};
    struct evbuffer *b = evbuffer_new();
    put_len(b, sizeof(newer));
    evbuffer_add(b, newer, sizeof(newer));
    Envelope *e;
    size_t need;
    uint32_t len;
    T_EQ_INT(next(b, &e, &need, &len), FRAME_OK);
    T_EQ_INT(e->seq, 5);
    T_EQ_INT(e->body_case, CARELINE__V1__ENVELOPE__BODY__NOT_SET);
    frame_free(e);
    evbuffer_free(b);
}

/* ---- the flat-buffer face ---- */

static void ping_env(Envelope *e, Careline__V1__Ping *p, uint64_t seq, uint64_t nonce)
{
    *p = (Careline__V1__Ping)CARELINE__V1__PING__INIT;
    p->nonce = nonce;
    *e = (Envelope)CARELINE__V1__ENVELOPE__INIT;
    e->seq = seq;
    e->body_case = CARELINE__V1__ENVELOPE__BODY_PING;
    e->ping = p;
}

/* frame_encode, frame_pack and frame_append write the same bytes */
static void buf_encode_same_as_append(void)
{
    Envelope e;
    Careline__V1__Ping p;
    ping_env(&e, &p, 9, 77);
    size_t n;
    uint8_t *enc = frame_encode(&e, &n);
    T_EQ_INT(n, frame_size(&e));
    uint8_t packed[64];
    T_ASSERT(frame_size(&e) <= sizeof(packed));
    T_EQ_INT(frame_pack(&e, packed), n);
    struct evbuffer *b = evbuffer_new();
    T_EQ_INT(frame_append(b, &e), n);
    T_EQ_INT(evbuffer_get_length(b), n);
    T_ASSERT(memcmp(evbuffer_pullup(b, -1), enc, n) == 0);
    T_ASSERT(memcmp(packed, enc, n) == 0);
    uint32_t len;
    T_EQ_INT(frame_header_parse(enc, MAX, &len), FRAME_OK);
    T_EQ_INT(len, n - FRAME_HEADER);
    evbuffer_free(b);
    free(enc);
}

/* every prefix of a frame, header split included, asks for more and consumes nothing */
static void buf_split_header(void)
{
    Envelope e;
    Careline__V1__Ping p;
    ping_env(&e, &p, 3, 1234);
    size_t total;
    uint8_t *f = frame_encode(&e, &total);
    Envelope *out;
    size_t need;
    uint32_t len;
    for (size_t have = 0; have < total; have++) {
        need = 0;
        T_EQ_INT(frame_parse(f, have, MAX, &out, &need, &len), FRAME_NEED_MORE);
        T_ASSERT(out == NULL);
        T_EQ_INT(need, have < FRAME_HEADER ? FRAME_HEADER : total);
    }
    T_EQ_INT(frame_parse(f, total, MAX, &out, &need, &len), FRAME_OK);
    T_EQ_INT(FRAME_HEADER + len, total);
    T_EQ_INT(out->seq, 3);
    T_EQ_INT(out->ping->nonce, 1234);
    frame_free(out);
    free(f);
}

/* two frames back to back: the caller steps over FRAME_HEADER + len */
static void buf_two_frames(void)
{
    Envelope e;
    Careline__V1__Ping p;
    uint8_t buf[128];
    size_t used = 0;
    for (uint64_t s = 1; s <= 2; s++) {
        ping_env(&e, &p, s, s * 10);
        used += frame_pack(&e, buf + used);
    }
    Envelope *out;
    size_t need, at = 0;
    uint32_t len;
    for (uint64_t s = 1; s <= 2; s++) {
        T_EQ_INT(frame_parse(buf + at, used - at, MAX, &out, &need, &len), FRAME_OK);
        T_EQ_INT(out->seq, s);
        frame_free(out);
        at += FRAME_HEADER + len;
    }
    T_EQ_INT(at, used);
}

static void buf_oversize_and_zero(void)
{
    uint8_t hdr[FRAME_HEADER];
    uint32_t be, len;
    Envelope *out;
    size_t need;
    be = htonl(MAX + 1);
    memcpy(hdr, &be, 4);
    /* decided from the header alone, before any payload */
    T_EQ_INT(frame_header_parse(hdr, MAX, &len), FRAME_TOO_LARGE);
    T_EQ_INT(len, MAX + 1);
    T_EQ_INT(frame_parse(hdr, sizeof(hdr), MAX, &out, &need, &len), FRAME_TOO_LARGE);
    T_ASSERT(out == NULL);
    be = htonl(MAX);
    memcpy(hdr, &be, 4);
    T_EQ_INT(frame_header_parse(hdr, MAX, &len), FRAME_OK);
    T_EQ_INT(frame_parse(hdr, sizeof(hdr), MAX, &out, &need, &len), FRAME_NEED_MORE);
    T_EQ_INT(need, MAX + FRAME_HEADER);
    be = htonl(0xFFFFFFFFu);
    memcpy(hdr, &be, 4);
    T_EQ_INT(frame_parse(hdr, sizeof(hdr), FRAME_MAX_PAYLOAD, &out, &need, &len), FRAME_TOO_LARGE);
    memset(hdr, 0, sizeof(hdr));
    T_EQ_INT(frame_header_parse(hdr, MAX, &len), FRAME_EMPTY);
    T_EQ_INT(len, 0);
    T_EQ_INT(frame_parse(hdr, sizeof(hdr), MAX, &out, &need, &len), FRAME_EMPTY);
    T_ASSERT(out == NULL);
}

static void buf_garbage_payload(void)
{
    uint8_t f[FRAME_HEADER + 7] = {0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    Envelope *out;
    size_t need;
    uint32_t len;
    T_EQ_INT(frame_parse(f, sizeof(f), MAX, &out, &need, &len), FRAME_BAD_ENVELOPE);
    T_ASSERT(out == NULL);
    T_EQ_INT(len, 7); /* the caller can step over it */
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"frame_roundtrip", roundtrip, 0},
        {"frame_byte_at_a_time", byte_at_a_time, 0},
        {"frame_many_in_one_read", many_in_one_read, 0},
        {"frame_empty", empty_frame, 0},
        {"frame_too_large_before_payload", too_large_before_payload, 0},
        {"frame_max_size_allowed", max_size_is_allowed, 0},
        {"frame_garbage_payload", garbage_payload, 0},
        {"frame_truncated_payload_waits", truncated_payload_waits, 0},
        {"frame_unknown_body", unknown_body_parses_as_not_set, 0},
        {"frame_buf_encode_same_as_append", buf_encode_same_as_append, 0},
        {"frame_buf_split_header", buf_split_header, 0},
        {"frame_buf_two_frames", buf_two_frames, 0},
        {"frame_buf_oversize_and_zero", buf_oversize_and_zero, 0},
        {"frame_buf_garbage_payload", buf_garbage_payload, 0},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
