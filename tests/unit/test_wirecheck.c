/* Unit tests of the wire string checker (common/wirecheck) and the UTF-8 escaping of
 * common/util: NUL and bad UTF-8 found in nested and repeated fields and named by path,
 * unknown fields skipped, every truncation of a message survived (under ASan), the depth
 * bound, and the frame face draining exactly the bad frame. */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "common/frame.h"
#include "common/wirecheck.h"
#include "t.h"

#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

/* Replaces the first occurrence of from (n bytes) in buf with to (n bytes): protobuf-c packs
 * strings up to their NUL, so a NUL is put in after packing. */
static void patch(uint8_t *buf, size_t len, const char *from, const char *to, size_t n)
{
    uint8_t *p = memmem(buf, len, from, n);
    T_ASSERT(p);
    memcpy(p, to, n);
}

/* A packed Envelope{seq, submit{key, phone, date, note}}; free() it. */
static uint8_t *packed_submit(uint64_t seq, const char *key, const char *note, size_t *n)
{
    Careline__V1__SubmitRequest m = CARELINE__V1__SUBMIT_REQUEST__INIT;
    m.idempotency_key = (char *)key;
    m.who_case = CARELINE__V1__SUBMIT_REQUEST__WHO_CALLER_PHONE;
    m.caller_phone = (char *)"13900000001";
    m.service_date = (char *)"2026-12-01";
    m.note = (char *)note;
    Envelope e = CARELINE__V1__ENVELOPE__INIT;
    e.seq = seq;
    e.body_case = BODY(SUBMIT);
    e.submit = &m;
    *n = careline__v1__envelope__get_packed_size(&e);
    uint8_t *b = malloc(*n);
    careline__v1__envelope__pack(&e, b);
    return b;
}

static WireStatus check(const uint8_t *b, size_t n, WireFault *f)
{
    return wirecheck_message(&careline__v1__envelope__descriptor, b, n, WIRECHECK_MAX_DEPTH, f);
}

static void clean_message_ok(void)
{
    size_t n;
    uint8_t *b = packed_submit(3, "key-1", "门口放着就行", &n);
    WireFault f;
    T_EQ_INT(check(b, n, &f), WIRE_OK);
    T_EQ_STR(f.field, "");
    free(b);
}

static void nul_in_nested_string(void)
{
    size_t n;
    uint8_t *b = packed_submit(3, "KXA", "", &n);
    patch(b, n, "KXA", "K\0A", 3);
    WireFault f;
    T_EQ_INT(check(b, n, &f), WIRE_NUL);
    T_EQ_STR(f.field, "submit.idempotency_key");
    T_EQ_INT(f.offset, 1);
    T_ASSERT(strstr(f.message, "submit.idempotency_key") && strstr(f.message, "NUL"));
    free(b);
    /* the date and the phone the same way */
    b = packed_submit(3, "k", "", &n);
    patch(b, n, "2026-12-01", "2026-12-0\0", 10);
    T_EQ_INT(check(b, n, &f), WIRE_NUL);
    T_EQ_STR(f.field, "submit.service_date");
    T_EQ_INT(f.offset, 9);
    patch(b, n, "2026-12-0\0", "2026-12-01", 10);
    patch(b, n, "13900000001", "1390000000\0", 11);
    T_EQ_INT(check(b, n, &f), WIRE_NUL);
    T_EQ_STR(f.field, "submit.caller_phone");
    free(b);
}

static void bad_utf8_named(void)
{
    Careline__V1__CoverageQuery q = CARELINE__V1__COVERAGE_QUERY__INIT;
    q.town_code = (char *)"abXY";
    Envelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = BODY(COVERAGE_QUERY);
    e.coverage_query = &q;
    uint8_t b[64];
    size_t n = careline__v1__envelope__pack(&e, b);
    patch(b, n, "abXY", "ab\xff\xfe", 4);
    WireFault f;
    T_EQ_INT(check(b, n, &f), WIRE_BAD_UTF8);
    T_EQ_STR(f.field, "coverage_query.town_code");
    T_EQ_INT(f.offset, 2);
    T_ASSERT(util_utf8_valid(f.message, strlen(f.message)));
    /* overlong '/' and a surrogate are not UTF-8 either; 4-byte characters are */
    patch(b, n, "ab\xff\xfe", "\xc0\xaf\x41\x41", 4);
    T_EQ_INT(check(b, n, &f), WIRE_BAD_UTF8);
    T_EQ_INT(f.offset, 0);
    patch(b, n, "\xc0\xaf\x41\x41", "\xed\xa0\x80\x41", 4);
    T_EQ_INT(check(b, n, &f), WIRE_BAD_UTF8);
    patch(b, n, "\xed\xa0\x80\x41", "\xf0\x9f\x98\x80", 4);
    T_EQ_INT(check(b, n, &f), WIRE_OK);
}

/* Envelope{station_status{capacity[0], capacity[1]{service_date}}}, the second date with a
 * NUL: the path numbers the repeated entry. */
static size_t packed_status(uint8_t *b, size_t cap)
{
    Careline__V1__SlotCapacity c0 = CARELINE__V1__SLOT_CAPACITY__INIT, c1 = c0;
    c0.service_date = (char *)"2026-12-01";
    c1.service_date = (char *)"2026-12-0X";
    Careline__V1__SlotCapacity *caps[] = {&c0, &c1};
    Careline__V1__StationStatus s = CARELINE__V1__STATION_STATUS__INIT;
    s.n_capacity = 2;
    s.capacity = caps;
    Envelope e = CARELINE__V1__ENVELOPE__INIT;
    e.seq = 9;
    e.body_case = BODY(STATION_STATUS);
    e.station_status = &s;
    T_ASSERT(careline__v1__envelope__get_packed_size(&e) <= cap);
    size_t n = careline__v1__envelope__pack(&e, b);
    patch(b, n, "2026-12-0X", "2026-12-0\0", 10);
    return n;
}

static void repeated_nested_path(void)
{
    uint8_t b[128];
    size_t n = packed_status(b, sizeof(b));
    WireFault f;
    T_EQ_INT(check(b, n, &f), WIRE_NUL);
    T_EQ_STR(f.field, "station_status.capacity[1].service_date");
}

static void depth_bound(void)
{
    uint8_t b[128];
    size_t n = packed_status(b, sizeof(b));
    WireFault f;
    /* Envelope (0) -> station_status (1) -> capacity (2): one level is not enough */
    T_EQ_INT(wirecheck_message(&careline__v1__envelope__descriptor, b, n, 1, &f), WIRE_TOO_DEEP);
    T_EQ_STR(f.field, "station_status.capacity[0]");
    T_EQ_INT(wirecheck_message(&careline__v1__envelope__descriptor, b, n, 2, &f), WIRE_NUL);
}

static void unknown_fields_skipped(void)
{
    /* field 999 (unknown to Envelope) holding "a\0b", then seq = 5 */
    const uint8_t b[] = {0xba, 0x3e, 3, 'a', 0, 'b', 0x08, 5};
    WireFault f;
    T_EQ_INT(check(b, sizeof(b), &f), WIRE_OK);
    /* a group (wire type 3) and field number 0 are refused, as protobuf-c refuses them */
    const uint8_t g[] = {0x0b, 0x0c};
    T_EQ_INT(check(g, sizeof(g), &f), WIRE_MALFORMED);
    const uint8_t z[] = {0x00, 0x01};
    T_EQ_INT(check(z, sizeof(z), &f), WIRE_MALFORMED);
    /* a varint of 11 bytes */
    const uint8_t v[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    T_EQ_INT(check(v, sizeof(v), &f), WIRE_MALFORMED);
}

static void every_truncation_survived(void)
{
    size_t n;
    uint8_t *full = packed_submit(77, "KXA", "备注", &n);
    patch(full, n, "KXA", "K\0A", 3);
    for (size_t cut = 0; cut < n; cut++) {
        /* an exact-size copy, so ASan sees any read past the end */
        uint8_t *b = malloc(cut ? cut : 1);
        memcpy(b, full, cut);
        WireFault f;
        WireStatus st = check(b, cut, &f);
        T_ASSERT(st == WIRE_OK || st == WIRE_MALFORMED || st == WIRE_NUL);
        if (st == WIRE_MALFORMED)
            T_EQ_STR(f.field, "");
        free(b);
    }
    free(full);
}

static void frame_face_drains_only_bad(void)
{
    struct evbuffer *in = evbuffer_new();
    size_t n;
    uint8_t *b = packed_submit(41, "KXA", "", &n);
    patch(b, n, "KXA", "K\0A", 3);
    uint8_t hdr[4] = {0, 0, 0, (uint8_t)n};
    T_ASSERT(n < 256);
    /* incomplete: nothing happens */
    evbuffer_add(in, hdr, 4);
    evbuffer_add(in, b, n - 1);
    WireFault f;
    T_ASSERT(!wirecheck_frame(in, 1024, &f));
    T_EQ_INT(evbuffer_get_length(in), 4 + n - 1);
    evbuffer_add(in, b + n - 1, 1);
    /* a good frame behind it stays */
    Careline__V1__Ping p = CARELINE__V1__PING__INIT;
    Envelope e = CARELINE__V1__ENVELOPE__INIT;
    e.seq = 42;
    e.body_case = BODY(PING);
    e.ping = &p;
    size_t good = frame_append(in, &e);
    /* oversize for this max: the codec's to judge */
    T_ASSERT(!wirecheck_frame(in, (uint32_t)n - 1, &f));
    T_ASSERT(wirecheck_frame(in, 1024, &f));
    T_EQ_INT(f.seq, 41);
    T_EQ_STR(f.field, "submit.idempotency_key");
    T_EQ_STR(f.body_field, "idempotency_key");
    T_EQ_INT(evbuffer_get_length(in), good);
    T_ASSERT(!wirecheck_frame(in, 1024, &f));
    Envelope *out;
    size_t need;
    uint32_t len;
    T_EQ_INT(frame_next(in, 1024, &out, &need, &len), FRAME_OK);
    T_EQ_INT(out->seq, 42);
    frame_free(out);
    free(b);
    evbuffer_free(in);
}

static void escape_keeps_utf8(void)
{
    char out[64];
    T_EQ_INT(util_utf8_escape("ab\xff\xfe", 4, out, sizeof(out)), 10);
    T_EQ_STR(out, "ab\\xff\\xfe");
    util_utf8_escape("镇 \xe9\x95", 6, out, sizeof(out)); /* a cut character */
    T_EQ_STR(out, "镇 \\xe9\\x95");
    /* never half a character or half an escape at the end */
    T_EQ_INT(util_utf8_escape("a镇", 4, out, 4), 1);
    T_EQ_STR(out, "a");
    T_EQ_INT(util_utf8_escape("a\xff", 2, out, 5), 1);
    T_EQ_STR(out, "a");
    T_EQ_INT(util_utf8_escape("a\xff", 2, out, 6), 5);
    T_ASSERT(util_utf8_valid(out, strlen(out)));
    T_EQ_INT(util_utf8_prefix("ok\xc3\x28", 4), 2);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"wirecheck_clean_message_ok", clean_message_ok, 0},
        {"wirecheck_nul_in_nested_string", nul_in_nested_string, 0},
        {"wirecheck_bad_utf8_named", bad_utf8_named, 0},
        {"wirecheck_repeated_nested_path", repeated_nested_path, 0},
        {"wirecheck_depth_bound", depth_bound, 0},
        {"wirecheck_unknown_fields_skipped", unknown_fields_skipped, 0},
        {"wirecheck_every_truncation_survived", every_truncation_survived, 0},
        {"wirecheck_frame_face_drains_only_bad", frame_face_drains_only_bad, 0},
        {"wirecheck_escape_keeps_utf8", escape_keeps_utf8, 0},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
