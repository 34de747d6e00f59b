-- consoles.sql: extra stations for the "10,000 consoles on one daemon" scenario, one
-- console each. They stand in a bench town out at sea east of Yuyao (lat 30.6-31.6,
-- lon 122.6-123.6), beyond any Yuyao resident's service circle, so the Yuyao jobs still go
-- to the Yuyao stations while the daemon holds every session (heartbeats, periodic
-- re-reads). Variable: n = total number of stations wanted (Yuyao's included).
INSERT INTO towns (code, name, kind, lat, lon, area_kind)
VALUES ('330281990000', '压测镇', 'town', 31.1, 123.1, 'rural') ON CONFLICT DO NOTHING;
INSERT INTO villages (code, town_code, name, kind, lat, lon, area_kind, elderly_population)
VALUES ('330281990001', '330281990000', '压测村', 'village', 31.1, 123.1, 'rural', 100)
ON CONFLICT DO NOTHING;
INSERT INTO stations (code, name, town_code, village_code, kind, lat, lon,
                      offers_meal_delivery, meal_capacity_lunch, meal_capacity_dinner)
SELECT 'bench-' || g, '压测站' || g, '330281990000', '330281990001', 'village_station',
       30.6 + (g % 100) * 0.01, 122.6 + (g / 100) * 0.01, true, 100, 100
FROM generate_series(1, greatest(0, :n - (SELECT count(*) FROM stations
                                          WHERE active AND code NOT LIKE 'bench-%'))) g
ON CONFLICT (code) DO NOTHING;
INSERT INTO principals (token_hash, role, station_id, name)
SELECT sha256(convert_to('bench-station-' || id, 'UTF8')), 'station', id, 'bench'
FROM stations WHERE active
ON CONFLICT (token_hash) DO NOTHING;
