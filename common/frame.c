/*
 * frame: length-prefixed protobuf framing. Validating the prefix before buffering the
 * payload is what keeps a hostile length from growing memory (pgbouncer get_header). The
 * evbuffer functions are thin wrappers over the flat-buffer ones, so the daemon and the
 * clients read and write the header with the same two functions.
 */
#include "common/frame.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

FrameStatus frame_header_parse(const uint8_t *hdr, uint32_t max, uint32_t *len)
{
    uint32_t be;
    memcpy(&be, hdr, sizeof(be));
    *len = ntohl(be);
    if (*len == 0)
        return FRAME_EMPTY;
    return *len > max ? FRAME_TOO_LARGE : FRAME_OK;
}

size_t frame_size(const Envelope *env)
{
    return FRAME_HEADER + careline__v1__envelope__get_packed_size(env);
}

size_t frame_pack(const Envelope *env, uint8_t *out)
{
    size_t n = careline__v1__envelope__pack(env, out + FRAME_HEADER);
    ASSERT(n <= UINT32_MAX);
    uint32_t be = htonl((uint32_t)n);
    memcpy(out, &be, sizeof(be));
    return FRAME_HEADER + n;
}

uint8_t *frame_encode(const Envelope *env, size_t *n)
{
    uint8_t *b = xmalloc(frame_size(env));
    *n = frame_pack(env, b);
    return b;
}

FrameStatus frame_parse(const uint8_t *p, size_t have, uint32_t max, Envelope **out, size_t *need,
                        uint32_t *len)
{
    *out = NULL;
    if (have < FRAME_HEADER) {
        *need = FRAME_HEADER;
        return FRAME_NEED_MORE;
    }
    FrameStatus st = frame_header_parse(p, max, len);
    if (st != FRAME_OK)
        return st;
    if (have < FRAME_HEADER + (size_t)*len) {
        *need = FRAME_HEADER + (size_t)*len;
        return FRAME_NEED_MORE;
    }
    *out = careline__v1__envelope__unpack(NULL, *len, p + FRAME_HEADER);
    return *out ? FRAME_OK : FRAME_BAD_ENVELOPE;
}

FrameStatus frame_next(struct evbuffer *in, uint32_t max, Envelope **out, size_t *need,
                       uint32_t *len)
{
    *out = NULL;
    uint8_t hdr[FRAME_HEADER];
    if (evbuffer_copyout(in, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr)) {
        *need = FRAME_HEADER;
        return FRAME_NEED_MORE;
    }
    FrameStatus st = frame_header_parse(hdr, max, len);
    if (st != FRAME_OK)
        return st;
    size_t total = FRAME_HEADER + (size_t)*len;
    if (evbuffer_get_length(in) < total) {
        *need = total;
        return FRAME_NEED_MORE;
    }
    /* only now, with the whole frame buffered, is it made contiguous */
    st = frame_parse(evbuffer_pullup(in, (ev_ssize_t)total), total, max, out, need, len);
    evbuffer_drain(in, total);
    return st;
}

size_t frame_append(struct evbuffer *out, const Envelope *env)
{
    size_t n = frame_size(env);
    struct evbuffer_iovec v;
    /* reserve header + payload in one contiguous extent so packing needs no copy */
    int got = evbuffer_reserve_space(out, (ev_ssize_t)n, &v, 1);
    ASSERT(got == 1 && v.iov_len >= n);
    v.iov_len = frame_pack(env, v.iov_base);
    int rc = evbuffer_commit_space(out, &v, 1);
    ASSERT(rc == 0);
    return n;
}

void frame_free(Envelope *env)
{
    if (env)
        careline__v1__envelope__free_unpacked(env, NULL);
}

const char *frame_body_name(const Envelope *env)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &careline__v1__envelope__descriptor, (unsigned)env->body_case);
    if (!f)
        return env->body_case ? "unknown message" : "empty envelope";
    const ProtobufCMessageDescriptor *m = f->descriptor;
    return m ? m->short_name : f->name;
}
