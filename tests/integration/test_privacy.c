/*
 * Integration tests of personal data and secrets, on real PostgreSQL and Redis: caller-phone
 * hashes are HMAC-SHA256 under the daemon's key (not a plain SHA-256 anyone can enumerate)
 * and status and cancel by phone still find an unregistered caller's request;
 * deploy/rehash-phones.sh re-keys registered residents' requests exactly as the daemon
 * hashes (also with a key longer than HMAC's block); database errors are logged on one line
 * without DETAIL (row values); `dispatchd -t` prints no password and refuses a key file
 * others can read.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fixture.h"
#include "isession.h"
#include "itest.h"
#include "store/pg.h"
#include "t.h"

#define S(x)    CARELINE__V1__##x
#define BODY(b) CARELINE__V1__ENVELOPE__BODY_##b

static Daemon d;

static ClEnvelope *by_phone(ClConn *c, bool cancel, const char *phone)
{
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    Careline__V1__StatusQuery sq = CARELINE__V1__STATUS_QUERY__INIT;
    Careline__V1__CancelRequest cq = CARELINE__V1__CANCEL_REQUEST__INIT;
    if (cancel) {
        cq.ref_case = CARELINE__V1__CANCEL_REQUEST__REF_CALLER_PHONE;
        cq.caller_phone = (char *)phone;
        e.body_case = BODY(CANCEL);
        e.cancel = &cq;
    } else {
        sq.ref_case = CARELINE__V1__STATUS_QUERY__REF_CALLER_PHONE;
        sq.caller_phone = (char *)phone;
        e.body_case = BODY(STATUS_QUERY);
        e.status_query = &sq;
    }
    return isess_call(&d, c, &e, 15000, cancel ? "cancel by phone" : "status by phone", NULL, NULL);
}

static void phone_hash_keyed(void)
{
    PGconn *pg = itest_pg();
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_gateway(&d, pg);
    const char *phone = "13977770001"; /* no resident has it: an unregistered caller */
    Careline__V1__SubmitRequest m;
    isess_meal(&m, fix_key("hmac-1"), "+86 139-7777-0001");
    ClEnvelope *r = isess_submit(&d, c, &m, 15000);
    Careline__V1__SubmitResult *s = isess_result(r);
    T_EQ_INT(s->state, S(REQUEST_STATE__NOT_REGISTERED));
    char id[24], hash[65];
    snprintf(id, sizeof(id), "%lld", (long long)s->request_id);
    cl_free(r);
    itest_phone_hash(phone, hash);
    const char *p[] = {id, hash, phone};
    PGresult *row = itest_sql(pg,
                              "SELECT caller_phone_hash = decode($2, 'hex'), "
                              "caller_phone_hash = sha256(convert_to($3, 'UTF8')) "
                              "FROM requests WHERE id = $1",
                              3, p);
    T_EQ_STR(PQgetvalue(row, 0, 0), "t");
    T_EQ_STR(PQgetvalue(row, 0, 1), "f");
    PQclear(row);
    /* found again by the number, through the keyed hash */
    r = by_phone(c, false, phone);
    T_EQ_INT(r->body_case, BODY(REQUEST_STATUS));
    T_EQ_INT(r->request_status->request_id, atoll(id));
    cl_free(r);
    /* cancel by phone runs careline_cancel with the hash (no SQL error: UNAVAILABLE); the
     * request is final (not_registered), so there is nothing open to cancel */
    r = by_phone(c, true, "0086 13977770001");
    T_EQ_INT(r->body_case, BODY(ERROR));
    T_EQ_INT(r->error->code, S(ERROR_CODE__NOT_FOUND));
    cl_free(r);
    cl_close(c);
    itest_daemon_down(&d);
    PQfinish(pg);
}

/* deploy/rehash-phones.sh KEYFILE, on the test database; its exit status. */
static int rehash(const char *keyfile)
{
    char cmd[2048], out[4096];
    snprintf(cmd, sizeof(cmd), "bash '%s/deploy/rehash-phones.sh' '%s' '%s'", t_env("CARELINE_SRC"),
             keyfile, t_env("CARELINE_PG_ADMIN"));
    int rc = itest_sh(cmd, out, sizeof(out));
    if (rc != 0)
        printf("rehash-phones.sh: %s", out);
    return rc;
}

static void hmac_hex(const unsigned char *key, size_t klen, const char *msg, char hex[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    T_ASSERT(HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), mac, &n));
    for (unsigned i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
}

/* true when request id's caller_phone_hash is hex (NULL: is NULL) */
static bool has_hash(PGconn *pg, const char *id, const char *hex)
{
    const char *p[] = {id, hex};
    return itest_sql_ll(pg,
                        hex ? "SELECT count(*) FROM requests WHERE id = $1 AND "
                              "caller_phone_hash = decode($2, 'hex')"
                            : "SELECT count(*) FROM requests WHERE id = $1 AND "
                              "caller_phone_hash IS NULL",
                        hex ? 2 : 1, p) == 1;
}

static void rehash_script(void)
{
    PGconn *pg = itest_pg();
    Fixture f;
    fix_area(pg, 82, &f);
    fix_station(pg, &f, &(FixStation){.meal = true, .cap_lunch = 10});
    char phone[16];
    fix_resident(pg, &f, 1, false, phone);
    itest_daemon_up(&d, NULL);
    ClConn *c = isess_gateway(&d, pg);
    Careline__V1__SubmitRequest m;
    isess_meal(&m, fix_key("rehash-reg"), phone);
    ClEnvelope *r = isess_submit(&d, c, &m, 15000);
    char reg[24], unreg[24];
    snprintf(reg, sizeof(reg), "%lld", (long long)isess_result(r)->request_id);
    cl_free(r);
    isess_meal(&m, fix_key("rehash-unreg"), "13977770002");
    r = isess_submit(&d, c, &m, 15000);
    snprintf(unreg, sizeof(unreg), "%lld", (long long)isess_result(r)->request_id);
    cl_free(r);
    cl_close(c);
    itest_daemon_down(&d);
    const char *ids[] = {reg, unreg};
    char daemon_hash[65];
    itest_phone_hash(phone, daemon_hash);
    T_ASSERT(has_hash(pg, reg, daemon_hash));
    /* as 005_phone_hmac leaves them */
    const char *drop = "UPDATE requests SET caller_phone_hash = NULL WHERE id IN ($1, $2)";
    PQclear(itest_sql(pg, drop, 2, ids));
    T_EQ_INT(rehash(t_env("CARELINE_PHONE_HASH_KEY_FILE")), 0);
    T_ASSERT(has_hash(pg, reg, daemon_hash)); /* what the daemon itself would store */
    T_ASSERT(has_hash(pg, unreg, NULL));      /* no number to re-key it from */
    /* a key longer than HMAC's 64-byte block is hashed first, as OpenSSL does */
    char path[512], key[101];
    memset(key, 'q', 100);
    key[100] = '\0';
    snprintf(path, sizeof(path), "%s/long.key", t_tmpdir());
    FILE *kf = fopen(path, "w");
    T_ASSERT(kf);
    fprintf(kf, "%s\n", key);
    fclose(kf);
    T_ASSERT(chmod(path, 0644) == 0);
    T_ASSERT(rehash(path) != 0); /* others may read it: refused */
    T_ASSERT(chmod(path, 0600) == 0);
    PQclear(itest_sql(pg, drop, 2, ids));
    T_EQ_INT(rehash(path), 0);
    char want[65];
    hmac_hex((const unsigned char *)key, 100, phone, want);
    T_ASSERT(has_hash(pg, reg, want));
    /* idempotent: a second run touches nothing */
    T_EQ_INT(rehash(path), 0);
    T_ASSERT(has_hash(pg, reg, want));
    PQfinish(pg);
}

/* A unique violation's DETAIL quotes the row ("Key (k)=(13900001234) already exists"). */
static void errline_has_no_detail(void)
{
    PGconn *pg = itest_pg();
    PQclear(itest_sql(pg, "CREATE TEMP TABLE t_err (k text UNIQUE)", 0, NULL));
    PQclear(itest_sql(pg, "INSERT INTO t_err VALUES ('13900001234')", 0, NULL));
    PGresult *res = PQexec(pg, "INSERT INTO t_err VALUES ('13900001234')");
    T_EQ_INT(PQresultStatus(res), PGRES_FATAL_ERROR);
    T_ASSERT(strstr(PQresultErrorMessage(res), "13900001234")); /* libpq's text has it */
    char line[PG_ERRLINE_LEN];
    pg_errline(res, NULL, line, sizeof(line));
    PQclear(res);
    if (strstr(line, "13900001234") || strstr(line, "DETAIL") || strchr(line, '\n') ||
        !strstr(line, "duplicate key") || !strstr(line, "SQLSTATE 23505"))
        t_fail(__FILE__, __LINE__, "error line: %s", line);
    T_EQ_STR(pg_errline(NULL, "could not send\nDETAIL: x", line, sizeof(line)), "could not send");
    T_EQ_STR(pg_errline(NULL, NULL, line, sizeof(line)), "unknown error");
    PQfinish(pg);
}

/* dispatchd -t EXTRA; its exit status, stdout+stderr in out. */
static int check_config(const char *extra, char *out, size_t n)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s/dispatchd' -t %s", t_env("CARELINE_BIN"), extra);
    return itest_sh(cmd, out, n);
}

static void check_prints_no_secret(void)
{
    char out[65536];
    const char *keyfile = t_env("CARELINE_PHONE_HASH_KEY_FILE");
    FILE *kf = fopen(keyfile, "r");
    T_ASSERT(kf);
    char key[80] = "";
    T_ASSERT(fgets(key, sizeof(key), kf));
    fclose(kf);
    key[strcspn(key, "\n")] = '\0';
    T_EQ_INT(check_config("'--pg_conninfo=host=127.0.0.1 dbname=careline password=s3cret'", out,
                          sizeof(out)),
             0);
    if (strstr(out, "s3cret") || strstr(out, key) || !strstr(out, "password=****"))
        t_fail(__FILE__, __LINE__, "-t printed a secret:\n%s", out);
    /* a key file others can read is refused, naming the file and not its contents */
    char path[512], extra[700];
    snprintf(path, sizeof(path), "%s/open.key", t_tmpdir());
    kf = fopen(path, "w");
    T_ASSERT(kf);
    fprintf(kf, "%s\n", key);
    fclose(kf);
    T_ASSERT(chmod(path, 0644) == 0);
    snprintf(extra, sizeof(extra), "'--phone_hash_key_file=%s'", path);
    T_EQ_INT(check_config(extra, out, sizeof(out)), 2);
    if (!strstr(out, "chmod 600") || strstr(out, key))
        t_fail(__FILE__, __LINE__, "unexpected refusal:\n%s", out);
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"privacy_phone_hash_keyed", phone_hash_keyed, 90},
        {"privacy_rehash_script", rehash_script, 120},
        {"privacy_errline_has_no_detail", errline_has_no_detail, 30},
        {"privacy_check_prints_no_secret", check_prints_no_secret, 30},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
