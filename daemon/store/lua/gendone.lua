-- Ends a rebuild: writes the stations' recorded limits and publishes the new generation
-- ("GEN RUN_ID"), then drops the lock. The limits go in the same script as the generation:
-- caplim.lua refuses while the generation key is gone, so no station's newer word can be
-- written before these and then overwritten by them (rebuild.h).
-- KEYS: the generation key, the lock, then a limit key per recorded limit; ARGV: owner, the
-- generation value, then (limit, expire-at) per limit key.
-- Returns 1; an error when the lock is not the caller's (see genfill.lua).
-- Called from daemon/core/rebuild.c.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('NOTOWNER the rebuild lock was lost')
end
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], ARGV[2 * i - 3])
  redis.call('EXPIREAT', KEYS[i], ARGV[2 * i - 2])
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
return 1
