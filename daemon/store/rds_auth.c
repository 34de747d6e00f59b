/*
 * rds_auth: the Redis password file (first line, re-read before every connect so a rotated
 * password needs no restart) and the AUTH pipelined as the first command of every new
 * context, before anything else and even before the TCP connect completes. A link is UP only
 * once Redis accepted it; a refusal is a link failure like any other (logged, retried).
 */
#include "store/rds_int.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* The answer to the AUTH sent first on this context. */
static void auth_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    RdsLink *l = privdata;
    redisReply *rep = reply;
    char why[RDS_ERR_LEN];

    if (ac->data != l || !rep)
        return; /* the link went down meanwhile: the disconnect path handled it */
    if (rep->type != REDIS_REPLY_ERROR) {
        rds_link_up(l);
        return;
    }
    Rds *r = l->r;
    int n = (int)(rep->len > 120 ? 120 : rep->len);
    while (n > 0 && (rep->str[n - 1] == '.' || rep->str[n - 1] == ' '))
        n--;
    snprintf(why, sizeof(why),
             "Redis refused our credentials (user '%s', password from %s): %.*s; check "
             "redis_user and redis_password_file against the Redis ACL",
             r->user ? r->user : "default", r->password_file, n, rep->str);
    l->ac = NULL;
    ac->data = NULL;    /* our disconnect callback ignores it */
    redisAsyncFree(ac); /* deferred by hiredis until this callback returns */
    rds_link_down_why(l, why, true);
}

/*
 * Reads the password (its first line, without the line end) from r->password_file into
 * r->password. A file others may read is refused. A small local file: read on the loop, at
 * start and on every (re)connect, so a rotated password is picked up without a restart.
 */
bool rds_password_load(Rds *r, char *err, size_t errlen)
{
    char buf[RDS_SECRET_MAX + 2];
    struct stat sb;
    int fd = open(r->password_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open redis_password_file %s: %s", r->password_file,
                 strerror(errno));
        return false;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & S_IRWXO)) {
        snprintf(err, errlen,
                 "redis_password_file %s must be a regular file that others cannot read "
                 "(chmod 600 it)",
                 r->password_file);
        close(fd);
        return false;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "cannot read redis_password_file %s: %s", r->password_file,
                 strerror(errno));
        return false;
    }
    size_t len = 0;
    while (len < (size_t)n && buf[len] != '\n' && buf[len] != '\r')
        len++;
    bool ok = len > 0 && len <= RDS_SECRET_MAX && memchr(buf, '\0', len) == NULL;
    if (ok) {
        memcpy(r->password, buf, len);
        r->password[len] = '\0';
        r->password_len = len;
    } else {
        snprintf(err, errlen, "redis_password_file %s must hold one line of 1 to %d bytes",
                 r->password_file, RDS_SECRET_MAX);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return ok;
}

/* Queues AUTH [user] password as the new context's first command. */
bool rds_auth_send(RdsLink *l, redisAsyncContext *ac)
{
    Rds *r = l->r;
    char err[RDS_ERR_LEN];
    if (!rds_password_load(r, err, sizeof(err))) {
        if (!r->password_file_warned)
            log_warn("%s; using the password read before", err);
        r->password_file_warned = true;
    } else if (r->password_file_warned) {
        log_info("redis_password_file %s readable again", r->password_file);
        r->password_file_warned = false;
    }
    const char *argv[3] = {"AUTH", r->user ? r->user : r->password, r->password};
    size_t lens[3] = {4, r->user ? strlen(r->user) : r->password_len, r->password_len};
    return redisAsyncCommandArgv(ac, auth_cb, l, r->user ? 3 : 2, argv, lens) == REDIS_OK;
}
