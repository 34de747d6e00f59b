-- Writes one chunk of a rebuild: per live job, a unit on its capacity counter, an entry on
-- its station's stream and its reservation hash (as reserve.lua would have).
-- KEYS: the rebuild lock, then per job (counter, stream, reservation); ARGV: owner, lock TTL
-- in ms, then per job (station, request, attempt, job, expire-at).
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
  local a = 2 + 5 * (i - 1)
  redis.call('INCR', capk)
  redis.call('EXPIREAT', capk, ARGV[a + 5])
  local eid = redis.call('XADD', sk, '*', 'job', ARGV[a + 4], 'request', ARGV[a + 2], 'attempt', ARGV[a + 3])
  redis.call('HSET', rk, 'job', ARGV[a + 4], 'station', ARGV[a + 1], 'cap', capk, 'stream', sk, 'entry', eid, 'state', 'held')
  redis.call('EXPIREAT', rk, ARGV[a + 5])
end
return n
