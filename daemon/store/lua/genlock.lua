-- Takes the county's rebuild lock and clears what the rebuild will write anew, or says why
-- not. KEYS: the generation key, the lock; ARGV: owner (server id), Redis' run_id now, lock
-- TTL in ms, force ('1': rebuild even a generation current for this run_id, which
-- PostgreSQL has found behind its own), then the patterns of the keys to clear (the county's counters, reservations,
-- streams and pending set; limit overrides stay: they are the stations' word).
-- Returns 1 (locked and cleared: rebuild now), 0 (another daemon holds the lock: wait) or 2
-- (the generation is current for this run_id after all: adopt it).
-- Called from daemon/core/rebuild.c.
local g = redis.call('GET', KEYS[1])
if ARGV[4] ~= '1' and g and string.match(g, ' (%S+)$') == ARGV[2] then return 2 end
local o = redis.call('GET', KEYS[2])
if o and o ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
redis.call('DEL', KEYS[1])
-- SCAN, not KEYS (which the daemon's ACL user may not run); the script is atomic all the same
for p = 5, #ARGV do
  local cur = '0'
  repeat
    local r = redis.call('SCAN', cur, 'MATCH', ARGV[p], 'COUNT', 1000)
    cur = r[1]
    if #r[2] > 0 then redis.call('DEL', unpack(r[2])) end
  until cur == '0'
end
return 1
