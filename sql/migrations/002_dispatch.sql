-- 002_dispatch: principals (auth), requests, jobs, the append-only event log, welfare alerts,
-- dead letters and terminal sessions, and the composite type careline_job_update returns.
-- The functions that write them are in sql/functions/ (submit, finish, station).

-- ---------------------------------------------------------------------------------------
-- Principals: a bearer token maps to a role; only SHA-256(token) is stored.
-- Look-up: WHERE token_hash = sha256(convert_to($1, 'UTF8')) AND revoked_at IS NULL.

CREATE TABLE principals (
    id         bigserial PRIMARY KEY,
    token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    role       text NOT NULL CHECK (role IN ('gateway', 'station', 'bureau', 'admin')),
    station_id bigint REFERENCES stations (id),
    name       text NOT NULL,              -- label shown in HelloOk.principal_name and logs
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,                -- non-null: the token no longer authenticates
    CHECK ((role = 'station') = (station_id IS NOT NULL))
);

-- ---------------------------------------------------------------------------------------
-- Requests: one row per SubmitRequest (first submission of an idempotency key).
-- state mirrors the latest request_events row for the request.

CREATE TABLE requests (
    id                  bigserial PRIMARY KEY,
    idempotency_key     text NOT NULL UNIQUE
        CHECK (octet_length(idempotency_key) BETWEEN 1 AND 128),
    content_hash        bytea NOT NULL CHECK (octet_length(content_hash) = 32), -- SHA-256 of the
                                                 -- canonical request; same key + other hash = CONFLICT
    resident_id         bigint REFERENCES residents (id),  -- null: caller not registered
    village_code        division_code REFERENCES villages (code), -- resident's village at submit
    caller_phone_masked text,                   -- e.g. 139****1234; never the full number
    caller_phone_hash   bytea CHECK (octet_length(caller_phone_hash) = 32), -- SHA-256 of the
                                                 -- normalised number, to count repeat callers
    kind                text NOT NULL CHECK (kind IN ('meal_delivery', 'home_care')),
    meal_slot           text CHECK (meal_slot IN ('lunch', 'dinner')),
    service_date        date NOT NULL DEFAULT careline_local_date(now()), -- county calendar day
    care_subtype        care_subtype,
    note                text NOT NULL DEFAULT '' CHECK (octet_length(note) <= 500),
    urgency             text NOT NULL DEFAULT 'normal' CHECK (urgency IN ('normal', 'urgent')),
    priority            text[] NOT NULL DEFAULT '{}'
        CHECK (priority <@ ARRAY['lives_alone', 'disabled', 'aged_80_plus']),
    state               request_state NOT NULL,
    reason_code         reason_code,                -- why not queued / why final
    reason              text,                       -- human sentence (English)
    station_id          bigint REFERENCES stations (id), -- current or last station
    job_id              bigint,                     -- current or last job (FK added below)
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0), -- jobs offered so far
    window_start        timestamptz,
    window_end          timestamptz,
    travel_minutes      integer CHECK (travel_minutes >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'meal_delivery' OR meal_slot IS NOT NULL),
    CHECK (kind = 'meal_delivery' OR meal_slot IS NULL),
    CHECK (kind <> 'home_care' OR care_subtype IS NOT NULL),
    CHECK (kind = 'home_care' OR care_subtype IS NULL),
    CHECK (window_end IS NULL OR window_start IS NULL OR window_end >= window_start),
    CHECK (resident_id IS NOT NULL OR caller_phone_hash IS NOT NULL)
);
CREATE INDEX requests_created_idx ON requests (created_at);
CREATE INDEX requests_resident_idx ON requests (resident_id, created_at DESC);
-- callers who are not registered residents, found by their number's hash (registered ones
-- are found by resident_id; a hash index over everyone would be a random insert each time)
CREATE INDEX requests_caller_hash_idx ON requests (caller_phone_hash, created_at DESC)
    WHERE resident_id IS NULL;
CREATE INDEX requests_station_date_idx ON requests (station_id, service_date);
CREATE INDEX requests_village_date_idx ON requests (village_code, service_date);
-- what the sweep resumes (a crash left it 'received') and retries (the waitlist)
CREATE INDEX requests_received_idx ON requests (created_at) WHERE state = 'received';
CREATE INDEX requests_waitlisted_idx ON requests (service_date, created_at)
    WHERE state = 'waitlisted';

CREATE TRIGGER requests_touch BEFORE UPDATE ON requests
    FOR EACH ROW EXECUTE FUNCTION careline_touch_updated_at();

-- ---------------------------------------------------------------------------------------
-- Jobs: one offer of a request to one station (attempt 1, 2, ... on re-dispatch).

CREATE TABLE jobs (
    id               bigserial PRIMARY KEY,
    request_id       bigint NOT NULL REFERENCES requests (id),
    station_id       bigint NOT NULL REFERENCES stations (id),
    attempt          integer NOT NULL CHECK (attempt >= 1),
    state            job_state NOT NULL DEFAULT 'offered',
    reason_code      reason_code,                 -- for rejected / failed / expired / cancelled
    reason           text,
    travel_minutes   integer CHECK (travel_minutes >= 0),
    offered_at       timestamptz NOT NULL DEFAULT now(),
    offer_expires_at timestamptz NOT NULL,
    accepted_at      timestamptz,
    finished_at      timestamptz,                 -- entered a final state
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (request_id, attempt)
);
-- at most one live job per request
CREATE UNIQUE INDEX jobs_one_live_per_request ON jobs (request_id)
    WHERE state IN ('offered', 'accepted', 'en_route');
CREATE INDEX jobs_station_state_idx ON jobs (station_id, state);
CREATE INDEX jobs_offer_expiry_idx ON jobs (offer_expires_at) WHERE state = 'offered';

CREATE TRIGGER jobs_touch BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION careline_touch_updated_at();

ALTER TABLE requests ADD CONSTRAINT requests_job_fk FOREIGN KEY (job_id) REFERENCES jobs (id);

-- careline_submit_resolve_set takes request and job ids from these sequences; a
-- backend-local cache of ids means most resolve transactions write no WAL and so wait for
-- no WAL flush at commit (ids are unique, not ordered across connections; request_events
-- keeps its uncached sequence, whose order is the history's order)
ALTER SEQUENCE requests_id_seq CACHE 64;
ALTER SEQUENCE jobs_id_seq CACHE 64;

-- What careline_job_update (sql/functions/station.sql) returns for one JobUpdate.
CREATE TYPE careline_job_update_result AS (
    outcome       text,    -- changed | repeat | not_found | invalid
    job_state     text,
    request_id    bigint,
    attempt       integer,
    request_state text,
    redispatch    boolean, -- the request needs the next station
    welfare       boolean  -- a welfare alert was raised
);

-- ---------------------------------------------------------------------------------------
-- Request events: every state change, append-only (trigger below + no UPDATE/DELETE grant).

CREATE TABLE request_events (
    id          bigserial PRIMARY KEY,
    request_id  bigint NOT NULL REFERENCES requests (id),
    job_id      bigint REFERENCES jobs (id),
    at          timestamptz NOT NULL DEFAULT now(),
    state       request_state NOT NULL,          -- the request's state after this event
    job_state   job_state,                       -- the job's state after it, if a job moved
    actor       text NOT NULL,                   -- 'gateway', 'station:12', 'daemon', 'bureau', 'admin'
    reason_code reason_code,
    reason      text,
    station_id  bigint REFERENCES stations (id)
);
CREATE INDEX request_events_request_idx ON request_events (request_id, id);
CREATE INDEX request_events_at_idx ON request_events (at);

-- careline_append_only (sql/base/triggers.sql) refuses every change
CREATE TRIGGER request_events_no_update BEFORE UPDATE OR DELETE ON request_events
    FOR EACH ROW EXECUTE FUNCTION careline_append_only();
CREATE TRIGGER request_events_no_truncate BEFORE TRUNCATE ON request_events
    FOR EACH STATEMENT EXECUTE FUNCTION careline_append_only();

-- ---------------------------------------------------------------------------------------
-- Welfare alerts (探访关爱): e.g. a lives-alone resident not at home at delivery time.

CREATE TABLE welfare_alerts (
    id          bigserial PRIMARY KEY,
    request_id  bigint REFERENCES requests (id),
    job_id      bigint REFERENCES jobs (id),
    resident_id bigint REFERENCES residents (id),
    station_id  bigint REFERENCES stations (id),
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolved_by text
);
CREATE INDEX welfare_alerts_open_idx ON welfare_alerts (created_at) WHERE resolved_at IS NULL;

-- Requests no station took after max attempts; the bureau follows up.
CREATE TABLE dead_letters (
    request_id       bigint PRIMARY KEY REFERENCES requests (id),
    at               timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL CHECK (attempts >= 0),
    last_reason      text,
    last_reason_code reason_code,
    resolved_at      timestamptz
);

-- A station console's connection; the terminal indicator counts stations with a session
-- overlapping the period.
CREATE TABLE terminal_sessions (
    id              bigserial PRIMARY KEY,
    station_id      bigint NOT NULL REFERENCES stations (id),
    daemon_id       text NOT NULL,               -- HelloOk.server_id of the daemon holding it
    peer            text,                        -- ip:port, for operators
    connected_at    timestamptz NOT NULL DEFAULT now(),
    disconnected_at timestamptz,                 -- null: connected (or the daemon died: see
                                                 -- reconciliation on daemon start)
    CHECK (disconnected_at IS NULL OR disconnected_at >= connected_at)
);
CREATE INDEX terminal_sessions_station_idx ON terminal_sessions (station_id, connected_at);
CREATE INDEX terminal_sessions_open_idx ON terminal_sessions (daemon_id)
    WHERE disconnected_at IS NULL;
