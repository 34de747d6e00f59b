-- 005_phone_hmac: caller-phone hashes become keyed. requests.caller_phone_hash was the plain
-- SHA-256 of an 11-digit number: anyone holding the table could find every number by
-- hashing all of them. From this version dispatchd stores HMAC-SHA256(phone) under a key
-- read from its phone_hash_key_file, which the database never sees.
--
-- The old hashes cannot be re-keyed here (the key is not in the database) and, for callers
-- who are not registered residents, not at all: requests keep only the masked number
-- (139****0001), so their plain number exists nowhere. All old hashes are therefore dropped
-- (NULL), so none can be enumerated. What is lost: StatusQuery / CancelRequest by phone no
-- longer finds an unregistered caller's requests made before this migration (by request id
-- or idempotency key they are still found; registered residents are found by resident_id as
-- before). deploy/rehash-phones.sh KEYFILE CONNINFO afterwards gives registered residents'
-- old requests a keyed hash again, from residents.phone.
--
-- A request of an unregistered caller is still identified: by its masked number.

DO $$
DECLARE
    c record;
BEGIN
    -- 002's unnamed CHECK (resident_id IS NOT NULL OR caller_phone_hash IS NOT NULL)
    FOR c IN SELECT conname FROM pg_constraint
              WHERE conrelid = 'requests'::regclass AND contype = 'c'
                AND pg_get_constraintdef(oid) LIKE '%resident_id IS NOT NULL%caller_phone_hash IS NOT NULL%'
    LOOP
        EXECUTE format('ALTER TABLE requests DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$;
ALTER TABLE requests ADD CONSTRAINT requests_caller_known
    CHECK (resident_id IS NOT NULL OR caller_phone_masked IS NOT NULL);

UPDATE requests SET caller_phone_hash = NULL WHERE caller_phone_hash IS NOT NULL;
COMMENT ON COLUMN requests.caller_phone_hash IS
    'HMAC-SHA256 of the normalised number under dispatchd''s phone_hash_key_file (never stored in the database); NULL for requests made before 005_phone_hmac';
