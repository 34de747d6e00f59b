/*
 * gw_spool: write-ahead call queue of the hotline gateway. Records are appended and synced
 * before the caller is told anything that depends on them; done markers are cheap hints.
 * Compaction at open rewrites only what is still pending, via write-temp + fsync + rename.
 */
#include "gw_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

struct GwSpool {
    char *dir;
    int fd;            /* spool.log, O_APPEND */
    int done_fd;       /* done.log, O_APPEND */
    uint64_t next_seq; /* > every seq ever used in this directory */
    GwSpoolRec *recs;  /* pending, seq order */
    size_t n, cap;
    uint64_t appended; /* since open */
    uint64_t dropped;  /* lines skipped at open */
};

static uint32_t crc32_of(const char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= (unsigned char)p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void path_of(const GwSpool *s, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", s->dir, name);
}

static void push(GwSpool *s, uint64_t seq, const char *payload, size_t len)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->recs = xrealloc(s->recs, s->cap * sizeof(*s->recs));
    }
    s->recs[s->n].seq = seq;
    s->recs[s->n].payload = xstrndup(payload, len);
    s->n++;
}

/* Sorted array of done seqs, for the load. */
typedef struct {
    uint64_t *v;
    size_t n, cap;
} SeqSet;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool seqset_has(const SeqSet *ss, uint64_t seq)
{
    return ss->n && bsearch(&seq, ss->v, ss->n, sizeof(uint64_t), cmp_u64) != NULL;
}

static void load_done(GwSpool *s, SeqSet *ss)
{
    char path[600];
    path_of(s, "done.log", path, sizeof(path));
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        unsigned long long seq;
        if (line[len - 1] != '\n' || sscanf(line, "D %llu", &seq) != 1)
            continue;
        if (ss->n == ss->cap) {
            ss->cap = ss->cap ? ss->cap * 2 : 64;
            ss->v = xrealloc(ss->v, ss->cap * sizeof(uint64_t));
        }
        ss->v[ss->n++] = seq;
        if (seq >= s->next_seq)
            s->next_seq = seq + 1;
    }
    free(line);
    fclose(f);
    if (ss->n)
        qsort(ss->v, ss->n, sizeof(uint64_t), cmp_u64);
}

static void load_spool(GwSpool *s, const SeqSet *done)
{
    char path[600];
    path_of(s, "spool.log", path, sizeof(path));
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long lineno = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        unsigned long long v;
        unsigned crc;
        int off = 0;
        if (line[len - 1] != '\n') {
            log_warn("spool: dropping a torn last record (%zd bytes) in %s", len, path);
            s->dropped++;
            break;
        }
        line[--len] = '\0';
        if (sscanf(line, "H %llu", &v) == 1) {
            if (v > s->next_seq)
                s->next_seq = v;
            continue;
        }
        if (sscanf(line, "R %llu %8x %n", &v, &crc, &off) != 2 || off == 0 ||
            crc32_of(line + off, (size_t)(len - off)) != crc) {
            log_warn("spool: %s:%lu is corrupt; skipped", path, lineno);
            s->dropped++;
            continue;
        }
        if (v >= s->next_seq)
            s->next_seq = v + 1;
        if (!seqset_has(done, v))
            push(s, v, line + off, (size_t)(len - off));
    }
    free(line);
    fclose(f);
}

static bool fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

static bool format_rec(uint64_t seq, const char *payload, char **out, size_t *outlen)
{
    size_t plen = strlen(payload);
    if (memchr(payload, '\n', plen))
        return false;
    size_t cap = plen + 48;
    char *b = xmalloc(cap);
    int h = snprintf(b, cap, "R %llu %08x ", (unsigned long long)seq, crc32_of(payload, plen));
    memcpy(b + h, payload, plen);
    b[h + (int)plen] = '\n';
    *out = b;
    *outlen = (size_t)h + plen + 1;
    return true;
}

/* Rewrites spool.log with the header and the pending records, then empties done.log. */
static bool compact(GwSpool *s, char *err, size_t errlen)
{
    char path[600], tmp[620], dpath[600];
    path_of(s, "spool.log", path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    path_of(s, "done.log", dpath, sizeof(dpath));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return false;
    }
    char hdr[64];
    int hl = snprintf(hdr, sizeof(hdr), "H %llu\n", (unsigned long long)s->next_seq);
    bool ok = write_all(fd, hdr, (size_t)hl);
    for (size_t i = 0; ok && i < s->n; i++) {
        char *b = NULL;
        size_t bl = 0;
        ok = format_rec(s->recs[i].seq, s->recs[i].payload, &b, &bl) && write_all(fd, b, bl);
        free(b);
    }
    if (!ok || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return false;
    }
    close(fd);
    if (rename(tmp, path) != 0 || !fsync_dir(s->dir)) {
        snprintf(err, errlen, "cannot replace %s: %s", path, strerror(errno));
        return false;
    }
    /* the new spool holds no done record and its header keeps next_seq, so done.log may go */
    int dfd = open(dpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (dfd < 0) {
        snprintf(err, errlen, "cannot truncate %s: %s", dpath, strerror(errno));
        return false;
    }
    close(dfd);
    return true;
}

/* Opens the append descriptors (after a compaction). */
static bool open_fds(GwSpool *s, char *err, size_t errlen)
{
    char path[600];
    path_of(s, "spool.log", path, sizeof(path));
    s->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return false;
    }
    path_of(s, "done.log", path, sizeof(path));
    s->done_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (s->done_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return false;
    }
    return true;
}

GwSpool *gw_spool_open(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create spool dir %s: %s", dir, strerror(errno));
        return NULL;
    }
    chmod(dir, 0700); /* best effort: the records hold phone numbers */
    GwSpool *s = xcalloc(1, sizeof(*s));
    s->dir = xstrdup(dir);
    s->fd = s->done_fd = -1;
    s->next_seq = 1;
    SeqSet done = {0};
    load_done(s, &done);
    load_spool(s, &done);
    free(done.v);
    if (!compact(s, err, errlen) || !open_fds(s, err, errlen))
        goto fail;
    return s;
fail:
    gw_spool_free(s);
    return NULL;
}

void gw_spool_free(GwSpool *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    if (s->done_fd >= 0)
        close(s->done_fd);
    s->fd = s->done_fd = -1;
    for (size_t i = 0; i < s->n; i++)
        free(s->recs[i].payload);
    free(s->recs);
    free(s->dir);
    free(s);
}

bool gw_spool_append(GwSpool *s, const char *payload, uint64_t *seq_out)
{
    char *b;
    size_t bl;
    uint64_t seq = s->next_seq;
    if (!format_rec(seq, payload, &b, &bl))
        return false;
    /* one write() per record: O_APPEND keeps it contiguous; a crash mid-write leaves a torn
     * last line that the next open drops (the caller was not told "recorded") */
    struct stat st = {0};
    bool have_size = fstat(s->fd, &st) == 0;
    bool ok = have_size && write_all(s->fd, b, bl) && fdatasync(s->fd) == 0;
    free(b);
    if (!ok) {
        int e = errno;
        /* cut a partial record off, or the next record would be glued to it and lost */
        if (have_size && ftruncate(s->fd, st.st_size) != 0)
            log_error("spool: cannot cut a partial record: %s", strerror(errno));
        log_error("spool: cannot write a record: %s", strerror(e));
        return false;
    }
    s->next_seq++;
    push(s, seq, payload, strlen(payload));
    s->appended++;
    *seq_out = seq;
    return true;
}

bool gw_spool_done(GwSpool *s, uint64_t seq, const char *outcome)
{
    size_t i = 0;
    while (i < s->n && s->recs[i].seq != seq)
        i++;
    if (i == s->n)
        return false;
    free(s->recs[i].payload);
    memmove(&s->recs[i], &s->recs[i + 1], (s->n - i - 1) * sizeof(*s->recs));
    s->n--;
    char line[96];
    int n = snprintf(line, sizeof(line), "D %llu %s\n", (unsigned long long)seq, outcome);
    if (!write_all(s->done_fd, line, (size_t)n)) {
        log_warn("spool: cannot mark %llu done: %s (it will be resent after a restart)",
                 (unsigned long long)seq, strerror(errno));
        return false;
    }
    if (s->n == 0) {
        /* nothing left to send: rewrite the files now so no phone number stays on disk */
        char err[700];
        close(s->fd);
        close(s->done_fd);
        s->fd = s->done_fd = -1;
        bool ok = compact(s, err, sizeof(err));
        if (!ok)
            log_error("spool: compaction failed: %s", err);
        if (s->fd < 0 && !open_fds(s, err, sizeof(err)))
            log_error("spool: %s; new calls cannot be spooled", err); /* append says so */
        return ok;
    }
    return true;
}

size_t gw_spool_count(const GwSpool *s)
{
    return s->n;
}

const GwSpoolRec *gw_spool_at(const GwSpool *s, size_t i)
{
    return i < s->n ? &s->recs[i] : NULL;
}

const GwSpoolRec *gw_spool_find(const GwSpool *s, uint64_t seq)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->recs[i].seq == seq)
            return &s->recs[i];
    return NULL;
}

uint64_t gw_spool_appended(const GwSpool *s)
{
    return s->appended;
}

uint64_t gw_spool_dropped_at_open(const GwSpool *s)
{
    return s->dropped;
}
