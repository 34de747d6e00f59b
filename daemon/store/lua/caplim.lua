-- The station's word on what it can still serve: limit = used so far + what it has left.
-- KEYS: the used counter, the limit override; ARGV: what is left, expire-at.
-- Run by StationStatus (daemon/core/station_status.c) once per capacity entry; the daemon
-- uses only whether it succeeded, not the count it returns.
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('SET', KEYS[2], used + tonumber(ARGV[1]))
redis.call('EXPIREAT', KEYS[2], ARGV[2])
return used
