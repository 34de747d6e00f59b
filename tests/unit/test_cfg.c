/* Unit tests of common/cfg, the settings loader, on a table of its own: defaults, file,
 * environment and command line with their precedence, and every kind of error. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/cfg.h"
#include "t.h"

typedef struct {
    int port;
    double ratio;
    char name[16];
    char level[8];
    char text[600];
    int hot;
    int two_words;
} Demo;

static const CfgKey demo_keys[] = {
    CFG_INT_KEY(Demo, port, "7400", 0, 65535, false, "a port"),
    CFG_DBL_KEY(Demo, ratio, "1.5", 1, 5, false, "a ratio"),
    CFG_STR_KEY(Demo, name, "demo", false, "a name"),
    CFG_CHECKED_STR_KEY(Demo, level, "info", true, "a log level", cfg_check_log_level),
    CFG_STR_KEY(Demo, text, "", false, NULL),
    CFG_INT_KEY(Demo, hot, "1", 0, 100, true, "reloadable"),
    CFG_INT_KEY(Demo, two_words, "0", 0, 9, false, "a name with '_'"),
};

static const CfgTable demo = {"demo",      "DEMO_", false, demo_keys, ARRAY_LEN(demo_keys),
                              sizeof(Demo)};
static const CfgTable demo_hash = {"demo",      NULL, true, demo_keys, ARRAY_LEN(demo_keys),
                                   sizeof(Demo)};

static const char *write_file(const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/c.ini", t_tmpdir());
    FILE *f = fopen(path, "w");
    T_ASSERT(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void defaults(void)
{
    Demo d;
    cfg_defaults(&demo, &d);
    T_EQ_INT(d.port, 7400);
    T_NEAR(d.ratio, 1.5, 1e-12);
    T_EQ_STR(d.name, "demo");
    T_EQ_STR(d.level, "info");
    T_EQ_STR(d.text, "");
    T_ASSERT(cfg_key(&demo, "PORT") == &demo_keys[0]);
    T_ASSERT(cfg_key(&demo, "Two-Words") == &demo_keys[6]);
    T_ASSERT(cfg_key(&demo, "nope") == NULL);
}

typedef struct {
    const char *what;
    const CfgTable *table;
    const char *file;   /* written to c.ini; NULL = no file */
    const char *env;    /* "NAME=VALUE" or NULL */
    const char *arg[3]; /* command line after argv[0] */
    const char *error;  /* expected in the message (the path is replaced by "F"); NULL = ok */
    int port;           /* expected when ok */
    const char *name;   /* expected when ok; NULL = the default */
} Case;

static const Case cases[] = {
    {"defaults only", &demo, NULL, NULL, {NULL}, NULL, 7400, NULL},
    {"file", &demo, "port = 9000\n# comment\n; comment\n\nname=x\n", NULL, {NULL}, NULL, 9000, "x"},
    {"env beats file", &demo, "port = 9000\n", "DEMO_PORT=9100", {NULL}, NULL, 9100, NULL},
    {"argv beats env", &demo, "port = 9000\n", "DEMO_PORT=9100", {"--port=9200"}, NULL, 9200, NULL},
    {"argv with a space", &demo, NULL, NULL, {"--port", "9300"}, NULL, 9300, NULL},
    {"dashes and case", &demo, "[demo]\nPORT = 1\n", NULL, {"--Name=y"}, NULL, 1, "y"},
    {"unknown key",
     &demo,
     "\nno_such = 1\n",
     NULL,
     {NULL},
     "F:2: unknown config key 'no_such'",
     0,
     NULL},
    {"unknown key argv",
     &demo,
     NULL,
     NULL,
     {"--nope", "1"},
     "command line: unknown config key 'nope'",
     0,
     NULL},
    {"out of range",
     &demo,
     "port = 70000\n",
     NULL,
     {NULL},
     "F:1: 'port' = 70000 is outside 0..65535",
     0,
     NULL},
    {"bad int",
     &demo,
     "port = 12ab\n",
     NULL,
     {NULL},
     "F:1: 'port' needs a whole number, not '12ab'",
     0,
     NULL},
    {"bad double",
     &demo,
     "\n\n\nratio = 9\n",
     NULL,
     {NULL},
     "F:4: 'ratio' needs a number within 1..5",
     0,
     NULL},
    {"string too long",
     &demo,
     "name = 0123456789abcdef\n",
     NULL,
     {NULL},
     "F:1: value of 'name' is longer than 15 bytes",
     0,
     NULL},
    {"check",
     &demo,
     "level = loud\n",
     NULL,
     {NULL},
     "F:1: level must be error, warn, info or debug, not 'loud'",
     0,
     NULL},
    {"bad env",
     &demo,
     NULL,
     "DEMO_PORT=x",
     {NULL},
     "environment DEMO_PORT: 'port' needs a whole",
     0,
     NULL},
    {"argv needs a value", &demo, NULL, NULL, {"--port"}, "option --port needs a value", 0, NULL},
    {"malformed line",
     &demo,
     "port = 1\nport\n",
     NULL,
     {NULL},
     "F:2: malformed line (expected key = value)",
     0,
     NULL},
    {"other section",
     &demo,
     "[other]\nport = 1\n",
     NULL,
     {NULL},
     "F:2: unknown section [other] (only [demo])",
     0,
     NULL},
    {"first error wins", &demo, "port\nport = x\n", NULL, {NULL}, "F:1: malformed line", 0, NULL},
    {"first error wins 2", &demo, "port = x\nport\n", NULL, {NULL}, "F:1: 'port' needs", 0, NULL},
    {"inline ; comment", &demo, "name = a ; note\n", NULL, {NULL}, NULL, 7400, "a"},
    {"no # comment", &demo, "name = a # n\n", NULL, {NULL}, NULL, 7400, "a # n"},
    {"# comment where asked",
     &demo_hash,
     "name = a # n\nport = 5\t# p\n",
     NULL,
     {NULL},
     NULL,
     5,
     "a"},
    {"# inside a word stays", &demo_hash, "name = a#b\n", NULL, {NULL}, NULL, 7400, "a#b"},
    {"no env without prefix", &demo_hash, NULL, "DEMO_PORT=9100", {NULL}, NULL, 7400, NULL},
};

static void table_cases(void)
{
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const Case *c = &cases[i];
        Demo d;
        char err[700] = "", env[64] = "";
        cfg_defaults(c->table, &d);
        unsetenv("DEMO_PORT");
        if (c->env) {
            snprintf(env, sizeof(env), "%s", c->env);
            char *eq = strchr(env, '=');
            *eq = '\0';
            setenv(env, eq + 1, 1);
        }
        const char *path = c->file ? write_file(c->file) : NULL;
        char *argv[5] = {(char *)"prog"};
        int argc = 1;
        while (argc < 4 && c->arg[argc - 1])
            argv[argc] = (char *)c->arg[argc - 1], argc++;
        bool ok = (!path || cfg_load_file(c->table, &d, path, err, sizeof(err))) &&
                  cfg_load_env(c->table, &d, err, sizeof(err));
        for (int a = 1; ok && a < argc; a++)
            ok = cfg_argv(c->table, &d, argc, argv, &a, err, sizeof(err));
        /* "F" stands for the file's path in the expected messages */
        char shown[700];
        if (path && !strncmp(err, path, strlen(path)))
            snprintf(shown, sizeof(shown), "F%s", err + strlen(path));
        else
            snprintf(shown, sizeof(shown), "%s", err);
        if (c->error && (ok || !strstr(shown, c->error)))
            t_fail(__FILE__, __LINE__, "%s: expected an error containing \"%s\", got \"%s\"",
                   c->what, c->error, ok ? "(ok)" : shown);
        if (!c->error && !ok)
            t_fail(__FILE__, __LINE__, "%s: %s", c->what, shown);
        if (!c->error && (d.port != c->port || strcmp(d.name, c->name ? c->name : "demo")))
            t_fail(__FILE__, __LINE__, "%s: port %d name '%s'", c->what, d.port, d.name);
    }
}

/* a line longer than inih's 200-byte buffer keeps its whole value */
static void long_line(void)
{
    char text[800], want[600];
    memset(want, 'x', 500);
    want[500] = '\0';
    snprintf(text, sizeof(text), "port = 1\ntext = %s ; note\nport = 2\n", want);
    Demo d;
    char err[700];
    cfg_defaults(&demo, &d);
    if (!cfg_load_file(&demo, &d, write_file(text), err, sizeof(err)))
        t_fail(__FILE__, __LINE__, "%s", err);
    T_EQ_STR(d.text, want);
    T_EQ_INT(d.port, 2); /* the line after it is read as itself */
    snprintf(text, sizeof(text), "text = %s\nport = x\n", want);
    T_ASSERT(!cfg_load_file(&demo, &d, write_file(text), err, sizeof(err)));
    T_ASSERT(strstr(err, ":2: 'port' needs a whole number") != NULL);
}

static void missing_file(void)
{
    Demo d;
    char err[700];
    cfg_defaults(&demo, &d);
    T_ASSERT(!cfg_load_file(&demo, &d, "/nonexistent/c.ini", err, sizeof(err)));
    T_ASSERT(strstr(err, "cannot open config file /nonexistent/c.ini") != NULL);
}

static void reloadable_and_print(void)
{
    Demo a, b;
    cfg_defaults(&demo, &a);
    cfg_defaults(&demo, &b);
    b.port = 1;
    b.hot = 50;
    snprintf(b.level, sizeof(b.level), "debug");
    cfg_apply_reloadable(&demo, &a, &b);
    T_EQ_INT(a.port, 7400);
    T_EQ_INT(a.hot, 50);
    T_EQ_STR(a.level, "debug");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cfg_print(&demo, &a, m, true);
    cfg_print_columns(&demo, &a, m);
    fclose(m);
    T_ASSERT(strstr(buf, "# a port (default: 7400)\nport = 7400\n\n") != NULL);
    T_ASSERT(strstr(buf, "# reloadable (default: 1) [reloadable]\nhot = 50\n") != NULL);
    T_ASSERT(strstr(buf, "# text (default: \"\")\ntext = \n") != NULL);
    T_ASSERT(strstr(buf, "ratio = 1.5\n") != NULL);
    T_ASSERT(strstr(buf, "  port                   7400                   a port\n") != NULL);
    free(buf);
}

static void config_arg(void)
{
    char *a1[] = {(char *)"p", (char *)"-t", (char *)"-c", (char *)"x.ini", NULL};
    T_EQ_STR(cfg_config_arg(4, a1), "x.ini");
    char *a2[] = {(char *)"p", (char *)"--config", (char *)"a", (char *)"-c", (char *)"b", NULL};
    T_EQ_STR(cfg_config_arg(5, a2), "b");
    char *a3[] = {(char *)"p", (char *)"-c", NULL};
    T_ASSERT(cfg_config_arg(2, a3) == NULL);
}

int main(int argc, char **argv)
{
    static const TCase tcases[] = {
        {"cfg_defaults", defaults, 0},
        {"cfg_table_cases", table_cases, 0},
        {"cfg_long_line", long_line, 0},
        {"cfg_missing_file", missing_file, 0},
        {"cfg_reloadable_and_print", reloadable_and_print, 0},
        {"cfg_config_arg", config_arg, 0},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, tcases);
}
