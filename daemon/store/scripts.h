/*
 * scripts: the Redis Lua scripts, each in its own file under daemon/store/lua/ (read, lint
 * and try them with redis-cli --eval), compiled in as C strings by tools/embed.sh. Each
 * file's opening comment is its contract: KEYS, ARGV and the reply.
 */
#ifndef CARELINE_SCRIPTS_H
#define CARELINE_SCRIPTS_H

extern const char lua_reserve[]; /* check + reserve + XADD, idempotent per (request, attempt) */
extern const char lua_release[]; /* give a reservation's capacity back once */
extern const char lua_caplim[];  /* a station's capacity override from what it has left */
extern const char lua_genlock[]; /* take the county's rebuild lock, clear what it rewrites */
extern const char lua_genfill[]; /* one chunk of a rebuild's live jobs */
extern const char lua_gendone[]; /* publish the rebuilt generation, drop the lock */

#endif
