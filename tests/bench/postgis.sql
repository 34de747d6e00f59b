-- postgis.sql: the PostGIS reference for the nearest-station row of make bench, in its own
-- database (bench_geo). 600,000 random points in the same box as tools/bench-match (70% in
-- the populous east, 20-42 N x 108-123 E; 30% anywhere in 18-54 N x 73-135 E), a GiST
-- index, and ANALYZE; postgis-knn.pgbench then asks ORDER BY geom <-> point LIMIT 1.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS postgis;
SELECT setseed(0.6);
CREATE TABLE bench_stations AS
SELECT g AS id,
       CASE WHEN e THEN ST_SetSRID(ST_MakePoint(108 + random() * 15, 20 + random() * 22), 4326)
            ELSE ST_SetSRID(ST_MakePoint(73 + random() * 62, 18 + random() * 36), 4326) END
           AS geom
FROM (SELECT g, random() < 0.7 AS e FROM generate_series(1, 600000) g) x;
ALTER TABLE bench_stations ADD PRIMARY KEY (id);
CREATE INDEX bench_stations_geom ON bench_stations USING gist (geom);
VACUUM ANALYZE bench_stations;
