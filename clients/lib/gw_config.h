/*
 * gw_config: hotline-gw's settings: the key table (common/cfg) with its defaults, the
 * command line (-c FILE, -t, --stdio, --KEY=VALUE) and the --help text. Values come, later
 * winning, from the defaults, the file and the command line; the secrets (token, webhook
 * secret) are never settings, only the names of the files holding them.
 */
#ifndef CARELINE_GW_CONFIG_H
#define CARELINE_GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/cfg.h"
#include "gw_call.h"

#define GW_STR_MAX 512

typedef struct {
    char daemon_host[64]; /* dispatchd's numeric address */
    int daemon_port;
    char token_file[GW_STR_MAX];  /* the gateway token */
    char tokens_file[GW_STR_MAX]; /* or a dev tokens file's gateway line */
    char http_addr[64];           /* webhook listener */
    int http_port;                /* 0 = any free port */
    char webhook_secret_file[GW_STR_MAX];
    char webhook_path[128];
    int max_body_bytes;    /* largest call event accepted */
    int max_skew_s;        /* allowed clock skew of X-Careline-Timestamp */
    int replay_cache_size; /* signatures remembered against replays */
    char spool_dir[GW_STR_MAX];
    int answer_timeout_ms;  /* longest a caller waits for the daemon's answer */
    int request_timeout_ms; /* deadline of one daemon request */
    int reconnect_max_ms;   /* largest reconnect backoff */
    char port_file[GW_STR_MAX];
    char log_level[16];
    int stdio;              /* 1 = JSON lines on stdin/stdout instead of HTTP */
    char menu[10][128];     /* menu_0 .. menu_9: gw_menu_set specs */
    char menu_prompt[1024]; /* empty = built-in */
    char care_prompt[1024]; /* empty = built-in */
    /* TLS to dispatchd (tls_client.h) */
    char tls_ca_file[GW_STR_MAX];   /* CA dispatchd's certificate chains to ("" = var/tls/ca.pem) */
    char tls_cert_file[GW_STR_MAX]; /* client certificate, when the daemon asks for one */
    char tls_key_file[GW_STR_MAX];  /* its key ("" = in tls_cert_file) */
    int daemon_plaintext;           /* 1 = no TLS (only to a loopback daemon_host) */
} GwConfig;

extern const CfgTable gw_config_table;

typedef enum {
    GW_ARGS_OK,   /* cfg and menu are set */
    GW_ARGS_HELP, /* --help: the usage was written to stdout; exit 0 */
    GW_ARGS_BAD,  /* err says why; exit 2 */
} GwArgs;

/* Fills cfg from the defaults, the -c file and the command line, sets the log level and
 * builds menu from the menu_* keys. *check_only is set by -t / --check. */
GwArgs gw_config_args(GwConfig *cfg, GwMenu *menu, int argc, char **argv, bool *check_only,
                      char *err, size_t errlen);

/* The shortest webhook secret accepted: an HMAC-SHA256 key shorter than this is guessable. */
#define GW_SECRET_MIN 32
/* Checks a webhook secret as read (trailing newline already dropped) from `source` (the
 * environment variable's or the file's name, for the message): true when it holds at least
 * GW_SECRET_MIN bytes, else a sentence in err that names the source, never the secret. */
bool gw_secret_check(const char *secret, const char *source, char *err, size_t errlen) MUSTCHECK;

/* The --help text, with every key and its default. */
void gw_config_usage(FILE *out);

#endif
