/* Unit tests of the frame codec over a raw evbuffer: every bad case, split and batched. */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <stdlib.h>

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
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
