-- 009_followups: unmet demand followed up. A caller who is not a registered resident hears
-- "社区工作人员会联系您办理登记"; from this version each such caller becomes one follow-up
-- per county (keyed by the HMAC of the number, which requests.caller_phone_hash already
-- holds): where they live when known, first and last call, number of calls, and a state
-- that the admin or the station of that village moves (open -> contacted / declined /
-- registered). Every state change is an append-only followup_events row. Registering the
-- resident (an INSERT into residents carrying phone_hash) marks the follow-up registered
-- and links it, and so its calls (followup_calls), to the new resident; the requests
-- themselves are not rewritten.
--
-- The follow-up keeps only the masked number (138****1234), like requests: the full number
-- of an unregistered caller is stored nowhere. The functions that write these tables are
-- in sql/functions/submit.sql (the not_registered record) and followup.sql (list, mark,
-- the registration trigger, the bureau's unmet-demand figures).

-- HMAC-SHA256 of residents.phone under dispatchd's phone_hash_key_file: whoever registers a
-- resident with the key at hand (the daemon's admin API) sets it, and a follow-up with the
-- same hash is then found. NULL: registered without the key (psql, the synthetic loader);
-- setting it later links the follow-up then.
ALTER TABLE residents ADD COLUMN IF NOT EXISTS phone_hash bytea
    CHECK (octet_length(phone_hash) = 32);
CREATE UNIQUE INDEX IF NOT EXISTS residents_phone_hash_idx ON residents (phone_hash)
    WHERE phone_hash IS NOT NULL;

CREATE TABLE followups (
    id               bigserial PRIMARY KEY,
    county_code      text NOT NULL CHECK (county_code ~ '^[0-9]{6}$'),
    phone_hash       bytea NOT NULL CHECK (octet_length(phone_hash) = 32),
    phone_masked     text NOT NULL,                -- 138****1234; never the full number
    village_code     division_code REFERENCES villages (code), -- where they live, when known
    town_code        division_code REFERENCES towns (code),    -- the village's town
    first_call_at    timestamptz NOT NULL,
    last_call_at     timestamptz NOT NULL CHECK (last_call_at >= first_call_at),
    calls            integer NOT NULL CHECK (calls >= 1),      -- not_registered requests
    state            text NOT NULL DEFAULT 'open'
        CHECK (state IN ('open', 'contacted', 'registered', 'declined')),
    first_contact_at timestamptz,                  -- the first change away from 'open'
    resident_id      bigint REFERENCES residents (id), -- set when registered from it
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (county_code, phone_hash),
    CHECK (first_contact_at IS NULL OR first_contact_at >= first_call_at),
    CHECK (state = 'open' OR first_contact_at IS NOT NULL),
    CHECK (village_code IS NULL OR town_code IS NOT NULL)
);
CREATE INDEX followups_village_idx ON followups (village_code, state);
CREATE INDEX followups_town_idx ON followups (town_code, state);
CREATE INDEX followups_first_call_idx ON followups (first_call_at);

CREATE TRIGGER followups_touch BEFORE UPDATE ON followups
    FOR EACH ROW EXECUTE FUNCTION careline_touch_updated_at();

-- Every state change of a follow-up (its creation as 'open' included): who, when, note.
CREATE TABLE followup_events (
    id           bigserial PRIMARY KEY,
    followup_id  bigint NOT NULL REFERENCES followups (id),
    at           timestamptz NOT NULL DEFAULT now(),
    state        text NOT NULL CHECK (state IN ('open', 'contacted', 'registered', 'declined')),
    actor        text NOT NULL,             -- 'gateway', 'admin:<principal>', 'station:12', 'registration'
    note         text NOT NULL DEFAULT '' CHECK (octet_length(note) <= 500),
    village_code division_code REFERENCES villages (code), -- set by this change, if any
    resident_id  bigint REFERENCES residents (id)          -- 'registered' by registration
);
CREATE INDEX followup_events_followup_idx ON followup_events (followup_id, id);

CREATE TRIGGER followup_events_no_update BEFORE UPDATE OR DELETE ON followup_events
    FOR EACH ROW EXECUTE FUNCTION careline_append_only();
CREATE TRIGGER followup_events_no_truncate BEFORE TRUNCATE ON followup_events
    FOR EACH STATEMENT EXECUTE FUNCTION careline_append_only();

-- The not_registered requests of a follow-up: written with the request, never changed. Once
-- the follow-up has a resident, these are that resident's earlier calls.
CREATE TABLE followup_calls (
    request_id  bigint PRIMARY KEY REFERENCES requests (id),
    followup_id bigint NOT NULL REFERENCES followups (id)
);
CREATE INDEX followup_calls_followup_idx ON followup_calls (followup_id);

CREATE TRIGGER followup_calls_no_update BEFORE UPDATE OR DELETE ON followup_calls
    FOR EACH ROW EXECUTE FUNCTION careline_append_only();

-- careline_app writes through the submit statement and careline_followup_mark; the bureau
-- sees only careline_unmet_demand()'s aggregates (sql/functions/followup.sql).
GRANT SELECT, INSERT ON followups, followup_events, followup_calls TO careline_app;
GRANT UPDATE (village_code, town_code, last_call_at, calls, state, first_contact_at,
              resident_id) ON followups TO careline_app;
REVOKE UPDATE, DELETE, TRUNCATE ON followup_events, followup_calls FROM careline_app;
GRANT USAGE ON SEQUENCE followups_id_seq, followup_events_id_seq TO careline_app;
