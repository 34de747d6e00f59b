/*
 * config: every tunable of dispatchd in one Config struct, described by one table
 * (name, type, default, bounds, reloadable, meaning) that common/cfg loads. Values come,
 * later winning, from the defaults, the INI file (`key = value`, '#' comments, an optional
 * [dispatchd] section), the environment (CARELINE_<KEY>, e.g. CARELINE_LISTEN_PORT) and the command
 * line
 * (--key=value or --key value; '-' and '_' are interchangeable). An unknown key, a value
 * out of range or a malformed number is an error naming the key and the source.
 */
#ifndef CARELINE_CONFIG_H
#define CARELINE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/cfg.h"
#include "common/util.h"

#define CONFIG_STR_MAX 512

typedef struct Config {
    char listen_addr[64]; /* protocol listener address */
    int listen_port;      /* 0 = ephemeral (tests; see port_file) */
    char http_addr[64];   /* HTTP (health, metrics, queries) address */
    int http_port;        /* 0 = ephemeral */
    char port_file[256];  /* when set: "proto PORT\nhttp PORT\n" written once listening */
    char server_id[64];   /* this instance's name; empty = hostname-pid */
    char log_level[16];   /* error | warn | info | debug */
    char pg_conninfo[CONFIG_STR_MAX]; /* libpq conninfo (names: config_resolve_hosts) */
    int pg_pool_size;                 /* connections to PostgreSQL */
    int pg_query_timeout_ms;          /* a query slower than this fails and its link is reset */
    int pg_max_queue;                 /* queries waiting for a connection before OVERLOADED */
    int pg_stall_ms;        /* busy and no answer this long = the breaker opens; 0 = off */
    int submit_deadline_ms; /* a submission is answered within this */
    int session_lease_ms;   /* a daemon's terminal sessions lapse this long after its lease */
    char redis_host[64];    /* Redis address (names: config_resolve_hosts) */
    int redis_port;
    int redis_op_timeout_ms;   /* a Redis reply later than this resets the link */
    int redis_max_inflight;    /* Redis commands in flight before OVERLOADED */
    int max_frame_bytes;       /* largest Envelope accepted (payload bytes) */
    int max_clients;           /* protocol connections; the listener pauses at the limit */
    int hello_timeout_ms;      /* a connection must authenticate within this */
    int idle_timeout_ms;       /* a connection silent this long is closed */
    int heartbeat_interval_ms; /* advertised in HelloOk: clients ping at least this often */
    int obuf_soft_bytes;       /* output above this pauses reading from the peer */
    int obuf_hard_bytes;       /* output above this closes the connection */
    int obuf_soft_seconds;     /* output above soft for this long closes the connection */
    int max_inflight_per_conn; /* requests awaiting PG/Redis per connection before pausing */
    int so_sndbuf_bytes;       /* kernel send buffer per connection; 0 = the kernel's default */
    int frames_per_wakeup;     /* frames handled per read event before yielding */
    int http_timeout_ms;       /* HTTP request read/write timeout */
    int shutdown_timeout_ms;   /* SIGTERM: in-flight work gets this long, then force close */
    /* token checks and abuse limits (net/authcache.c) */
    int auth_cache_ttl_ms;    /* a good token is trusted this long unchecked; 0 = no cache */
    int auth_negative_ttl_ms; /* a failed token is refused this long unchecked; 0 = no cache */
    int auth_cache_entries;   /* entries of each of those caches (oldest evicted) */
    int auth_max_inflight;    /* token lookups running in PostgreSQL at once */
    int auth_max_waiting;     /* lookups waiting for that budget before OVERLOADED */
    int auth_fail_limit;      /* failures from one address within the window: lockout; 0 = off */
    int auth_fail_window_ms;  /* the window those failures are counted in */
    int auth_lockout_ms;      /* how long a locked-out address is refused unchecked */
    int auth_addr_entries;    /* addresses tracked for failures (oldest evicted) */
    /* dispatch */
    char county_code[16];  /* 6-digit county code; Redis keys are tagged with it */
    double circle_minutes; /* the service circle ("15-minute circle") */
    double detour_urban, detour_rural, detour_mountain;          /* road km per great-circle km */
    double speed_urban_kmh, speed_rural_kmh, speed_mountain_kmh; /* mean travel speed */
    char lunch_window[16];         /* "HH:MM-HH:MM" local: when lunch is delivered */
    char dinner_window[16];        /* "HH:MM-HH:MM" local: when dinner is delivered */
    int care_window_minutes;       /* length of a home-care visit's promised window */
    int care_lead_minutes;         /* earliest start of a home-care visit after the call */
    int care_visits_per_caregiver; /* home-care visits per caregiver per day (capacity) */
    int priority_reserve_pct;      /* share of each capacity kept for priority residents */
    int booking_days;              /* how many days ahead a meal may be booked */
    int match_candidates;          /* nearest eligible stations tried per request */
    int offer_timeout_s;           /* a station must accept within this (re-dispatch after) */
    int max_attempts;              /* stations offered a request before it is dead-lettered */
    int console_refresh_ms;        /* read each console's stream this often (missed wake-ups) */
    int reconcile_interval_ms;     /* sweep for unfinished and waitlisted requests */
    int reconcile_age_ms;          /* a request unfinished this long is resumed by the sweep */
    int orphan_grace_ms;           /* a reservation never recorded is given back when this old */
#ifdef CARELINE_TESTING
    /* the test build only (make SAN=1 defines CARELINE_TESTING; the release build has
     * neither these keys nor the hook, so no file, environment or flag can set them) */
    char fault_point[32]; /* kill the process at this point (see core/submit.c) */
    int fault_after;      /* ... on the Nth time it is reached */
#endif
    /* ---- Redis AUTH (issue 12) ---- */
    char redis_user[64];                      /* ACL user for AUTH; empty = Redis' default */
    char redis_password_file[CONFIG_STR_MAX]; /* its password's file; empty = no AUTH */
    /* personal data (issue 12): the phone-hash key */
    char phone_hash_key_file[256]; /* HMAC-SHA256 key for caller-phone hashes (file, >= 32 B) */
    /* TLS and the HTTP listener's limits (net/tls.h, net/http.c) */
    char tls_cert_file[256];      /* server certificate chain (PEM); empty = no TLS */
    char tls_key_file[256];       /* its private key (PEM); empty = in tls_cert_file */
    char tls_ca_file[256];        /* CA that signs client certificates (tls_client_certs) */
    char tls_client_certs[16];    /* off | optional | required (stations need one) */
    int allow_plaintext_loopback; /* 1: no certificate is fine while both listeners are loopback */
    int http_max_conns;           /* open HTTP connections; more are closed at once */
    int http_max_conns_per_addr;  /* open HTTP connections from one IP address */
    int http_request_deadline_ms; /* a request must arrive whole within this of connecting */
} Config;

/* Keys at the end of config_table that only the test build has (never in the example
 * config, which a release dispatchd must accept). */
#ifdef CARELINE_TESTING
#define CONFIG_TEST_ONLY_KEYS 2
#else
#define CONFIG_TEST_ONLY_KEYS 0
#endif

/* The key table behind the functions below (common/cfg.h), for callers that want the
 * generic loader directly (e.g. cfg_argv for --key=value). */
extern const CfgTable config_table;

/* Fills c with the defaults. Never fails (the defaults are tested). */
void config_defaults(Config *c);

/* Applies one key = value from `source` ("file:LINE", "env", "argv"); on error writes a
 * sentence into err and returns false. */
bool config_set(Config *c, const char *key, const char *value, const char *source, char *err,
                size_t errlen) MUSTCHECK;

/* Loads an INI file over c. */
bool config_load_file(Config *c, const char *path, char *err, size_t errlen) MUSTCHECK;

/* Applies CARELINE_<KEY> environment variables over c. */
bool config_load_env(Config *c, char *err, size_t errlen) MUSTCHECK;

/* Cross-field checks (e.g. obuf_soft < obuf_hard). */
bool config_validate(const Config *c, char *err, size_t errlen) MUSTCHECK;

/* The phone-hash key: the bytes of c->phone_hash_key_file without a trailing newline,
 * CONFIG_KEY_MIN..CONFIG_KEY_MAX of them, from a file only its owner (and group) may read.
 * Blocking file I/O: call it before the loop (config_validate does, to check). On error
 * writes a sentence naming the file (never its contents) into err. */
#define CONFIG_KEY_MIN 32
#define CONFIG_KEY_MAX 256
bool config_read_phone_key(const Config *c, unsigned char key[CONFIG_KEY_MAX], size_t *len,
                           char *err, size_t errlen) MUSTCHECK;

/* Copies the keys marked reloadable from `from` into `to` (SIGHUP). */
void config_apply_reloadable(Config *to, const Config *from);

/* ---- host names: resolved once at start, never on the event loop ---- */

/* Resolves the host names in c (blocking DNS: call before the loop runs, never on it) so
 * that libpq and hiredis, which would call getaddrinfo() on every (re)connect from the loop,
 * only ever see numeric addresses. redis_host: a name becomes its first address. pg_conninfo:
 * each host= entry that is a name gets its first address in a hostaddr= list beside it (host=
 * stays, for TLS host checks and .pgpass); IP addresses and socket directories pass as they
 * are, and a conninfo that already has hostaddr= is left alone; without host= the PGHOST
 * environment variable is what libpq would use, so it is resolved the same way. A name
 * that does not resolve is an error naming the key. note gets one line on what was resolved
 * ("" when nothing was). Names are resolved again only by a restart. */
bool config_resolve_hosts(Config *c, char *note, size_t notelen, char *err,
                          size_t errlen) MUSTCHECK;

/* ---- loading at start and on SIGHUP (one order for both) ---- */

/* c = defaults < the file at path (NULL = none) < CARELINE_<KEY> environment < args, which
 * are only "--KEY=VALUE" / "--KEY VALUE" options (the command line without dispatchd's own
 * flags). Does not validate: see config_validate and config_reload. */
bool config_load(Config *c, const char *path, int nargs, char *const *args, char *err,
                 size_t errlen) MUSTCHECK;

typedef struct {
    char changed[512]; /* reloadable keys the reload changes, "a, b"; empty = none */
    char restart[512]; /* keys whose new value needs a restart (not applied), "a, b" */
    char err[512];     /* why the reload is refused (config_reload returned false) */
} ConfigReload;

/* What a reload of `fresh` (loaded by config_load) over the running `cur` puts in force:
 * next = cur with fresh's reloadable keys. The cross-field checks run on next, the values
 * that will really be in force; on failure next is not to be used, out->err says why.
 * Non-reloadable keys whose value differs are listed in out->restart and keep cur's. */
bool config_reload(const Config *cur, const Config *fresh, Config *next,
                   ConfigReload *out) MUSTCHECK;

/* Writes every key with its current value, default and meaning, INI-style (for --help, -t
 * and the example config test). Secrets are masked: a password in pg_conninfo prints as
 * "****" (key files are named, their contents never read here). */
void config_print(const Config *c, FILE *out, bool with_help);

#endif
