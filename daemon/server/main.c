/*
 * dispatchd: the Careline dispatch daemon. Reads the config (defaults < file < environment
 * < command line), sets up the server and runs its event loop until a graceful stop.
 */
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "common/log.h"
#include "server/server.h"

#define DISPATCHD_VERSION "0.1.0"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dispatchd [-c FILE] [-t] [-v] [--KEY=VALUE ...]\n"
            "  -c, --config FILE   read settings from an INI file (key = value)\n"
            "  -t, --check         check the configuration, print it and exit\n"
            "  -v, --version       print the version and exit\n"
            "  -h, --help          this help\n"
            "  --KEY=VALUE         set any key below ('-' or '_'); also CARELINE_KEY=VALUE in\n"
            "                      the environment. Later wins: defaults, file, environment,\n"
            "                      command line.\n\n"
            "Keys, with their defaults:\n\n");
    Config d;
    config_defaults(&d);
    config_print(&d, out, true);
}

typedef struct {
    const char *config_path;
    bool check;
    int nkeys;   /* the "--KEY=VALUE" / "--KEY VALUE" arguments, in order */
    char **keys; /* pointers into argv (argc entries allocated) */
} Args;

/* dispatchd's own flags first; the key arguments are collected and applied by config_load
 * after the file and the environment, and kept by the server to apply again on SIGHUP. */
static int parse_args(int argc, char **argv, Config *cfg, Args *a)
{
    char err[512];
    a->keys = xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-c") || !strcmp(arg, "--config")) {
            if (++i >= argc) {
                snprintf(err, sizeof(err), "%s needs a file name", arg);
                goto fail;
            }
            a->config_path = argv[i];
        } else if (!strcmp(arg, "-t") || !strcmp(arg, "--check")) {
            a->check = true;
        } else if (!strcmp(arg, "-v") || !strcmp(arg, "--version")) {
            printf("dispatchd %s (libevent %s, libpq %d, hiredis %d.%d.%d, protobuf-c %s)\n",
                   DISPATCHD_VERSION, event_get_version(), PQlibVersion(), HIREDIS_MAJOR,
                   HIREDIS_MINOR, HIREDIS_PATCH, protobuf_c_version());
            exit(0);
        } else if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strncmp(arg, "--", 2) && arg[2]) {
            a->keys[a->nkeys++] = argv[i];
            /* "--KEY VALUE": the value is the next argument (as cfg_argv reads it) */
            if (!strchr(arg, '=') && cfg_key(&config_table, arg + 2) && i + 1 < argc)
                a->keys[a->nkeys++] = argv[++i];
        } else {
            snprintf(err, sizeof(err), "unexpected argument '%s' (see --help)", arg);
            goto fail;
        }
    }
    if (!config_load(cfg, a->config_path, a->nkeys, a->keys, err, sizeof(err)) ||
        !config_validate(cfg, err, sizeof(err)))
        goto fail;
    return 0;
fail:
    fprintf(stderr, "dispatchd: %s\n", err);
    return 2;
}

int main(int argc, char **argv)
{
    Config cfg;
    Args a = {0};
    config_defaults(&cfg);
    int rc = parse_args(argc, argv, &cfg, &a);
    if (rc != 0 || a.check)
        free(a.keys);
    if (rc != 0)
        return rc;
    if (a.check) {
        config_print(&cfg, stdout, false);
        printf("# configuration ok\n");
        return 0;
    }
    LogLevel l;
    if (log_level_parse(cfg.log_level, &l))
        log_level = l;
    log_info("dispatchd %s starting (libevent %s, libpq %d, hiredis %d.%d.%d, protobuf-c %s)",
             DISPATCHD_VERSION, event_get_version(), PQlibVersion(), HIREDIS_MAJOR, HIREDIS_MINOR,
             HIREDIS_PATCH, protobuf_c_version());
    Server s;
    bool ok = server_init(&s, &cfg, a.config_path);
    if (ok)
        server_keep_args(&s, a.nkeys, a.keys);
    free(a.keys);
    if (!ok) {
        server_free(&s);
        return 1;
    }
    server_handle_signals(&s);
    rc = server_run(&s);
    server_free(&s);
    log_info("dispatchd stopped");
    return rc;
}
