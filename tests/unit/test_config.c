/* Unit tests of config: defaults, file, environment, bounds, and the shipped example. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/config.h"
#include "t.h"

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", t_tmpdir(), name);
    FILE *f = fopen(path, "w");
    T_ASSERT(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Defaults plus a usable phone-hash key file (the one key without a usable default). */
static void defaults_with_key(Config *c)
{
    config_defaults(c);
    const char *key = write_file("phone.key", "0123456789abcdef0123456789abcdef\n");
    T_ASSERT(chmod(key, 0600) == 0);
    snprintf(c->phone_hash_key_file, sizeof(c->phone_hash_key_file), "%s", key);
}

static void defaults_valid(void)
{
    Config c;
    char err[256];
    config_defaults(&c);
    T_EQ_INT(c.listen_port, 7400);
    T_EQ_INT(c.http_port, 7401);
    T_EQ_INT(c.max_frame_bytes, 65536);
    T_EQ_STR(c.log_level, "info");
    /* the one key without a usable default: the phone-hash key file */
    T_ASSERT(!config_validate(&c, err, sizeof(err)));
    T_ASSERT(strstr(err, "phone_hash_key_file") != NULL);
    const char *key = write_file("phone.key", "0123456789abcdef0123456789abcdef\n");
    T_ASSERT(chmod(key, 0600) == 0);
    snprintf(c.phone_hash_key_file, sizeof(c.phone_hash_key_file), "%s", key);
    T_ASSERT(config_validate(&c, err, sizeof(err)));
}

typedef struct {
    const char *text;
    const char *error_part; /* NULL = must load */
} FileCase;

static void file_cases(void)
{
    static const FileCase cases[] = {
        {"listen_port = 9000\n# comment\n\nhttp_port=9001\n", NULL},
        {"[dispatchd]\nlog_level = debug\n", NULL},
        {"listen-port = 9000\n", NULL},
        {"listen_port = 70000\n", "outside 0..65535"},
        {"listen_port = 12ab\n", "needs a whole number"},
        {"no_such_key = 1\n", "unknown config key 'no_such_key'"},
        {"log_level = loud\n", "log_level must be"},
        {"[other]\nlisten_port = 1\n", "unknown section [other]"},
        {"listen_port\n", "malformed line"},
        {"\n\nmax_frame_bytes = 1\n", ":3:"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Config c;
        char err[512] = "";
        config_defaults(&c);
        bool ok = config_load_file(&c, write_file("c.ini", cases[i].text), err, sizeof(err));
        if (!cases[i].error_part) {
            if (!ok)
                t_fail(__FILE__, __LINE__, "case %zu: %s", i, err);
        } else if (ok || !strstr(err, cases[i].error_part)) {
            t_fail(__FILE__, __LINE__, "case %zu: expected error containing '%s', got '%s'", i,
                   cases[i].error_part, ok ? "(loaded)" : err);
        }
    }
}

static void env_overrides_file(void)
{
    Config c;
    char err[256];
    config_defaults(&c);
    T_ASSERT(config_load_file(&c, write_file("c.ini", "listen_port = 9000\n"), err, sizeof(err)));
    setenv("CARELINE_LISTEN_PORT", "9100", 1);
    T_ASSERT(config_load_env(&c, err, sizeof(err)));
    T_EQ_INT(c.listen_port, 9100);
    setenv("CARELINE_HTTP_PORT", "x", 1);
    T_ASSERT(!config_load_env(&c, err, sizeof(err)));
    T_ASSERT(strstr(err, "CARELINE_HTTP_PORT") != NULL);
}

static void cross_field(void)
{
    Config c;
    char err[256];
    config_defaults(&c);
    c.obuf_soft_bytes = c.obuf_hard_bytes;
    T_ASSERT(!config_validate(&c, err, sizeof(err)));
    T_ASSERT(strstr(err, "obuf_soft_bytes") != NULL);
}

static void reload_only_reloadable(void)
{
    Config a, b;
    config_defaults(&a);
    config_defaults(&b);
    b.listen_port = 1;
    snprintf(b.log_level, sizeof(b.log_level), "debug");
    b.idle_timeout_ms = 5000;
    config_apply_reloadable(&a, &b);
    T_EQ_INT(a.listen_port, 7400);
    T_EQ_STR(a.log_level, "debug");
    T_EQ_INT(a.idle_timeout_ms, 5000);
}

/* deploy/dispatchd.example.conf must list every key with its default and parse cleanly */
static void example_config(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/deploy/dispatchd.example.conf",
             getenv("CARELINE_SRC") ? getenv("CARELINE_SRC") : ".");
    Config c, d;
    char err[512];
    config_defaults(&c);
    config_defaults(&d);
    if (!config_load_file(&c, path, err, sizeof(err)))
        t_fail(__FILE__, __LINE__, "%s", err);
    T_ASSERT(memcmp(&c, &d, sizeof(c)) == 0);
    /* every key appears uncommented in the example, but the test build's own keys, which a
     * release dispatchd would refuse */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    CfgTable release = config_table;
    release.nkeys -= CONFIG_TEST_ONLY_KEYS;
    cfg_print(&release, &d, mem, false);
    fclose(mem);
    FILE *f = fopen(path, "r");
    T_ASSERT(f);
    char text[65536];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(text, line))
            t_fail(__FILE__, __LINE__, "example config lacks the line '%s'", line);
    }
    free(buf);
}

/* The fault hook's keys are in the test build (this one) only, last in the table, and the
 * example config does not name them (tests/run.sh checks the release binary has none). */
static void test_only_keys(void)
{
    T_EQ_INT(CONFIG_TEST_ONLY_KEYS, 2);
    T_ASSERT(cfg_key(&config_table, "fault_point") == &config_table.keys[config_table.nkeys - 2]);
    T_ASSERT(cfg_key(&config_table, "fault_after") == &config_table.keys[config_table.nkeys - 1]);
}

/* ---- reload: the same order as at start, checks on the values in force ---- */

/* SIGHUP builds the config as main did: a key given as an argument wins over the file
 * again, in both "--KEY=VALUE" and "--KEY VALUE" forms. */
static void load_order_args_win(void)
{
    const char *path = write_file("c.ini", "idle_timeout_ms = 5000\nhello_timeout_ms = 7000\n"
                                           "obuf_soft_seconds = 3\n");
    setenv("CARELINE_OBUF_SOFT_SECONDS", "4", 1);
    char a0[] = "--hello-timeout-ms=300", a1[] = "--max_clients", a2[] = "77";
    char *args[] = {a0, a1, a2};
    Config c;
    char err[256];
    T_ASSERT(config_load(&c, path, 3, args, err, sizeof(err)));
    T_EQ_INT(c.idle_timeout_ms, 5000); /* file */
    T_EQ_INT(c.hello_timeout_ms, 300); /* argument over file */
    T_EQ_INT(c.obuf_soft_seconds, 4);  /* environment over file */
    T_EQ_INT(c.max_clients, 77);       /* "--KEY VALUE" */
    T_EQ_INT(c.listen_port, 7400);     /* default */
    char b0[] = "--no_such_key=1";
    char *bad[] = {b0};
    T_ASSERT(!config_load(&c, path, 1, bad, err, sizeof(err)));
    T_ASSERT(strstr(err, "command line") && strstr(err, "no_such_key"));
}

static void reload_in_force(void)
{
    Config cur, fresh, next;
    ConfigReload r;
    defaults_with_key(&cur);
    /* the running pool has the default 5000 ms query timeout: 12000 is the least grace */
    defaults_with_key(&fresh);
    fresh.orphan_grace_ms = 11000;
    T_ASSERT(!config_reload(&cur, &fresh, &next, &r));
    T_ASSERT(strstr(r.err, "orphan_grace_ms (11000)") && strstr(r.err, "(12000)"));
    /* a file raising pg_query_timeout_ms (not reloadable) is judged by the timeout in force:
     * the grace below is fine for the running pool, and the change waits for a restart */
    fresh.pg_query_timeout_ms = 60000;
    fresh.orphan_grace_ms = 13000;
    fresh.idle_timeout_ms = 900;
    snprintf(fresh.log_level, sizeof(fresh.log_level), "debug");
    T_ASSERT(config_reload(&cur, &fresh, &next, &r));
    T_EQ_INT(next.pg_query_timeout_ms, 5000);
    T_EQ_INT(next.orphan_grace_ms, 13000);
    T_EQ_INT(next.idle_timeout_ms, 900);
    T_EQ_STR(next.log_level, "debug");
    T_EQ_STR(r.restart, "pg_query_timeout_ms");
    T_EQ_STR(r.changed, "log_level, idle_timeout_ms, orphan_grace_ms");
    /* the other cross-field rules too: on the values in force */
    defaults_with_key(&fresh);
    fresh.obuf_soft_bytes = fresh.obuf_hard_bytes;
    T_ASSERT(!config_reload(&cur, &fresh, &next, &r));
    T_ASSERT(strstr(r.err, "obuf_soft_bytes") != NULL);
    /* nothing changed: nothing listed */
    defaults_with_key(&fresh);
    T_ASSERT(config_reload(&cur, &fresh, &next, &r));
    T_EQ_STR(r.changed, "");
    T_EQ_STR(r.restart, "");
}

/* pg_query_timeout_ms is read once by the pool and the batch queues, reconcile_interval_ms
 * by the sweep's persistent timer: not reloadable. */
static void timeouts_reloadable_only_where_live(void)
{
    T_ASSERT(!cfg_key(&config_table, "pg_query_timeout_ms")->reloadable);
    T_ASSERT(!cfg_key(&config_table, "reconcile_interval_ms")->reloadable);
    T_ASSERT(cfg_key(&config_table, "redis_op_timeout_ms")->reloadable); /* rds setter */
}

/* ---- host names: resolved at start, never on the loop ---- */

static const char *opt(PQconninfoOption *o, const char *key)
{
    for (; o->keyword; o++)
        if (!strcmp(o->keyword, key))
            return o->val;
    return NULL;
}

static void resolve_hosts(void)
{
    Config c;
    char note[512], err[512];
    unsetenv("PGHOST");
    unsetenv("PGHOSTADDR");
    /* addresses and socket directories pass unchanged, and nothing is noted */
    const char *same[] = {"host=127.0.0.1 port=5432 dbname=careline",
                          "host=/run/postgresql dbname=careline", "host=::1 port=1",
                          "host=db.example hostaddr=10.0.0.5 dbname=x", "dbname=careline"};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        config_defaults(&c);
        snprintf(c.pg_conninfo, sizeof(c.pg_conninfo), "%s", same[i]);
        T_ASSERT(config_resolve_hosts(&c, note, sizeof(note), err, sizeof(err)));
        T_EQ_STR(c.pg_conninfo, same[i]);
        T_EQ_STR(c.redis_host, "127.0.0.1");
        T_EQ_STR(note, "");
    }
    /* a name gets its address beside it: host stays (TLS checks, .pgpass), hostaddr is
     * what libpq connects to, so PQconnectStart never resolves */
    config_defaults(&c);
    snprintf(c.pg_conninfo, sizeof(c.pg_conninfo),
             "host=/tmp,localhost port=5432,5433 dbname='care line' password='a\\'b'");
    snprintf(c.redis_host, sizeof(c.redis_host), "localhost");
    T_ASSERT(config_resolve_hosts(&c, note, sizeof(note), err, sizeof(err)));
    T_ASSERT(!strcmp(c.redis_host, "127.0.0.1") || !strcmp(c.redis_host, "::1"));
    PQconninfoOption *o = PQconninfoParse(c.pg_conninfo, NULL);
    T_ASSERT(o);
    T_EQ_STR(opt(o, "host"), "/tmp,localhost");
    T_ASSERT(!strcmp(opt(o, "hostaddr"), ",127.0.0.1") || !strcmp(opt(o, "hostaddr"), ",::1"));
    T_EQ_STR(opt(o, "port"), "5432,5433");
    T_EQ_STR(opt(o, "dbname"), "care line");
    T_EQ_STR(opt(o, "password"), "a'b");
    PQconninfoFree(o);
    T_ASSERT(strstr(note, "redis_host localhost = ") && strstr(note, "pg_conninfo host localhost"));
    T_ASSERT(!strstr(note, "a'b")); /* never the secrets */
    /* without host=, libpq would use PGHOST: resolved the same way */
    setenv("PGHOST", "localhost", 1);
    config_defaults(&c);
    snprintf(c.pg_conninfo, sizeof(c.pg_conninfo), "dbname=careline");
    T_ASSERT(config_resolve_hosts(&c, note, sizeof(note), err, sizeof(err)));
    o = PQconninfoParse(c.pg_conninfo, NULL);
    T_ASSERT(o && opt(o, "hostaddr") && opt(o, "host"));
    T_EQ_STR(opt(o, "host"), "localhost");
    PQconninfoFree(o);
    unsetenv("PGHOST");
}

/* A name that does not resolve is refused at start, naming the key (RFC 6761: .invalid
 * never resolves). */
static void unresolvable_refused(void)
{
    Config c;
    char note[512], err[512];
    config_defaults(&c);
    snprintf(c.redis_host, sizeof(c.redis_host), "no-such-host.invalid");
    T_ASSERT(!config_resolve_hosts(&c, note, sizeof(note), err, sizeof(err)));
    T_ASSERT(strstr(err, "redis_host") && strstr(err, "'no-such-host.invalid'"));
    config_defaults(&c);
    snprintf(c.pg_conninfo, sizeof(c.pg_conninfo), "host=no-such-host.invalid dbname=x");
    T_ASSERT(!config_resolve_hosts(&c, note, sizeof(note), err, sizeof(err)));
    T_ASSERT(strstr(err, "pg_conninfo") && strstr(err, "'no-such-host.invalid'"));
    snprintf(c.pg_conninfo, sizeof(c.pg_conninfo), "host='unclosed");
    T_ASSERT(!config_resolve_hosts(&c, note, sizeof(note), err, sizeof(err)));
    T_ASSERT(strstr(err, "pg_conninfo:") != NULL);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"config_defaults_valid", defaults_valid, 0},
        {"config_file_cases", file_cases, 0},
        {"config_env_overrides_file", env_overrides_file, 0},
        {"config_cross_field", cross_field, 0},
        {"config_reload_only_reloadable", reload_only_reloadable, 0},
        {"config_example_lists_every_key", example_config, 0},
        {"config_test_only_keys", test_only_keys, 0},
        {"config_load_order_args_win", load_order_args_win, 0},
        {"config_reload_checks_values_in_force", reload_in_force, 0},
        {"config_timeouts_reloadable_only_where_live", timeouts_reloadable_only_where_live, 0},
        {"config_resolve_hosts", resolve_hosts, 0},
        {"config_unresolvable_host_refused", unresolvable_refused, 0},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
