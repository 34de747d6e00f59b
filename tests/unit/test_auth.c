/* Unit tests of token hashing, the role table, log masking and UTF-8 validation. */
#include "base/auth.h"
#include "common/log.h"
#include "t.h"

static void sha256_known(void)
{
    char hex[65];
    auth_token_hash_hex("abc", hex);
    T_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    auth_token_hash_hex("", hex);
    T_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void roles(void)
{
    T_EQ_INT(auth_role_parse("gateway"), CARELINE__V1__ROLE__ROLE_GATEWAY);
    T_EQ_INT(auth_role_parse("station"), CARELINE__V1__ROLE__ROLE_STATION);
    T_EQ_INT(auth_role_parse("root"), CARELINE__V1__ROLE__ROLE_UNSPECIFIED);
    T_EQ_STR(auth_role_name(CARELINE__V1__ROLE__ROLE_BUREAU), "bureau");
}

static void permission_table(void)
{
    const Role gw = CARELINE__V1__ROLE__ROLE_GATEWAY, st = CARELINE__V1__ROLE__ROLE_STATION,
               bu = CARELINE__V1__ROLE__ROLE_BUREAU, ad = CARELINE__V1__ROLE__ROLE_ADMIN;
    T_ASSERT(auth_allowed(gw, CARELINE__V1__ENVELOPE__BODY_SUBMIT));
    T_ASSERT(!auth_allowed(st, CARELINE__V1__ENVELOPE__BODY_SUBMIT));
    T_ASSERT(!auth_allowed(bu, CARELINE__V1__ENVELOPE__BODY_SUBMIT));
    T_ASSERT(auth_allowed(st, CARELINE__V1__ENVELOPE__BODY_JOB_UPDATE));
    T_ASSERT(!auth_allowed(gw, CARELINE__V1__ENVELOPE__BODY_JOB_UPDATE));
    T_ASSERT(auth_allowed(bu, CARELINE__V1__ENVELOPE__BODY_COVERAGE_QUERY));
    T_ASSERT(!auth_allowed(gw, CARELINE__V1__ENVELOPE__BODY_COVERAGE_QUERY));
    T_ASSERT(auth_allowed(ad, CARELINE__V1__ENVELOPE__BODY_COVERAGE_QUERY));
    T_ASSERT(auth_allowed(st, CARELINE__V1__ENVELOPE__BODY_PING));
    /* the follow-up list: admin and stations (their villages: daemon/admin), no one else */
    T_ASSERT(auth_allowed(ad, CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_QUERY));
    T_ASSERT(auth_allowed(st, CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_MARK));
    T_ASSERT(!auth_allowed(gw, CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_QUERY));
    T_ASSERT(!auth_allowed(bu, CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_QUERY));
    T_ASSERT(!auth_allowed(bu, CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_MARK));
    T_ASSERT(!auth_allowed(ad, CARELINE__V1__ENVELOPE__BODY_FOLLOWUP_LIST));
    /* server-to-client messages are never accepted from a client */
    T_ASSERT(!auth_allowed(ad, CARELINE__V1__ENVELOPE__BODY_JOB_OFFER));
    T_ASSERT(!auth_allowed(ad, CARELINE__V1__ENVELOPE__BODY_SUBMIT_RESULT));
    T_ASSERT(
        !auth_allowed(CARELINE__V1__ROLE__ROLE_UNSPECIFIED, CARELINE__V1__ENVELOPE__BODY_PING));
}

static void masking(void)
{
    char b[LOG_MASK_BUF];
    T_EQ_STR(log_mask_phone("13900001234", b), "139****1234");
    T_EQ_STR(log_mask_phone("+8613900001234", b), "+86*******1234");
    T_EQ_STR(log_mask_phone("12345", b), "***45");
    T_EQ_STR(log_mask_phone("", b), "");
    T_EQ_STR(log_mask_name("王秀英", b), "王**");
    T_EQ_STR(log_mask_name("A", b), "A");
}

static void utf8(void)
{
    T_ASSERT(util_utf8_valid("午餐 lunch", strlen("午餐 lunch")));
    T_ASSERT(!util_utf8_valid("\xc3\x28", 2));         /* bad continuation */
    T_ASSERT(!util_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    T_ASSERT(!util_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    T_ASSERT(!util_utf8_valid("\xe5\x8d", 2));         /* truncated */
    T_ASSERT(!util_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    T_ASSERT(util_utf8_valid("\xf0\x9f\x8d\x9a", 4));  /* U+1F35A */
}

int main(int argc, char **argv)
{
    static const TCase cases[] = {
        {"auth_sha256_known", sha256_known, 0},
        {"auth_roles", roles, 0},
        {"auth_permission_table", permission_table, 0},
        {"log_masking", masking, 0},
        {"util_utf8", utf8, 0},
        {NULL, NULL, 0},
    };
    return t_main(argc, argv, cases);
}
