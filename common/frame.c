/*
 * frame: length-prefixed protobuf framing. Validating the prefix before buffering the
 * payload is what keeps a hostile length from growing memory (pgbouncer get_header).
 */
#include "common/frame.h"

#include <arpa/inet.h>
#include <string.h>

FrameStatus frame_next(struct evbuffer *in, uint32_t max, Envelope **out, size_t *need,
                       uint32_t *len)
{
    *out = NULL;
    size_t have = evbuffer_get_length(in);
    if (have < FRAME_HEADER) {
        *need = FRAME_HEADER;
        return FRAME_NEED_MORE;
    }
    uint32_t be;
    evbuffer_copyout(in, &be, sizeof(be));
    uint32_t n = ntohl(be);
    *len = n;
    if (n == 0)
        return FRAME_EMPTY;
    if (n > max)
        return FRAME_TOO_LARGE;
    if (have < FRAME_HEADER + (size_t)n) {
        *need = FRAME_HEADER + (size_t)n;
        return FRAME_NEED_MORE;
    }
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(FRAME_HEADER + n));
    *out = careline__v1__envelope__unpack(NULL, n, p + FRAME_HEADER);
    evbuffer_drain(in, FRAME_HEADER + n);
    return *out ? FRAME_OK : FRAME_BAD_ENVELOPE;
}

size_t frame_append(struct evbuffer *out, const Envelope *env)
{
    size_t n = careline__v1__envelope__get_packed_size(env);
    struct evbuffer_iovec v;
    /* reserve header + payload in one contiguous extent so packing needs no copy */
    int got = evbuffer_reserve_space(out, (ev_ssize_t)(FRAME_HEADER + n), &v, 1);
    ASSERT(got == 1 && v.iov_len >= FRAME_HEADER + n);
    uint32_t be = htonl((uint32_t)n);
    memcpy(v.iov_base, &be, sizeof(be));
    careline__v1__envelope__pack(env, (uint8_t *)v.iov_base + FRAME_HEADER);
    v.iov_len = FRAME_HEADER + n;
    int rc = evbuffer_commit_space(out, &v, 1);
    ASSERT(rc == 0);
    return FRAME_HEADER + n;
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
