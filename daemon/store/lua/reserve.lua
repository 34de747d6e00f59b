-- Reserve capacity at the first candidate that has some left and queue the job there, or
-- return the reservation an earlier run made for this request and attempt.
-- KEYS: the reservation, then per candidate (used counter, job stream, limit override), then
-- the county's pending set; ARGV: job, request, attempt, expire-at, priority, reserve %, n,
-- then (station, limit) per candidate, then the time in ms when the request is not recorded
-- yet ("" otherwise): the reservation is listed as pending until its record commits; then
-- the oldest stream entry id to keep (entries older than any bookable day are trimmed);
-- last, KEYS: the county's generation key, ARGV: the generation the daemon verified.
-- Returns {0, station, job} reserved now, {1, station, job} reserved by an earlier run, or
-- {2, 0, held} no room (held = 1 when a candidate had only its priority share left), or,
-- reserving nothing, {3, 0, 0} when the generation key is gone (Redis lost its state: a
-- rebuild is due) and {4, 0, 0} when it differs from the daemon's (another daemon rebuilt).
-- The stream entry is a reservation marker (t = r), not for consoles: the job's console-safe
-- entry (t = o) is added by the daemon once PostgreSQL committed it (core/station.h).
-- Called from daemon/core/reserve.c.
local g = redis.call('GET', KEYS[#KEYS])
if not g then return {3, 0, 0} end
if g ~= ARGV[#ARGV] then return {4, 0, 0} end
local m = redis.call('HGET', KEYS[1], 'job')
if m then return {1, tonumber(redis.call('HGET', KEYS[1], 'station')), tonumber(m)} end
local n = tonumber(ARGV[7])
local prio = ARGV[5] == '1'
local pct = tonumber(ARGV[6])
local held = 0
for i = 1, n do
  local sid = ARGV[6 + 2 * i]
  local capk = KEYS[3 * i - 1]
  local limit = tonumber(redis.call('GET', KEYS[3 * i + 1]) or ARGV[7 + 2 * i])
  local used = tonumber(redis.call('GET', capk) or '0')
  local allowed = limit
  if not prio then allowed = limit - math.ceil(limit * pct / 100) end
  if used < allowed then
    redis.call('INCR', capk)
    redis.call('EXPIREAT', capk, ARGV[4])
    local eid = redis.call('XADD', KEYS[3 * i], 'MINID', ARGV[9 + 2 * n], '*', 't', 'r', 'job', ARGV[1], 'request', ARGV[2], 'attempt', ARGV[3])
    redis.call('HSET', KEYS[1], 'job', ARGV[1], 'station', sid, 'cap', capk, 'stream', KEYS[3 * i], 'entry', eid, 'state', 'held')
    redis.call('EXPIREAT', KEYS[1], ARGV[4])
    if ARGV[8 + 2 * n] ~= '' then
      redis.call('ZADD', KEYS[3 * n + 2], ARGV[8 + 2 * n], KEYS[1])
    end
    return {0, tonumber(sid), tonumber(ARGV[1])}
  elseif used < limit then held = 1 end
end
return {2, 0, held}
