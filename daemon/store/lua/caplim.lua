-- The station's word on what it can still serve: limit = used so far + what it has left.
-- KEYS: the used counter, the limit override, the county's generation key; ARGV: what is
-- left, expire-at. Refused while Redis' state is lost (the counter would read 0).
-- Run by StationStatus (daemon/core/station_status.c) once per capacity entry; the daemon
-- uses only whether it succeeded, not the count it returns.
if redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('LOST Redis state is being rebuilt from the database')
end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('SET', KEYS[2], used + tonumber(ARGV[1]))
redis.call('EXPIREAT', KEYS[2], ARGV[2])
return used
