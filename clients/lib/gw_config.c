/*
 * gw_config: hotline-gw's key table and command line. The loading itself (file, bounds,
 * messages) is common/cfg's, the same as dispatchd's; the file keeps the gateway's own
 * rule that '#' after white space starts a comment, as its example file uses.
 */
#include "gw_config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

#define KS(f, d, h)         CFG_STR_KEY(GwConfig, f, d, false, h)
#define KI(f, d, lo, hi, h) CFG_INT_KEY(GwConfig, f, d, lo, hi, false, h)
#define KM(i, d)                                                                                   \
    {                                                                                              \
        "menu_" #i, CFG_STR, offsetof(GwConfig, menu[i]), sizeof(((GwConfig *)0)->menu[i]), d, 0,  \
            0, false, NULL, NULL                                                                   \
    }

static const CfgKey keys[] = {
    KS(daemon_host, "127.0.0.1", "dispatchd address (numeric IP)"),
    KI(daemon_port, "7400", 1, 65535, "dispatchd protocol port"),
    KS(token_file, "", "file holding the gateway token (or env CARELINE_GW_TOKEN)"),
    KS(tokens_file, "", "a dev tokens file (ROLE STATION_ID TOKEN NAME); its gateway line"),
    KS(http_addr, "127.0.0.1", "webhook listener address"),
    KI(http_port, "7402", 0, 65535, "webhook listener port; 0 = any free port"),
    KS(webhook_secret_file, "", "shared HMAC secret (or env CARELINE_GW_WEBHOOK_SECRET)"),
    KS(webhook_path, "/v1/calls", "path the call centre POSTs call events to"),
    KI(max_body_bytes, "16384", 256, 1048576, "largest call event accepted"),
    KI(max_skew_s, "300", 10, 3600, "allowed clock skew of X-Careline-Timestamp"),
    KI(replay_cache_size, "65536", 16, 4194304, "signatures remembered against replays"),
    KS(spool_dir, "var/hotline-spool", "durable call queue directory (mode 0700)"),
    KI(answer_timeout_ms, "3000", 100, 60000, "longest wait for the daemon's answer"),
    KI(request_timeout_ms, "10000", 500, 120000, "deadline of one daemon request"),
    KI(reconnect_max_ms, "5000", 100, 60000, "largest reconnect backoff"),
    KS(port_file, "", "write \"http PORT\" here once listening (tests)"),
    CFG_CHECKED_STR_KEY(GwConfig, log_level, "info", false, "error | warn | info | debug",
                        cfg_check_log_level),
    KI(stdio, "0", 0, 1, "1 = JSON lines on stdin/stdout instead of HTTP (also --stdio)"),
    KM(0, "operator"),
    KM(1, "meal lunch today"),
    KM(2, "meal dinner today"),
    KM(3, "meal lunch tomorrow"),
    KM(4, "care"),
    KM(5, "none"),
    KM(6, "none"),
    KM(7, "none"),
    KM(8, "status"),
    KM(9, "cancel"),
    KS(menu_prompt, "", "said for an unknown digit (empty = built-in)"),
    KS(care_prompt, "", "said when the care subtype digit is missing (empty = built-in)"),
    /* TLS to dispatchd (tls_client.h) */
    KS(tls_ca_file, "", "CA file dispatchd's certificate must chain to (empty = var/tls/ca.pem)"),
    KS(tls_cert_file, "", "client certificate (PEM) for dispatchd, when it asks for one"),
    KS(tls_key_file, "", "its private key (empty = in tls_cert_file)"),
    KI(daemon_plaintext, "0", 0, 1, "1 = no TLS to dispatchd (only for a loopback daemon_host)"),
};

const CfgTable gw_config_table = {
    .section = "hotline-gw",
    .env_prefix = NULL, /* the environment holds only the secrets */
    .hash_comments = true,
    .keys = keys,
    .nkeys = ARRAY_LEN(keys),
    .size = sizeof(GwConfig),
};

void gw_config_usage(FILE *out)
{
    GwConfig d;
    cfg_defaults(&gw_config_table, &d);
    fprintf(out,
            "usage: hotline-gw [-c FILE] [-t] [--stdio] [--KEY=VALUE ...]\n"
            "Bridges the county hotline to dispatchd: call events in, sentences to speak out.\n\n"
            "  -c FILE     settings file (key = value); command-line keys win\n"
            "  -t          check the configuration and exit\n"
            "  --stdio     read call events as JSON lines on stdin, answer on stdout\n\n"
            "Webhook: POST <webhook_path> with Content-Type: application/json and headers\n"
            "  X-Careline-Timestamp: <epoch seconds>\n"
            "  X-Careline-Signature: hex(HMAC-SHA256(secret, \"<timestamp>.<body>\"))\n"
            "Body: {\"call_id\":\"...\",\"caller\":\"138...\",\"called\":\"...\",\"time\":EPOCH,\n"
            "       \"digits\":\"3\",\"speech_text\":\"...\"}\n"
            "Answer: {\"call_id\",\"speech\",\"outcome\",\"state\",\"request_id\",\"next\"}\n"
            "GET /healthz and /metrics on the same port.\n\n"
            "IVR menu (first digit; configurable with menu_0 .. menu_9):\n"
            "  1 lunch delivered today      2 dinner today     3 lunch tomorrow\n"
            "  4 home care, then: 1 bathing, 2 cleaning, 3 companionship,\n"
            "    4 medical escort, 5 other\n"
            "  8 status of my last request  9 cancel my last request\n"
            "  0 operator: a callback request (home care, other, note \"%s\")\n"
            "  anything else: the menu prompt is read again\n\n"
            "Keys and defaults:\n",
            GW_OPERATOR_NOTE);
    cfg_print_columns(&gw_config_table, &d, out);
}

GwArgs gw_config_args(GwConfig *cfg, GwMenu *menu, int argc, char **argv, bool *check_only,
                      char *err, size_t errlen)
{
    const char *conf = cfg_config_arg(argc, argv);
    cfg_defaults(&gw_config_table, cfg);
    if (conf && !cfg_load_file(&gw_config_table, cfg, conf, err, errlen))
        return GW_ARGS_BAD;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            i++;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--check")) {
            *check_only = true;
        } else if (!strcmp(a, "--stdio")) {
            cfg->stdio = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            gw_config_usage(stdout);
            return GW_ARGS_HELP;
        } else if (!strncmp(a, "--", 2)) {
            if (!cfg_argv(&gw_config_table, cfg, argc, argv, &i, err, errlen))
                return GW_ARGS_BAD;
        } else {
            snprintf(err, errlen, "unexpected argument '%s'", a);
            return GW_ARGS_BAD;
        }
    }
    if (!log_level_parse(cfg->log_level, &log_level)) { /* the key's check makes this rare */
        snprintf(err, errlen, "log_level '%s' is not error|warn|info|debug", cfg->log_level);
        return GW_ARGS_BAD;
    }
    gw_menu_defaults(menu);
    for (int d = 0; d < 10; d++)
        if (!gw_menu_set(menu, d, cfg->menu[d], err, errlen))
            return GW_ARGS_BAD;
    if (cfg->menu_prompt[0])
        snprintf(menu->prompt, sizeof(menu->prompt), "%s", cfg->menu_prompt);
    if (cfg->care_prompt[0])
        snprintf(menu->care_prompt, sizeof(menu->care_prompt), "%s", cfg->care_prompt);
    return GW_ARGS_OK;
}

bool gw_secret_check(const char *secret, const char *source, char *err, size_t errlen)
{
    size_t n = secret ? strlen(secret) : 0;
    if (n >= GW_SECRET_MIN)
        return true;
    snprintf(err, errlen,
             "the webhook secret from %s is %zu bytes; at least %d are needed (a short HMAC key "
             "can be guessed): make one with 'openssl rand -hex 32'",
             source, n, GW_SECRET_MIN);
    return false;
}
