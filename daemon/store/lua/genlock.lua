-- Takes the county's rebuild lock and clears what the rebuild will write anew, or says why
-- not. KEYS: the generation key, the lock; ARGV: owner (server id), Redis' run_id now, lock
-- TTL in ms, then the patterns of the keys to clear (the county's counters, reservations,
-- streams and pending set; limit overrides stay: they are the stations' word).
-- Returns 1 (locked and cleared: rebuild now), 0 (another daemon holds the lock: wait) or 2
-- (the generation is current for this run_id after all: adopt it).
-- Called from daemon/core/rebuild.c.
local g = redis.call('GET', KEYS[1])
if g and string.match(g, ' (%S+)$') == ARGV[2] then return 2 end
local o = redis.call('GET', KEYS[2])
if o and o ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
redis.call('DEL', KEYS[1])
for p = 4, #ARGV do
  local ks = redis.call('KEYS', ARGV[p])
  for i = 1, #ks, 500 do redis.call('DEL', unpack(ks, i, math.min(i + 499, #ks))) end
end
return 1
