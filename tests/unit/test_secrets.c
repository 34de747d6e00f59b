/* Unit tests of the secrets in dispatchd's config: the phone-hash key file's rules (set,
 * long enough, not readable by others, trailing newline dropped), and `-t` / --help printing
 * pg_conninfo with its password masked in every conninfo form. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/config.h"
#include "t.h"

static const char *key_file(const char *name, const char *text, mode_t mode)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", t_tmpdir(), name);
    FILE *f = fopen(path, "w");
    T_ASSERT(f);
    fputs(text, f);
    fclose(f);
    T_ASSERT(chmod(path, mode) == 0);
    return path;
}

#define K32 "0123456789abcdef0123456789abcdef"

static void phone_key_rules(void)
{
    static const struct {
        const char *text;
        mode_t mode;
        const char *error_part; /* NULL = accepted */
        size_t len;
    } cases[] = {
        {K32 "\n", 0600, NULL, 32},
        {K32 K32 "\r\n\n", 0640, NULL, 64},
        {"0123456789abcdef0123456789abcde\n", 0600, "too few bytes", 0}, /* 31 + newline */
        {"", 0600, "too few bytes", 0},
        {K32, 0644, "others cannot read", 0},
        {K32, 0620, "others cannot read", 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        Config c;
        config_defaults(&c);
        snprintf(c.phone_hash_key_file, sizeof(c.phone_hash_key_file), "%s",
                 key_file("k", cases[i].text, cases[i].mode));
        unsigned char key[CONFIG_KEY_MAX];
        size_t len = 0;
        char err[512] = "";
        bool ok = config_read_phone_key(&c, key, &len, err, sizeof(err));
        if (cases[i].error_part ? ok || !strstr(err, cases[i].error_part) : !ok)
            t_fail(__FILE__, __LINE__, "case %zu: expected %s, got %s", i,
                   cases[i].error_part ? cases[i].error_part : "accepted", ok ? "accepted" : err);
        if (ok) {
            T_EQ_INT(len, cases[i].len);
            T_ASSERT(memcmp(key, cases[i].text, len) == 0);
            T_ASSERT(config_validate(&c, err, sizeof(err)));
        } else {
            T_ASSERT(!strstr(err, "0123456789")); /* the contents are never quoted */
            T_ASSERT(!config_validate(&c, err, sizeof(err)));
        }
    }
    /* too long, and missing */
    char big[CONFIG_KEY_MAX + 2];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    Config c;
    config_defaults(&c);
    unsigned char key[CONFIG_KEY_MAX];
    size_t len;
    char err[512];
    snprintf(c.phone_hash_key_file, sizeof(c.phone_hash_key_file), "%s", key_file("b", big, 0600));
    T_ASSERT(!config_read_phone_key(&c, key, &len, err, sizeof(err)));
    T_ASSERT(strstr(err, "too many bytes"));
    snprintf(c.phone_hash_key_file, sizeof(c.phone_hash_key_file), "%s/none", t_tmpdir());
    T_ASSERT(!config_read_phone_key(&c, key, &len, err, sizeof(err)));
    T_ASSERT(strstr(err, "No such file"));
}

/* config_print's pg_conninfo line */
static const char *printed_conninfo(const char *conninfo, char *out, size_t n)
{
    Config c;
    config_defaults(&c);
    snprintf(c.pg_conninfo, sizeof(c.pg_conninfo), "%s", conninfo);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    config_print(&c, mem, false);
    fclose(mem);
    const char *line = strstr(buf, "pg_conninfo = ");
    T_ASSERT(line);
    line += strlen("pg_conninfo = ");
    snprintf(out, n, "%.*s", (int)strcspn(line, "\n"), line);
    free(buf);
    return out;
}

static void conninfo_password_masked(void)
{
    static const char *const cases[][2] = {
        {"host=127.0.0.1 password=s3cret dbname=careline",
         "host=127.0.0.1 password=**** dbname=careline"},
        {"host=127.0.0.1 password = 'se cr\\'et' user=x", "host=127.0.0.1 password = **** user=x"},
        {"PASSWORD=s3cret", "PASSWORD=****"},
        {"postgresql://app:s3cret@127.0.0.1:5432/careline",
         "postgresql://app:****@127.0.0.1:5432/careline"},
        {"postgresql://127.0.0.1/careline?user=a@b", "postgresql://127.0.0.1/careline?user=a@b"},
        {"host=127.0.0.1 dbname=passwords user=x", "host=127.0.0.1 dbname=passwords user=x"},
        {"host=/tmp passfile=/etc/pgpass", "host=/tmp passfile=/etc/pgpass"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char got[600];
        printed_conninfo(cases[i][0], got, sizeof(got));
        if (strcmp(got, cases[i][1]) != 0 || strstr(got, "s3cret") || strstr(got, "cr\\'et"))
            t_fail(__FILE__, __LINE__, "'%s' printed as '%s', expected '%s'", cases[i][0], got,
                   cases[i][1]);
    }
    /* a conninfo that fills the field: still masked, never overrun */
    char full[CONFIG_STR_MAX], got[CONFIG_STR_MAX * 2];
    memset(full, 'h', sizeof(full));
    memcpy(full, "password=x ", 11);
    full[sizeof(full) - 1] = '\0';
    printed_conninfo(full, got, sizeof(got));
    T_ASSERT(strncmp(got, "password=**** hhh", 17) == 0);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"secrets_phone_key_rules", phone_key_rules, 0},
        {"secrets_conninfo_password_masked", conninfo_password_masked, 0},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
