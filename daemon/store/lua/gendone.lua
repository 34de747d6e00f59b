-- Ends a rebuild: publishes the new generation ("GEN RUN_ID") and drops the lock.
-- KEYS: the generation key, the lock; ARGV: owner, the generation value.
-- Returns 1; an error when the lock is not the caller's (see genfill.lua).
-- Called from daemon/core/rebuild.c.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('NOTOWNER the rebuild lock was lost')
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
return 1
