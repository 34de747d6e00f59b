#!/usr/bin/env bash
# rehash-phones.sh KEYFILE CONNINFO — after migration 005_phone_hmac (which dropped every
# unkeyed SHA-256 phone hash), gives the requests of registered residents their keyed hash
# back, and residents registered without the key theirs (residents.phone_hash, which links
# a follow-up of their number: 009_followups.sql): HMAC-SHA256(phone) under the key
# dispatchd reads from phone_hash_key_file (KEYFILE; the same bytes: trailing newlines
# dropped, 32..256 bytes), computed from residents.phone for each resident without one and
# for each request whose masked number (139****0001) is that resident's. Unregistered
# callers' old requests cannot be re-keyed: their number is stored nowhere (see the
# migration). Idempotent: only requests and residents without a hash are touched. One
# transaction.
#
#   KEYFILE    the phone-hash key file (mode 600), as in dispatchd's config
#   CONNINFO   libpq conninfo of a superuser on the careline database
#
# The key never appears on a command line or in the database: this script passes HMAC's two
# padded keys (K xor ipad, K xor opad) to this one statement on psql's standard input, with
# statement logging switched off for the session, and the server computes
# sha256(K^opad || sha256(K^ipad || phone)) with its built-in sha256().
set -euo pipefail

usage() {
    echo "usage: $0 KEYFILE CONNINFO" >&2
    exit 2
}
die() {
    echo "rehash-phones: $*" >&2
    exit 1
}
[ $# -eq 2 ] || usage
keyfile=$1 conninfo=$2
[ -f "$keyfile" ] && [ -r "$keyfile" ] || die "cannot read the key file $keyfile"
case $(stat -c %A "$keyfile") in
???????r* | ????????w* | ?????w*) die "$keyfile may be read or written by others: chmod 600 $keyfile" ;;
esac

# the key's bytes in hex, without trailing newlines (as dispatchd reads it)
hex=$(od -An -v -tx1 "$keyfile" | tr -d ' \n')
while [[ $hex == *0a || $hex == *0d ]]; do hex=${hex%??}; done
len=$((${#hex} / 2))
((len >= 32 && len <= 256)) || die "$keyfile holds $len bytes; a key is 32..256 bytes"
if ((len > 64)); then # HMAC hashes a key longer than its block first
    hex=$(head -c "$len" "$keyfile" | sha256sum | cut -c1-64)
fi
ipad='' opad=''
for ((i = 0; i < 128; i += 2)); do # the key, zero-padded to the 64-byte block
    b=0
    if ((i < ${#hex})); then b=$((16#${hex:i:2})); fi
    ipad+=$(printf '%02x' $((b ^ 0x36)))
    opad+=$(printf '%02x' $((b ^ 0x5c)))
done
unset hex

psql -X -q -v ON_ERROR_STOP=1 -d "$conninfo" <<SQL
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SET log_min_error_statement = panic;
BEGIN;
WITH upd AS (
    UPDATE requests q
       SET caller_phone_hash = sha256(decode('$opad', 'hex')
                                      || sha256(decode('$ipad', 'hex')
                                                || convert_to(r.phone, 'UTF8')))
      FROM residents r
     WHERE q.resident_id = r.id AND q.caller_phone_hash IS NULL
       AND q.caller_phone_masked IS NOT NULL
       AND q.caller_phone_masked = left(r.phone, 3)
                                   || repeat('*', greatest(length(r.phone) - 7, 0))
                                   || right(r.phone, 4)
    RETURNING 1)
SELECT count(*) AS n FROM upd \gset
-- residents registered without the key (psql, the synthetic loader) get theirs; the
-- residents_followup trigger then links a follow-up of that number (009_followups.sql)
WITH upd AS (
    UPDATE residents r
       SET phone_hash = sha256(decode('$opad', 'hex')
                               || sha256(decode('$ipad', 'hex') || convert_to(r.phone, 'UTF8')))
     WHERE r.phone_hash IS NULL
    RETURNING 1)
SELECT count(*) AS m FROM upd \gset
COMMIT;
\echo rehash-phones: :n requests of registered residents re-keyed, :m residents given their hash
SQL
