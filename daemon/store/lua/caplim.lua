-- The station's word on what it can still serve, already recorded in PostgreSQL
-- (station_status_events): the limit = its live jobs then + what it said it has left.
-- KEYS: the limit override, the county's generation key; ARGV: the limit, expire-at.
-- Refused while Redis' state is lost or being rebuilt (the generation key is gone): the
-- rebuild writes the recorded limits itself, in the same script that publishes the new
-- generation (gendone.lua), so a limit written here is never older than the rebuild's.
-- Run by StationStatus (daemon/core/station_status.c) once per capacity entry.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.error_reply('LOST Redis state is being rebuilt from the database')
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return 1
