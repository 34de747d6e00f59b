/*
 * carelinectl: the admin's command line — every admin API operation over the protocol
 * (AdminRequest with an admin token), printed as an aligned table, JSON or CSV; bulk import
 * of residents and stations from CSV (the header names the fields), all or nothing per file,
 * checked server-side in one transaction, with a per-record error report.
 *
 *   carelinectl [--host H] [--port P] [--token T | --tokens FILE] [--format table|json|csv]
 *               [--reason TEXT] OBJECT VERB [name=value ...]
 *   carelinectl ... --reason TEXT [--dry-run] import residents|stations FILE.csv
 *
 *   resident  register | update | deactivate | find | get
 *   station   create | update | retire | list | get
 *   token     issue | list | revoke          setting  set | list        audit  query
 *
 * Exit status: 0 done, 2 refused (bad arguments, bad records: nothing written), 1 other
 * failures (not found, conflict, connection, server).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl.h"
#include "ctl_csv.h"

typedef Careline__V1__AdminResult Result;

typedef struct {
    const char *host, *token, *tokens, *format, *reason;
    int port;
    bool dry_run;
    TlsClientOpts tls;
} Opts;

static void usage(void)
{
    fprintf(
        stderr,
        "usage: carelinectl [--host H] [--port P] [--token T | --tokens FILE]\n"
        "                   [--format table|json|csv] [--reason TEXT] OBJECT VERB [name=value "
        "...]\n"
        "       carelinectl ... --reason TEXT [--dry-run] import residents|stations FILE.csv\n"
        "  resident register|update|deactivate|find|get    station create|update|retire|list|get\n"
        "  token issue|list|revoke    setting set|list    audit query\n"
        "Arguments are the API's (README \"Administration\"), e.g. resident find phone=139...\n"
        "Every change needs --reason; it is audited with your token's principal.\n" TLSC_USAGE
        "The token defaults to the admin line of var/dev-tokens.txt (from `make run`).\n");
    exit(2);
}

/* "residents" / "resident" -> "resident"; NULL if unknown. */
static const char *object_of(const char *s)
{
    static const char *const objs[] = {"resident", "station", "token", "setting", "audit"};
    for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
        size_t n = strlen(objs[i]);
        if (strncmp(s, objs[i], n) == 0 && (!s[n] || strcmp(s + n, "s") == 0))
            return objs[i];
    }
    return NULL;
}

/* ---- output ----------------------------------------------------------------------------- */

static size_t width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;
        w += *p >= 0xE0 ? 2 : 1; /* CJK (3- and 4-byte UTF-8) take two columns */
    }
    return w;
}

static void print_table(const Result *m)
{
    size_t nc = m->n_columns;
    size_t *w = calloc(nc + 1, sizeof(size_t));
    for (size_t j = 0; j < nc; j++)
        w[j] = width(m->columns[j]);
    for (size_t i = 0; i < m->n_rows; i++)
        for (size_t j = 0; j < nc && j < m->rows[i]->n_values; j++)
            if (width(m->rows[i]->values[j]) > w[j])
                w[j] = width(m->rows[i]->values[j]);
    for (size_t i = 0; i <= m->n_rows; i++) {
        for (size_t j = 0; j < nc; j++) {
            const char *v = i == 0                         ? m->columns[j]
                            : j < m->rows[i - 1]->n_values ? m->rows[i - 1]->values[j]
                                                           : "";
            printf("%s%s%*s", j ? "  " : "", v, j + 1 < nc ? (int)(w[j] - width(v)) : 0, "");
        }
        printf("\n");
    }
    free(w);
}

static void print_json(const Result *m)
{
    json_t *rows = json_array();
    for (size_t i = 0; i < m->n_rows; i++) {
        json_t *o = json_object();
        for (size_t j = 0; j < m->n_columns && j < m->rows[i]->n_values; j++)
            json_object_set_new(o, m->columns[j], json_string(m->rows[i]->values[j]));
        json_array_append_new(rows, o);
    }
    json_t *out = json_pack("{s:s,s:o}", "op", m->op, "rows", rows);
    if (m->message && m->message[0])
        json_object_set_new(out, "message", json_string(m->message));
    if (m->object_id)
        json_object_set_new(out, "id", json_integer(m->object_id));
    if (m->audit_id)
        json_object_set_new(out, "audit_id", json_integer(m->audit_id));
    if (m->secret && m->secret[0])
        json_object_set_new(out, "secret", json_string(m->secret));
    json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("\n");
    json_decref(out);
}

static void print_csv(const Result *m)
{
    for (size_t i = 0; i <= m->n_rows; i++) {
        for (size_t j = 0; j < m->n_columns; j++) {
            if (j)
                fputc(',', stdout);
            ctl_csv_field(stdout, i == 0                         ? m->columns[j]
                                  : j < m->rows[i - 1]->n_values ? m->rows[i - 1]->values[j]
                                                                 : "");
        }
        fputc('\n', stdout);
    }
}

/* Prints m; returns the exit status. lines: an import's record -> file line (or NULL). */
static int report(const Opts *o, const Result *m, const char *file, const size_t *lines)
{
    if (m->code != 0) {
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(&careline__v1__error_code__descriptor, m->code);
        fprintf(stderr, "carelinectl: %s: %s\n", ev ? ev->name : "error", m->message);
        for (size_t i = 0; i < m->n_errors && (m->n_errors > 1 || file); i++) {
            const Careline__V1__AdminFieldError *e = m->errors[i];
            if (e->record && file)
                fprintf(stderr, "  %s:%zu (record %u): %s %s\n", file,
                        lines ? lines[e->record - 1] : 0, e->record, e->field, e->message);
            else
                fprintf(stderr, "  %s %s\n", e->field, e->message);
        }
        return m->code == CARELINE__V1__ERROR_CODE__INVALID_ARGUMENT ? 2 : 1;
    }
    if (strcmp(o->format, "json") == 0)
        print_json(m);
    else if (strcmp(o->format, "csv") == 0)
        print_csv(m);
    else {
        print_table(m);
        if (m->message && m->message[0])
            fprintf(stderr, "%s\n", m->message);
    }
    if (m->secret && m->secret[0] && strcmp(o->format, "json") != 0)
        printf("secret: %s\n(shown once: only its hash is stored; keep it now)\n", m->secret);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------- */

/* Connects and says Hello; *max_frame is the server's frame limit. Exits on failure. */
static ClConn *login(const Opts *o, uint32_t *max_frame)
{
    char *tok = o->token ? strdup(o->token) : cl_token_from_file(o->tokens, "admin", 0);
    if (!tok) {
        fprintf(stderr, "carelinectl: no token: give --token or run `make run` first (%s)\n",
                o->tokens);
        exit(2);
    }
    char err[256];
    ClConn *c = cl_open_opts(o->host, o->port, &o->tls, 3000, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "carelinectl: %s%s\n", err,
                strncmp(err, "TLS", 3) ? " (is dispatchd running? `make run`)" : "");
        free(tok);
        exit(1);
    }
    ClEnvelope *r = cl_hello(c, tok, "carelinectl", 5000, err, sizeof(err));
    free(tok);
    if (!r || r->body_case != CARELINE__V1__ENVELOPE__BODY_HELLO_OK) {
        fprintf(stderr, "carelinectl: %s\n",
                r && r->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR ? r->error->message
                : r ? "unexpected reply to Hello"
                    : err);
        exit(1);
    }
    *max_frame = r->hello_ok->max_frame_bytes;
    cl_free(r);
    return c;
}

int main(int argc, char **argv)
{
    Opts o = {.host = "127.0.0.1", .port = 7400, .tokens = "var/dev-tokens.txt", .format = "table"};
    const char *pos[64];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && ++i)
        if (OPT("--host"))
            o.host = v;
        else if (OPT("--port"))
            o.port = atoi(v);
        else if (OPT("--token"))
            o.token = v;
        else if (OPT("--tokens"))
            o.tokens = v;
        else if (OPT("--format"))
            o.format = v;
        else if (OPT("--reason"))
            o.reason = v;
        else if (strcmp(a, "--dry-run") == 0)
            o.dry_run = true;
        else if (tlsc_arg(&o.tls, argc, argv, &i))
            continue;
        else if (a[0] != '-' && npos < 64)
            pos[npos++] = a;
        else
            usage();
#undef OPT
    }
    if (npos < 2 ||
        (strcmp(o.format, "table") && strcmp(o.format, "json") && strcmp(o.format, "csv")))
        usage();

    Careline__V1__AdminRequest q = CARELINE__V1__ADMIN_REQUEST__INIT;
    char op[40];
    CtlCsv csv = {0};
    bool imp = strcmp(pos[0], "import") == 0;
    const char *obj = object_of(pos[1]);
    if (imp) {
        if (npos != 3 || !obj || (strcmp(obj, "resident") && strcmp(obj, "station")))
            usage();
        char err[512];
        if (!ctl_csv_read(pos[2], &csv, err, sizeof(err))) {
            fprintf(stderr, "carelinectl: %s\n", err);
            return 2;
        }
        snprintf(op, sizeof(op), "%s.import", obj);
    } else {
        obj = object_of(pos[0]);
        if (!obj)
            usage();
        snprintf(op, sizeof(op), "%s.%s", obj, pos[1]);
    }
    q.op = op;
    q.reason = (char *)(o.reason ? o.reason : "");
    q.dry_run = o.dry_run;

    /* name=value arguments */
    size_t na = imp ? 0 : (size_t)(npos - 2);
    Careline__V1__AdminRequest__ArgsEntry *args = calloc(na + 1, sizeof(*args));
    Careline__V1__AdminRequest__ArgsEntry **argp = calloc(na + 1, sizeof(*argp));
    for (size_t i = 0; i < na; i++) {
        const char *kv = pos[i + 2], *eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            fprintf(stderr, "carelinectl: '%s' is not name=value\n", kv);
            return 2;
        }
        careline__v1__admin_request__args_entry__init(&args[i]);
        args[i].key = strndup(kv, (size_t)(eq - kv));
        args[i].value = (char *)eq + 1;
        argp[i] = &args[i];
    }
    q.n_args = na;
    q.args = argp;

    /* the import's records: one per CSV line, the header's names as field names */
    Careline__V1__AdminRecord *recs = calloc(csv.nrows + 1, sizeof(*recs));
    Careline__V1__AdminRecord **recp = calloc(csv.nrows + 1, sizeof(*recp));
    Careline__V1__AdminRecord__FieldsEntry *fe = calloc(csv.nrows * csv.ncols + 1, sizeof(*fe));
    Careline__V1__AdminRecord__FieldsEntry **fep = calloc(csv.nrows * csv.ncols + 1, sizeof(*fep));
    for (size_t i = 0; i < csv.nrows; i++) {
        careline__v1__admin_record__init(&recs[i]);
        recs[i].fields = &fep[i * csv.ncols];
        for (size_t j = 0; j < csv.ncols; j++) {
            if (!csv.rows[i][j][0])
                continue; /* an empty cell: the field is not given */
            Careline__V1__AdminRecord__FieldsEntry *e = &fe[i * csv.ncols + j];
            careline__v1__admin_record__fields_entry__init(e);
            e->key = csv.names[j];
            e->value = csv.rows[i][j];
            recs[i].fields[recs[i].n_fields++] = e;
        }
        recp[i] = &recs[i];
    }
    q.n_records = csv.nrows;
    q.records = recp;

    uint32_t max_frame = 0;
    ClConn *c = login(&o, &max_frame);
    ClEnvelope e = CARELINE__V1__ENVELOPE__INIT;
    e.body_case = CARELINE__V1__ENVELOPE__BODY_ADMIN_REQUEST;
    e.admin_request = &q;
    char err[256];
    size_t size = careline__v1__envelope__get_packed_size(&e);
    ClEnvelope *r = NULL;
    int rc;
    if (max_frame && size > max_frame) {
        /* one file is one request (one transaction): too big for one frame, it is not sent */
        fprintf(stderr,
                "carelinectl: %s: %zu records make a %zu-byte request, over the server's "
                "%u-byte frame limit (max_frame_bytes); nothing was sent: split the file (each "
                "part is written whole or not at all) or raise max_frame_bytes\n",
                imp ? pos[2] : "request", csv.nrows, size, max_frame);
        rc = 2;
    } else if (!(r = cl_call(c, &e, 60000, err, sizeof(err), NULL, NULL))) {
        fprintf(stderr, "carelinectl: %s\n", err);
        rc = 1;
    } else if (r->body_case == CARELINE__V1__ENVELOPE__BODY_ERROR) {
        fprintf(stderr, "carelinectl: %s\n", r->error->message);
        rc = 1;
    } else if (r->body_case != CARELINE__V1__ENVELOPE__BODY_ADMIN_RESULT) {
        fprintf(stderr, "carelinectl: unexpected reply\n");
        rc = 1;
    } else {
        rc = report(&o, r->admin_result, imp ? pos[2] : NULL, imp ? csv.lines : NULL);
    }
    cl_free(r);
    cl_close(c);
    for (size_t i = 0; i < na; i++)
        free(args[i].key);
    free(args);
    free(argp);
    free(recs);
    free(recp);
    free(fe);
    free(fep);
    ctl_csv_free(&csv);
    return rc;
}
