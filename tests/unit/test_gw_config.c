/* Unit tests of hotline-gw's settings: the shipped example lists every key with its default,
 * and the command line (flags, --KEY=VALUE, the menu). */
#include <stdio.h>
#include <stdlib.h>

#include "gw_config.h"
#include "t.h"

static const char *example_path(void)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/deploy/hotline-gw.example.conf",
             getenv("CARELINE_SRC") ? getenv("CARELINE_SRC") : ".");
    return path;
}

/* deploy/hotline-gw.example.conf must set every key, to its default, and parse cleanly */
static void example_config(void)
{
    GwConfig c, d;
    char err[600];
    cfg_defaults(&gw_config_table, &c);
    cfg_defaults(&gw_config_table, &d);
    if (!cfg_load_file(&gw_config_table, &c, example_path(), err, sizeof(err)))
        t_fail(__FILE__, __LINE__, "%s", err);
    T_ASSERT(memcmp(&c, &d, sizeof(c)) == 0);
    /* every key has a line of its own, uncommented */
    FILE *f = fopen(example_path(), "r");
    T_ASSERT(f);
    char text[65536] = "\n";
    size_t n = fread(text + 1, 1, sizeof(text) - 2, f);
    text[n + 1] = '\0';
    fclose(f);
    for (size_t i = 0; i < gw_config_table.nkeys; i++) {
        char v[1100], line[1200];
        cfg_format(&gw_config_table.keys[i], &d, v, sizeof(v));
        snprintf(line, sizeof(line), "\n%s =%s%s", gw_config_table.keys[i].name, v[0] ? " " : "",
                 v);
        if (!strstr(text, line))
            t_fail(__FILE__, __LINE__, "example config lacks the line '%s'", line + 1);
    }
}

static void command_line(void)
{
    GwConfig c;
    GwMenu m;
    char err[600];
    bool check = false;
    char *argv[] = {(char *)"hotline-gw",
                    (char *)"-t",
                    (char *)"--stdio",
                    (char *)"--daemon-port",
                    (char *)"7500",
                    (char *)"--menu_5=status",
                    (char *)"--menu_prompt=请再按一次",
                    NULL};
    T_EQ_INT(gw_config_args(&c, &m, 7, argv, &check, err, sizeof(err)), GW_ARGS_OK);
    T_ASSERT(check);
    T_EQ_INT(c.stdio, 1);
    T_EQ_INT(c.daemon_port, 7500);
    T_EQ_INT(m.item[5].kind, GW_ITEM_STATUS);
    T_EQ_STR(m.prompt, "请再按一次");
    char *bad[] = {(char *)"hotline-gw", (char *)"--menu_5=dance", NULL};
    T_EQ_INT(gw_config_args(&c, &m, 2, bad, &check, err, sizeof(err)), GW_ARGS_BAD);
    char *stray[] = {(char *)"hotline-gw", (char *)"stray", NULL};
    T_EQ_INT(gw_config_args(&c, &m, 2, stray, &check, err, sizeof(err)), GW_ARGS_BAD);
    T_EQ_STR(err, "unexpected argument 'stray'");
}

static void secret_length(void)
{
    char err[300];
    T_ASSERT(!gw_secret_check("", "CARELINE_GW_WEBHOOK_SECRET", err, sizeof(err)));
    T_ASSERT(strstr(err, "CARELINE_GW_WEBHOOK_SECRET") && strstr(err, "0 bytes"));
    T_ASSERT(
        !gw_secret_check("0123456789abcdef0123456789abcde", "/etc/gw.secret", err, sizeof(err)));
    T_ASSERT(strstr(err, "/etc/gw.secret") && !strstr(err, "0123456789abcdef"));
    T_ASSERT(gw_secret_check("0123456789abcdef0123456789abcdef", "f", err, sizeof(err)));
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"gw_config_example_lists_every_key", example_config, 0},
        {"gw_config_command_line", command_line, 0},
        {"gw_config_secret_length", secret_length, 0},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
