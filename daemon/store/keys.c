/*
 * keys: string formatting only; the layout is documented in keys.h.
 */
#include "store/keys.h"

#include <stdio.h>

void keys_init(Keys *k, const char *county_code)
{
    snprintf(k->prefix, sizeof(k->prefix), "{c%s}:", county_code);
}

void keys_reservation(const Keys *k, int64_t request_id, int attempt, char *out, size_t n)
{
    snprintf(out, n, "%sra:%lld:%d", k->prefix, (long long)request_id, attempt);
}

void keys_pending(const Keys *k, char *out, size_t n)
{
    snprintf(out, n, "%spending", k->prefix);
}

static void day_key(const Keys *k, const char *kind, int64_t station_id, const char *day,
                    const char *slot, char *out, size_t n)
{
    snprintf(out, n, "%s%s:%lld:%s:%s", k->prefix, kind, (long long)station_id, day, slot);
}

void keys_capacity(const Keys *k, int64_t station_id, const char *day, const char *slot, char *out,
                   size_t n)
{
    day_key(k, "cap", station_id, day, slot, out, n);
}

void keys_limit(const Keys *k, int64_t station_id, const char *day, const char *slot, char *out,
                size_t n)
{
    day_key(k, "lim", station_id, day, slot, out, n);
}

void keys_stream(const Keys *k, int64_t station_id, char *out, size_t n)
{
    snprintf(out, n, "%sst:%lld:jobs", k->prefix, (long long)station_id);
}

void keys_wake_channel(const Keys *k, char *out, size_t n)
{
    snprintf(out, n, "%swake", k->prefix);
}

void keys_generation(const Keys *k, char *out, size_t n)
{
    snprintf(out, n, "%sgen", k->prefix);
}

void keys_rebuild_lock(const Keys *k, char *out, size_t n)
{
    snprintf(out, n, "%srebuild", k->prefix);
}

void keys_probe(const Keys *k, char *out, size_t n)
{
    snprintf(out, n, "%sprobe", k->prefix);
}

bool keys_rebuilt_pattern(const Keys *k, int kind, char *out, size_t n)
{
    static const char *const pat[] = {"cap:*", "ra:*", "st:*", "pending"};
    if (kind < 0 || kind >= (int)(sizeof(pat) / sizeof(pat[0])))
        return false;
    snprintf(out, n, "%s%s", k->prefix, pat[kind]);
    return true;
}
