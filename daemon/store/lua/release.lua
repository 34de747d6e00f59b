-- Give a reservation's capacity back once (cancel, or a reservation nobody will use), and
-- drop it from the pending set. With ARGV[2] = '1' its stream entry goes too: the job was
-- never recorded (an orphan, or a key recorded meanwhile by someone else).
-- KEYS: the reservation, the pending set, the county's generation key; ARGV: why,
-- drop-entry. Returns 0 (no such reservation, or Redis lost its state: the rebuild counts
-- only PostgreSQL's live jobs), 1 (released before: nothing to give back) or 2 (given back
-- now). Called from daemon/core/reserve.c.
if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], KEYS[1])
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 0 end
if st ~= 'held' then return 1 end
local capk = redis.call('HGET', KEYS[1], 'cap')
if tonumber(redis.call('GET', capk) or '0') > 0 then redis.call('DECR', capk) end
if ARGV[2] == '1' then
  local sk = redis.call('HGET', KEYS[1], 'stream')
  local e = redis.call('HGET', KEYS[1], 'entry')
  if sk and e then redis.call('XDEL', sk, e) end
end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
return 2
