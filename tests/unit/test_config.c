/* Unit tests of config: defaults, file, environment, bounds, and the shipped example. */
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
    /* every key appears uncommented in the example */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    config_print(&d, mem, false);
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

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"config_defaults_valid", defaults_valid, 0},
        {"config_file_cases", file_cases, 0},
        {"config_env_overrides_file", env_overrides_file, 0},
        {"config_cross_field", cross_field, 0},
        {"config_reload_only_reloadable", reload_only_reloadable, 0},
        {"config_example_lists_every_key", example_config, 0},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
