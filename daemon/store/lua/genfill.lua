-- Writes one chunk of a rebuild: per live job, a unit on its capacity counter, an entry on
-- its station's stream and its reservation hash (as reserve.lua and the commit would have).
-- The stream entry is the job's console-safe entry (t = o, the packed JobOffer the daemon
-- read from PostgreSQL: consoles are served from it, core/station.h), or a reservation
-- marker (t = r) when that is empty (the job ended between the two reads).
-- KEYS: the rebuild lock, then per job (counter, stream, reservation); ARGV: owner, lock TTL
-- in ms, then per job (station, request, attempt, job, expire-at, packed offer or "").
-- Returns the number of jobs written; an error when the lock is not the caller's (it
-- expired and another daemon took over: its rebuild wins).
-- Called from daemon/core/rebuild.c.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('NOTOWNER the rebuild lock was lost')
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local n = (#KEYS - 1) / 3
for i = 1, n do
  local capk, sk, rk = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  local a = 2 + 6 * (i - 1)
  redis.call('INCR', capk)
  redis.call('EXPIREAT', capk, ARGV[a + 5])
  local eid
  if ARGV[a + 6] ~= '' then
    eid = redis.call('XADD', sk, '*', 't', 'o', 'st', ARGV[a + 1], 'job', ARGV[a + 4], 'request', ARGV[a + 2], 'p', ARGV[a + 6])
  else
    eid = redis.call('XADD', sk, '*', 't', 'r', 'job', ARGV[a + 4], 'request', ARGV[a + 2], 'attempt', ARGV[a + 3])
  end
  redis.call('HSET', rk, 'job', ARGV[a + 4], 'station', ARGV[a + 1], 'cap', capk, 'stream', sk, 'entry', eid, 'state', 'held')
  redis.call('EXPIREAT', rk, ARGV[a + 5])
end
return n
