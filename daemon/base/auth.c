/*
 * auth: hashing with OpenSSL's EVP interface and the static role/message table.
 */
#include "base/auth.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

void auth_token_hash(const char *token, uint8_t out[AUTH_HASH_LEN])
{
    unsigned int n = 0;
    int ok = EVP_Digest(token, strlen(token), out, &n, EVP_sha256(), NULL);
    ASSERT(ok == 1 && n == AUTH_HASH_LEN);
}

void auth_token_hash_hex(const char *token, char out[2 * AUTH_HASH_LEN + 1])
{
    uint8_t h[AUTH_HASH_LEN];
    auth_token_hash(token, h);
    for (int i = 0; i < AUTH_HASH_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

bool auth_token_well_formed(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > AUTH_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return false;
    return true;
}

static const char *const role_names[] = {"", "gateway", "station", "bureau", "admin"};

Role auth_role_parse(const char *s)
{
    for (size_t i = 1; i < ARRAY_LEN(role_names); i++)
        if (strcmp(s, role_names[i]) == 0)
            return (Role)i;
    return CARELINE__V1__ROLE__ROLE_UNSPECIFIED;
}

const char *auth_role_name(Role r)
{
    return (unsigned)r < ARRAY_LEN(role_names) && r ? role_names[r] : "unauthenticated";
}

#define R(x) (1u << CARELINE__V1__ROLE__ROLE_##x)

bool auth_allowed(Role role, Careline__V1__Envelope__BodyCase body)
{
    unsigned allowed;
    switch (body) {
    case CARELINE__V1__ENVELOPE__BODY_HELLO:
    case CARELINE__V1__ENVELOPE__BODY_PING:
    case CARELINE__V1__ENVELOPE__BODY_PONG:
        allowed = R(GATEWAY) | R(STATION) | R(BUREAU) | R(ADMIN);
        break;
    case CARELINE__V1__ENVELOPE__BODY_SUBMIT:
    case CARELINE__V1__ENVELOPE__BODY_STATUS_QUERY:
    case CARELINE__V1__ENVELOPE__BODY_CANCEL:
        allowed = R(GATEWAY) | R(ADMIN);
        break;
    case CARELINE__V1__ENVELOPE__BODY_JOB_UPDATE:
    case CARELINE__V1__ENVELOPE__BODY_STATION_STATUS:
        allowed = R(STATION) | R(ADMIN);
        break;
    case CARELINE__V1__ENVELOPE__BODY_STATION_RESUME:
        allowed = R(STATION);
        break;
    case CARELINE__V1__ENVELOPE__BODY_COVERAGE_QUERY:
        allowed = R(BUREAU) | R(ADMIN);
        break;
    case CARELINE__V1__ENVELOPE__BODY_ADMIN_REQUEST:
        allowed = R(ADMIN);
        break;
    case CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_QUERY:
    case CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_MARK:
        allowed = R(STATION) | R(ADMIN); /* a station: its villages only (daemon/admin) */
        break;
    default: /* replies and pushes are server-to-client only */
        allowed = 0;
        break;
    }
    return role && (allowed & (1u << role));
}
