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
    char pg_conninfo[CONFIG_STR_MAX]; /* libpq conninfo; use host=IP or a socket dir, no DNS */
    int pg_pool_size;                 /* connections to PostgreSQL */
    int pg_query_timeout_ms;          /* a query slower than this fails and its link is reset */
    int pg_max_queue;                 /* queries waiting for a connection before OVERLOADED */
    char redis_host[64];              /* Redis IP address (no DNS) */
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
    int console_refresh_ms;        /* re-read each console's jobs this often (missed wake-ups) */
    int reconcile_interval_ms;     /* sweep for unfinished and waitlisted requests */
    int reconcile_age_ms;          /* a request unfinished this long is resumed by the sweep */
    int orphan_grace_ms;           /* a reservation never recorded is given back when this old */
    char fault_point[32];          /* TESTS ONLY: kill the process at this point (see dispatch.c) */
    int fault_after;               /* TESTS ONLY: ... on the Nth time it is reached */
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

/* Copies the keys marked reloadable from `from` into `to` (SIGHUP). */
void config_apply_reloadable(Config *to, const Config *from);

/* Writes every key with its current value, default and meaning, INI-style (for --help and
 * the example config test). */
void config_print(const Config *c, FILE *out, bool with_help);

#endif
