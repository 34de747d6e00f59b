/*
 * auth: tokens and roles. A token is a random bearer secret; only its SHA-256 is stored
 * (principals.token_hash) — tokens are high-entropy, so a slow password hash adds nothing.
 * The permission table says which message each role may send.
 */
#ifndef CARELINE_AUTH_H
#define CARELINE_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "careline.pb-c.h"
#include "common/util.h"

#define AUTH_HASH_LEN  32
#define AUTH_TOKEN_MAX 256

typedef Careline__V1__Role Role;

/* SHA-256 of the token bytes. */
void auth_token_hash(const char *token, uint8_t out[AUTH_HASH_LEN]);
/* Lower-case hex of the hash, NUL-terminated (65 bytes). */
void auth_token_hash_hex(const char *token, char out[2 * AUTH_HASH_LEN + 1]);

/* 1..AUTH_TOKEN_MAX printable ASCII characters: anything else is refused unhashed. */
bool auth_token_well_formed(const char *token);

/* The one query that maps a token's hash (hex, $1) to (role, station id, name, id); read its
 * columns by these names (store/pgcols.h). station_id is 0 for a principal of no station. */
#define AUTH_LOOKUP_SQL                                                                            \
    "SELECT role, coalesce(station_id, 0) AS station_id, name, id FROM principals "                \
    "WHERE token_hash = decode($1, 'hex') AND revoked_at IS NULL"
#define AUTH_COL_ROLE    "role"
#define AUTH_COL_STATION "station_id"
#define AUTH_COL_NAME    "name"
#define AUTH_COL_ID      "id"

/* Maps the principals.role column ("gateway", ...) to a Role; ROLE_UNSPECIFIED if unknown. */
Role auth_role_parse(const char *s);
const char *auth_role_name(Role r);

/* true when `role` may send an Envelope with this body. Hello/Ping/Pong: every role. */
bool auth_allowed(Role role, Careline__V1__Envelope__BodyCase body);

#endif
