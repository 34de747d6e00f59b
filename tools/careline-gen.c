/*
 * careline-gen: deterministic synthetic data sets as CSV files ready for `\copy ... csv header`.
 * `yuyao` fills in the real Yuyao towns and villages (data/yuyao) with derived points,
 * synthetic elderly counts, stations and residents; `national` streams a country-sized set.
 * Every random choice comes from splitmix64 keyed by (seed, purpose, entity), and no libm
 * call feeds the output, so one seed gives the same bytes on every machine.
 */
#include "base/geo.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define GEN_VERSION    "careline-gen/1"
#define GEN_LINE_MAX   4096
#define GEN_FIELDS_MAX 16
#define KM_PER_DEG     (GEO_EARTH_RADIUS_KM * GEO_DEG2RAD) /* along a meridian */

/* ---------------------------------------------------------------------------------------
 * PRNG: splitmix64. A stream is keyed by (seed, tag, key) so that one entity's values do not
 * depend on how many values other entities drew before it. */

typedef struct {
    uint64_t s;
} Rng;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rng_next(Rng *r)
{
    r->s += 0x9E3779B97F4A7C15ULL;
    return mix64(r->s);
}

/* uniform in [0, 1) with 53 random bits */
static double rng_unit(Rng *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform integer in [lo, hi] (the modulo bias of 64 random bits is negligible here) */
static int rng_range(Rng *r, int lo, int hi)
{
    ASSERT(hi >= lo);
    return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static bool rng_chance(Rng *r, double p)
{
    return rng_unit(r) < p;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001B3ULL;
    return h;
}

static Rng rng_for(uint64_t seed, const char *tag, uint64_t key)
{
    Rng r = {mix64(mix64(seed ^ fnv1a(tag)) ^ key)};
    return r;
}

static Rng rng_for_str(uint64_t seed, const char *tag, const char *key)
{
    return rng_for(seed, tag, fnv1a(key));
}

/* cos(x) for |x| <= pi/2 by its Taylor series (error < 1e-12 up to 60 degrees). Plain IEEE
 * arithmetic, so the result does not depend on the platform's libm. */
static double det_cos(double x)
{
    double x2 = x * x;
    return 1.0 -
           x2 / 2.0 *
               (1.0 -
                x2 / 12.0 *
                    (1.0 -
                     x2 / 30.0 *
                         (1.0 - x2 / 56.0 *
                                    (1.0 - x2 / 90.0 * (1.0 - x2 / 132.0 * (1.0 - x2 / 182.0))))));
}

/* Moves (lat, lon) by a random offset uniform over the annulus rmin..rmax km (rejection
 * sampling in the square, so no trigonometry on the random part). */
static void jitter(Rng *r, double rmin_km, double rmax_km, double *lat, double *lon)
{
    double q = rmin_km / rmax_km, u, v, d2;
    do {
        u = 2.0 * rng_unit(r) - 1.0;
        v = 2.0 * rng_unit(r) - 1.0;
        d2 = u * u + v * v;
    } while (d2 > 1.0 || d2 < q * q);
    double lat0 = *lat;
    *lat = lat0 + v * rmax_km / KM_PER_DEG;
    *lon = *lon + u * rmax_km / (KM_PER_DEG * det_cos(lat0 * GEO_DEG2RAD));
}

/* ---------------------------------------------------------------------------------------
 * Output: CSV files written as NAME.tmp and renamed when complete. */

typedef struct {
    FILE *f;
    char path[1024];
    char tmp[1040];
    uint64_t rows;
} Out;

static void out_open(Out *o, const char *dir, const char *name, const char *header)
{
    snprintf(o->path, sizeof(o->path), "%s/%s", dir, name);
    snprintf(o->tmp, sizeof(o->tmp), "%s.tmp", o->path);
    o->f = fopen(o->tmp, "w");
    if (!o->f) {
        log_error("cannot create %s: %s", o->tmp, strerror(errno));
        exit(1);
    }
    static char bufs[8][1 << 20];
    static int nbuf;
    if (nbuf < 8)
        setvbuf(o->f, bufs[nbuf++], _IOFBF, sizeof(bufs[0]));
    fprintf(o->f, "%s\n", header);
    o->rows = 0;
}

static void out_close(Out *o)
{
    bool bad = ferror(o->f) != 0;
    if (fclose(o->f) != 0 || bad) {
        log_error("write error on %s", o->tmp);
        exit(1);
    }
    if (rename(o->tmp, o->path) != 0) {
        log_error("cannot rename %s: %s", o->tmp, strerror(errno));
        exit(1);
    }
}

static const char *tf(bool b)
{
    return b ? "true" : "false";
}

/* ---------------------------------------------------------------------------------------
 * Shared vocabulary and generators of people and stations */

enum { AREA_URBAN, AREA_RURAL, AREA_MOUNTAIN };
static const char *const area_names[] = {"urban", "rural", "mountain"};
/* village spread around the town point for villages without a source point (km) */
static const double spread_min_km[] = {0.5, 0.5, 1.5};
static const double spread_max_km[] = {3.0, 3.0, 6.0};
/* share of villages with a station of their own */
static const double station_share[] = {0.55, 0.40, 0.08};

enum { ST_TOWN_CENTRE, ST_VILLAGE_STATION, ST_CANTEEN, ST_MEAL_POINT };
static const char *const station_kinds[] = {"town_centre", "village_station", "canteen",
                                            "meal_point"};
static const char *const station_suffix[] = {"居家养老服务中心（模拟）", "居家养老服务站（模拟）",
                                             "老年食堂（模拟）", "助餐点（模拟）"};
static const char *const station_tag[] = {"TC", "VS", "CT", "MP"};

static const char *const care_names[] = {"bathing", "cleaning", "companionship", "medical_escort",
                                         "care_other"};

typedef struct {
    char code[48];
    char name[192];
    const char *town_code;
    const char *village_code; /* NULL for a town centre */
    int kind;
    double lat, lon;
    bool meal, care;
    unsigned care_mask; /* bit i = care_names[i] */
    int cap_lunch, cap_dinner, caregivers, certified;
    const char *opens, *closes;
    int open_days;
    bool terminal;
} Station;

static const char *const STATION_HEADER =
    "code,name,town_code,village_code,kind,lat,lon,offers_meal_delivery,offers_home_care,"
    "care_subtypes,meal_capacity_lunch,meal_capacity_dinner,caregivers,caregivers_certified,"
    "opens_at,closes_at,open_days,has_terminal,active,synthetic";

/* Fills a station's service attributes; kind, position and names are the caller's. */
static void station_fill(Station *s, Rng *r)
{
    switch (s->kind) {
    case ST_TOWN_CENTRE:
        s->meal = true;
        s->care = true;
        s->care_mask = 0x1F;
        s->caregivers = rng_range(r, 6, 12);
        break;
    case ST_VILLAGE_STATION:
        s->meal = rng_chance(r, 0.5);
        s->care = true;
        /* one draw per statement: operand order is unspecified in C, and so would be the
         * bytes across compilers */
        s->care_mask = 0x06; /* cleaning, companionship */
        if (rng_chance(r, 0.4))
            s->care_mask |= 0x01; /* bathing */
        if (rng_chance(r, 0.3))
            s->care_mask |= 0x08; /* medical escort */
        if (rng_chance(r, 0.3))
            s->care_mask |= 0x10; /* other */
        s->caregivers = rng_range(r, 2, 8);
        break;
    case ST_CANTEEN:
        s->meal = rng_chance(r, 0.7);
        s->care = false;
        s->care_mask = 0;
        s->caregivers = rng_range(r, 2, 4);
        break;
    default:
        ASSERT(s->kind == ST_MEAL_POINT);
        s->meal = rng_chance(r, 0.85);
        s->care = false;
        s->care_mask = 0;
        s->caregivers = rng_range(r, 2, 3);
        break;
    }
    s->cap_lunch = rng_range(r, 20, 80);
    s->cap_dinner = s->cap_lunch * rng_range(r, 50, 100) / 100;
    if (s->cap_dinner < 20)
        s->cap_dinner = 20;
    /* certified share 40..80 %, rounded */
    s->certified = (s->caregivers * rng_range(r, 40, 80) + 50) / 100;
    s->opens = "07:00";
    s->closes = "19:00";
    s->open_days = s->kind == ST_TOWN_CENTRE || rng_chance(r, 0.8) ? 127 : 63; /* 63 = Mon-Sat */
    s->terminal = rng_chance(r, 0.5);
}

static void station_write(Out *o, const Station *s)
{
    char subtypes[96] = "{";
    for (unsigned i = 0; i < ARRAY_LEN(care_names); i++) {
        if (s->care_mask & (1u << i)) {
            if (subtypes[1])
                strcat(subtypes, ",");
            strcat(subtypes, care_names[i]);
        }
    }
    strcat(subtypes, "}");
    fprintf(o->f, "%s,%s,%s,%s,%s,%.6f,%.6f,%s,%s,\"%s\",%d,%d,%d,%d,%s,%s,%d,%s,true,true\n",
            s->code, s->name, s->town_code, s->village_code ? s->village_code : "",
            station_kinds[s->kind], s->lat, s->lon, tf(s->meal), tf(s->care), subtypes,
            s->cap_lunch, s->cap_dinner, s->caregivers, s->certified, s->opens, s->closes,
            s->open_days, tf(s->terminal));
    o->rows++;
}

/* Picks a station kind for a village site: mostly care stations, some canteens and meal points. */
static int station_kind_roll(Rng *r)
{
    double u = rng_unit(r);
    return u < 0.55 ? ST_VILLAGE_STATION : u < 0.80 ? ST_CANTEEN : ST_MEAL_POINT;
}

/* common surnames (Zhejiang-weighted by repetition) and given-name characters of the
 * generation born 1930-1965 */
static const char *const surnames[] = {
    "王", "陈", "张", "李", "徐", "胡", "朱", "黄", "沈", "吴", "周", "杨", "金", "叶", "孙",
    "邵", "毛", "钱", "施", "俞", "蒋", "汪", "方", "马", "谢", "韩", "罗", "顾", "赵", "姚",
    "夏", "史", "潘", "刘", "林", "何", "郑", "宋", "鲁", "诸", "王", "陈", "张", "李", "徐",
    "胡", "朱", "黄", "沈", "吴", "周", "杨", "叶", "孙", "邵", "陈", "王", "张", "徐", "胡"};
static const char *const given_chars[] = {
    "桂", "英", "秀", "兰", "珍", "凤", "芳", "玉", "梅", "华", "明", "国", "建", "德", "荣",
    "根", "林", "福", "宝", "金", "娣", "仙", "妹", "萍", "强", "伟", "生", "祥", "海", "水",
    "庆", "春", "忠", "祖", "才", "云", "霞", "琴", "菊", "莲", "娟", "志", "康", "永", "苗",
    "财", "法", "定", "松", "芬", "亚", "月", "素", "彩", "雪", "良", "信", "安", "和", "平"};

typedef struct {
    uint64_t residents, lives_alone, disabled, aged80, cards;
} PeopleStats;

/* One resident row. phone: digits; village_label: the address prefix. */
static void resident_write(Out *o, Rng *r, const char *phone, const char *village_code,
                           const char *village_label, double vlat, double vlon, PeopleStats *st)
{
    /* one draw per statement (argument order is unspecified in C) */
    char name[32];
    const char *sur = surnames[rng_range(r, 0, ARRAY_LEN(surnames) - 1)];
    const char *g1 = given_chars[rng_range(r, 0, ARRAY_LEN(given_chars) - 1)];
    const char *g2 = "";
    if (rng_chance(r, 0.75))
        g2 = given_chars[rng_range(r, 0, ARRAY_LEN(given_chars) - 1)];
    snprintf(name, sizeof(name), "%s%s%s", sur, g1, g2);
    double lat = vlat, lon = vlon;
    jitter(r, 0.0, 0.3, &lat, &lon);
    bool alone = rng_chance(r, 0.20);
    bool disabled = rng_chance(r, 0.08);
    /* 1930..1965, skewed to the younger end (max of two uniforms): ~22 % aged 80+ in 2026 */
    int a = rng_range(r, 0, 35), b = rng_range(r, 0, 35);
    int birth = 1930 + (a > b ? a : b);
    char card[24] = "";
    if (rng_chance(r, 0.25))
        snprintf(card, sizeof(card), "SIM%09d", rng_range(r, 0, 999999999));
    double u = rng_unit(r);
    const char *assist = u < 0.02 ? "extreme_hardship" : u < 0.07 ? "minimum_allowance" : "";
    int house = rng_range(r, 1, 199);
    fprintf(o->f, "%s,%s,%s,%s%d号,%.6f,%.6f,%s,%s,%d,%s,%s,true\n", phone, name, village_code,
            village_label, house, lat, lon, tf(alone), tf(disabled), birth, card, assist);
    o->rows++;
    st->residents++;
    st->lives_alone += alone;
    st->disabled += disabled;
    st->aged80 += birth <= 1946;
    st->cards += card[0] != 0;
}

static const char *const TOWN_HEADER = "code,name,kind,lat,lon,area_kind,approx_location";
static const char *const VILLAGE_HEADER =
    "code,name,town_code,kind,lat,lon,approx_location,area_kind,elderly_population,"
    "elderly_synthetic";
static const char *const SERVICE_AREA_HEADER = "station_code,village_code";
static const char *const RESIDENT_HEADER =
    "phone,name,village_code,address,lat,lon,lives_alone,disabled,birth_year,subsidy_card,"
    "assistance_category,synthetic";

/* ---------------------------------------------------------------------------------------
 * Reading the source CSVs (plain comma-separated, no quoting: our own checked-in files) */

typedef struct {
    FILE *f;
    const char *path;
    int line;
    char buf[GEN_LINE_MAX];
    char *field[GEN_FIELDS_MAX];
    int nfield;
} CsvIn;

static bool csv_next(CsvIn *c)
{
    if (!fgets(c->buf, sizeof(c->buf), c->f))
        return false;
    c->line++;
    size_t n = strlen(c->buf);
    if (n && c->buf[n - 1] != '\n' && !feof(c->f)) {
        log_error("%s:%d: line too long", c->path, c->line);
        exit(1);
    }
    while (n && (c->buf[n - 1] == '\n' || c->buf[n - 1] == '\r'))
        c->buf[--n] = '\0';
    if (strchr(c->buf, '"')) {
        log_error("%s:%d: quoted fields are not supported", c->path, c->line);
        exit(1);
    }
    c->nfield = 0;
    char *p = c->buf;
    for (;;) {
        if (c->nfield == GEN_FIELDS_MAX) {
            log_error("%s:%d: too many fields", c->path, c->line);
            exit(1);
        }
        c->field[c->nfield++] = p;
        char *comma = strchr(p, ',');
        if (!comma)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    return true;
}

static void csv_open(CsvIn *c, const char *dir, const char *name, const char *header)
{
    static char path[2][1024];
    static int np;
    char *pbuf = path[np++ % 2];
    snprintf(pbuf, sizeof(path[0]), "%s/%s", dir, name);
    c->path = pbuf;
    c->line = 0;
    c->f = fopen(pbuf, "r");
    if (!c->f) {
        log_error("cannot open %s: %s", pbuf, strerror(errno));
        exit(1);
    }
    if (!csv_next(c)) {
        log_error("%s: empty file", pbuf);
        exit(1);
    }
    /* the header was split in place; compare field by field */
    const char *h = header;
    for (int i = 0; i < c->nfield; i++) {
        size_t len = strlen(c->field[i]);
        if (strncmp(h, c->field[i], len) != 0 || (h[len] != ',' && h[len] != '\0')) {
            log_error("%s: unexpected header (want \"%s\")", pbuf, header);
            exit(1);
        }
        h += len + (h[len] == ',');
    }
    if (*h) {
        log_error("%s: unexpected header (want \"%s\")", pbuf, header);
        exit(1);
    }
}

static bool is_code12(const char *s)
{
    if (strlen(s) != 12)
        return false;
    for (int i = 0; i < 12; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool parse_coord(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

/* ---------------------------------------------------------------------------------------
 * yuyao */

typedef struct {
    char code[13];
    char name[96];
    const char *kind; /* subdistrict / town / township */
    int area;
    bool have_point, approx;
    double lat, lon;
    int villages;
} Town;

typedef struct {
    char code[13];
    char name[96];
    char label[96]; /* short display name for stations and addresses: 最良村委会 -> 最良村 */
    int town;
    bool community, approx;
    double lat, lon;
    int elderly;
} Village;

/* the mountain towns of Yuyao's southern 四明山 area */
static const char *const yuyao_mountain[] = {"四明山镇", "大岚镇", "鹿亭乡", "梁弄镇"};

static int yuyao_town_index(const Town *towns, int n, const char *code)
{
    for (int i = 0; i < n; i++)
        if (strcmp(towns[i].code, code) == 0)
            return i;
    return -1;
}

/* out must not overlap name; cap > strlen(name) (a suffix only ever gets shorter) */
static void village_label(const char *restrict name, char *restrict out, size_t cap)
{
    size_t n = strlen(name);
    static const struct {
        const char *from, *to;
    } subs[] = {{"村委会", "村"}, {"居委会", "社区"}};
    ASSERT(n < cap);
    memcpy(out, name, n + 1);
    for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
        size_t flen = strlen(subs[i].from), add = strlen(subs[i].to);
        if (n >= flen && memcmp(name + n - flen, subs[i].from, flen) == 0) {
            size_t keep = n - flen;
            if (keep + add < cap)
                memcpy(out + keep, subs[i].to, add + 1);
            return;
        }
    }
}

typedef struct {
    uint64_t seed;
    const char *data_dir;
    const char *out_dir;
    long villages, stations, residents; /* national */
} Opts;

static int run_yuyao(const Opts *o)
{
    enum { MAX_TOWNS = 64, MAX_VILLAGES = 2048, MAX_STATIONS = 4096, MAX_AREA = 64 };
    static Town towns[MAX_TOWNS];
    static Village villages[MAX_VILLAGES];
    static Station stations[MAX_STATIONS];
    int nt = 0, nv = 0, ns = 0;
    CsvIn in;

    csv_open(&in, o->data_dir, "towns.csv", "code,name,kind,lat,lon,coord_crs");
    while (csv_next(&in)) {
        if (in.nfield != 6 || !is_code12(in.field[0]) || nt == MAX_TOWNS) {
            log_error("%s:%d: bad town row", in.path, in.line);
            return 1;
        }
        Town *t = &towns[nt++];
        snprintf(t->code, sizeof(t->code), "%s", in.field[0]);
        snprintf(t->name, sizeof(t->name), "%s", in.field[1]);
        const char *k = in.field[2];
        t->kind = strcmp(k, "街道") == 0 ? "subdistrict"
                  : strcmp(k, "镇") == 0 ? "town"
                  : strcmp(k, "乡") == 0 ? "township"
                                         : NULL;
        if (!t->kind) {
            log_error("%s:%d: unknown town kind %s", in.path, in.line, k);
            return 1;
        }
        t->area = strcmp(t->kind, "subdistrict") == 0 ? AREA_URBAN : AREA_RURAL;
        for (size_t i = 0; i < ARRAY_LEN(yuyao_mountain); i++)
            if (strcmp(t->name, yuyao_mountain[i]) == 0)
                t->area = AREA_MOUNTAIN;
        if (in.field[3][0] || in.field[4][0]) {
            if (!parse_coord(in.field[3], -90, 90, &t->lat) ||
                !parse_coord(in.field[4], -180, 180, &t->lon)) {
                log_error("%s:%d: bad coordinates", in.path, in.line);
                return 1;
            }
            t->have_point = true;
        }
    }
    fclose(in.f);

    csv_open(&in, o->data_dir, "villages.csv", "code,name,town_code,kind,lat,lon,coord_crs");
    while (csv_next(&in)) {
        if (in.nfield != 7 || !is_code12(in.field[0]) || nv == MAX_VILLAGES) {
            log_error("%s:%d: bad village row", in.path, in.line);
            return 1;
        }
        Village *v = &villages[nv++];
        snprintf(v->code, sizeof(v->code), "%s", in.field[0]);
        snprintf(v->name, sizeof(v->name), "%s", in.field[1]);
        village_label(v->name, v->label, sizeof(v->label));
        v->town = yuyao_town_index(towns, nt, in.field[2]);
        if (v->town < 0) {
            log_error("%s:%d: unknown town %s", in.path, in.line, in.field[2]);
            return 1;
        }
        towns[v->town].villages++;
        if (strcmp(in.field[3], "社区") == 0)
            v->community = true;
        else if (strcmp(in.field[3], "村") != 0) {
            log_error("%s:%d: unknown village kind %s", in.path, in.line, in.field[3]);
            return 1;
        }
        if (in.field[4][0] || in.field[5][0]) {
            if (!parse_coord(in.field[4], -90, 90, &v->lat) ||
                !parse_coord(in.field[5], -180, 180, &v->lon)) {
                log_error("%s:%d: bad coordinates", in.path, in.line);
                return 1;
            }
        } else {
            v->approx = true;
        }
    }
    fclose(in.f);

    /* towns without a point: mean of their villages with points, else of the other towns */
    for (int i = 0; i < nt; i++) {
        Town *t = &towns[i];
        if (t->have_point)
            continue;
        double slat = 0, slon = 0;
        int n = 0;
        for (int j = 0; j < nv; j++) {
            if (villages[j].town == i && !villages[j].approx) {
                slat += villages[j].lat;
                slon += villages[j].lon;
                n++;
            }
        }
        if (n == 0) {
            for (int j = 0; j < nt; j++) {
                if (towns[j].have_point) {
                    slat += towns[j].lat;
                    slon += towns[j].lon;
                    n++;
                }
            }
        }
        if (n == 0) {
            log_error("town %s has no point and nothing to derive one from", t->code);
            return 1;
        }
        t->lat = slat / n;
        t->lon = slon / n;
        t->approx = true;
    }

    int approx_towns = 0;
    for (int i = 0; i < nt; i++)
        approx_towns += towns[i].approx;

    /* villages without a point: the town point plus an offset; synthetic elderly counts */
    uint64_t elderly = 0;
    int approx_villages = 0;
    for (int j = 0; j < nv; j++) {
        Village *v = &villages[j];
        const Town *t = &towns[v->town];
        if (v->approx) {
            Rng r = rng_for_str(o->seed, "village-point", v->code);
            v->lat = t->lat;
            v->lon = t->lon;
            jitter(&r, spread_min_km[t->area], spread_max_km[t->area], &v->lat, &v->lon);
            approx_villages++;
        }
        Rng r = rng_for_str(o->seed, "village-elderly", v->code);
        v->elderly = t->area == AREA_MOUNTAIN ? rng_range(&r, 300, 800) : rng_range(&r, 300, 1500);
        elderly += (uint64_t)v->elderly;
    }

    /* stations: one centre per town, then village sites */
    for (int i = 0; i < nt; i++) {
        Town *t = &towns[i];
        Station *s = &stations[ns++];
        memset(s, 0, sizeof(*s));
        Rng r = rng_for_str(o->seed, "station-centre", t->code);
        s->kind = ST_TOWN_CENTRE;
        snprintf(s->code, sizeof(s->code), "SIM-%.12s-%s", t->code, station_tag[s->kind]);
        snprintf(s->name, sizeof(s->name), "%s%s", t->name, station_suffix[s->kind]);
        s->town_code = t->code;
        s->lat = t->lat;
        s->lon = t->lon;
        station_fill(s, &r);
    }
    for (int j = 0; j < nv; j++) {
        Village *v = &villages[j];
        Rng r = rng_for_str(o->seed, "station-site", v->code);
        if (!rng_chance(&r, station_share[towns[v->town].area]))
            continue;
        ASSERT(ns < MAX_STATIONS);
        Station *s = &stations[ns++];
        memset(s, 0, sizeof(*s));
        s->kind = station_kind_roll(&r);
        snprintf(s->code, sizeof(s->code), "SIM-%.12s-%s", v->code, station_tag[s->kind]);
        snprintf(s->name, sizeof(s->name), "%s%s", v->label, station_suffix[s->kind]);
        s->town_code = towns[v->town].code;
        s->village_code = v->code;
        s->lat = v->lat;
        s->lon = v->lon;
        jitter(&r, 0.05, 0.3, &s->lat, &s->lon);
        station_fill(s, &r);
    }

    /* explicit service areas: some mountain town centres also serve their farthest village
     * (a van that goes there anyway), whatever the travel model says */
    struct {
        int station, village;
    } area[MAX_AREA];
    int na = 0;
    for (int i = 0; i < nt; i++) {
        if (towns[i].area != AREA_MOUNTAIN)
            continue;
        Rng r = rng_for_str(o->seed, "service-area", towns[i].code);
        if (!rng_chance(&r, 0.5))
            continue;
        int far = -1;
        double far_km = -1;
        for (int j = 0; j < nv; j++) {
            if (villages[j].town != i)
                continue;
            double km = geo_km(towns[i].lat, towns[i].lon, villages[j].lat, villages[j].lon);
            if (km > far_km) {
                far_km = km;
                far = j;
            }
        }
        if (far >= 0 && na < MAX_AREA) {
            area[na].station = i; /* town centres are stations[0..nt) in town order */
            area[na].village = far;
            na++;
        }
    }

    /* coverage under the default travel model, for the summary (the daemon's own figure) */
    const TravelModel *m = &geo_model_default;
    int covered = 0;
    uint64_t elderly_covered = 0;
    int meal_stations = 0, terminals = 0, caregivers = 0, certified = 0;
    for (int k = 0; k < ns; k++) {
        meal_stations += stations[k].meal;
        terminals += stations[k].terminal;
        caregivers += stations[k].caregivers;
        certified += stations[k].certified;
    }
    for (int j = 0; j < nv; j++) {
        const Village *v = &villages[j];
        GeoAreaKind ak = (GeoAreaKind)towns[v->town].area;
        bool cov = false;
        for (int k = 0; k < ns && !cov; k++) {
            const Station *s = &stations[k];
            if (s->meal &&
                geo_minutes(m, ak, geo_km(s->lat, s->lon, v->lat, v->lon)) <= m->circle_min)
                cov = true;
        }
        for (int a = 0; a < na && !cov; a++)
            if (area[a].village == j && stations[area[a].station].meal)
                cov = true;
        covered += cov;
        elderly_covered += cov ? (uint64_t)v->elderly : 0;
    }

    /* write */
    Out ot = {0}, ov = {0}, os = {0}, oa = {0}, orr = {0};
    out_open(&ot, o->out_dir, "towns.csv", TOWN_HEADER);
    for (int i = 0; i < nt; i++) {
        const Town *t = &towns[i];
        fprintf(ot.f, "%s,%s,%s,%.6f,%.6f,%s,%s\n", t->code, t->name, t->kind, t->lat, t->lon,
                area_names[t->area], tf(t->approx));
        ot.rows++;
    }
    out_close(&ot);

    out_open(&ov, o->out_dir, "villages.csv", VILLAGE_HEADER);
    for (int j = 0; j < nv; j++) {
        const Village *v = &villages[j];
        fprintf(ov.f, "%s,%s,%s,%s,%.6f,%.6f,%s,%s,%d,true\n", v->code, v->name,
                towns[v->town].code, v->community ? "community" : "village", v->lat, v->lon,
                tf(v->approx), area_names[towns[v->town].area], v->elderly);
        ov.rows++;
    }
    out_close(&ov);

    out_open(&os, o->out_dir, "stations.csv", STATION_HEADER);
    for (int k = 0; k < ns; k++)
        station_write(&os, &stations[k]);
    out_close(&os);

    out_open(&oa, o->out_dir, "station_service_area.csv", SERVICE_AREA_HEADER);
    for (int a = 0; a < na; a++) {
        fprintf(oa.f, "%s,%s\n", stations[area[a].station].code, villages[area[a].village].code);
        oa.rows++;
    }
    out_close(&oa);

    PeopleStats ps = {0};
    out_open(&orr, o->out_dir, "residents.csv", RESIDENT_HEADER);
    int phone_no = 0;
    for (int j = 0; j < nv; j++) {
        const Village *v = &villages[j];
        Rng r = rng_for_str(o->seed, "residents", v->code);
        int n = rng_range(&r, 15, 25);
        char label[256];
        snprintf(label, sizeof(label), "余姚市%s%s", towns[v->town].name, v->label);
        for (int i = 0; i < n; i++) {
            char phone[24];
            if (++phone_no > 9999) {
                log_error("more than 9999 residents: the 1390000NNNN phone range is exhausted");
                return 1;
            }
            snprintf(phone, sizeof(phone), "1390000%04u", (unsigned)phone_no % 10000u);
            resident_write(&orr, &r, phone, v->code, label, v->lat, v->lon, &ps);
        }
    }
    out_close(&orr);

    fprintf(stderr,
            "careline-gen yuyao seed=%" PRIu64 " -> %s\n"
            "  towns            %d (%d with derived point)\n"
            "  villages         %d (%d with derived point), elderly %" PRIu64 " (synthetic)\n"
            "  stations         %d (%d meal delivery, %d with terminal, caregivers %d, certified"
            " %d = %.1f per 10k elderly)\n"
            "  service areas    %d\n"
            "  residents        %" PRIu64 " (lives alone %" PRIu64 ", disabled %" PRIu64
            ", aged 80+ %" PRIu64 ")\n"
            "  coverage         %d/%d villages = %.1f%%, elderly-weighted %.1f%% (%.0f-min "
            "circle, default travel model)\n",
            o->seed, o->out_dir, nt, approx_towns, nv, approx_villages, elderly, ns, meal_stations,
            terminals, caregivers, certified, elderly ? certified * 10000.0 / (double)elderly : 0.0,
            na, ps.residents, ps.lives_alone, ps.disabled, ps.aged80, covered, nv,
            100.0 * covered / nv, elderly ? 100.0 * (double)elderly_covered / (double)elderly : 0.0,
            m->circle_min);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * national: counties of ~14 towns of ~14 villages over China's bounding box, streamed */

/* share of the n items [0, n) that fall before index i, spread evenly: floor(i * k / n) */
static uint64_t spread(uint64_t i, uint64_t k, uint64_t n)
{
    /* i <= n <= 1e8 and k <= 1e10 keep this inside 64 bits (checked in main) */
    return i * k / n;
}

static int run_national(const Opts *o)
{
    const uint64_t nv = (uint64_t)o->villages, nst = (uint64_t)o->stations,
                   nres = (uint64_t)o->residents;
    const uint64_t ntown = (nv + 13) / 14, ncounty = (ntown + 13) / 14;
    if (ncounty > 99999) {
        log_error("too many villages: at most %d counties of synthetic codes", 99999);
        return 1;
    }
    /* town centres first (all towns if there are enough stations), the rest at villages */
    const uint64_t centres = nst < ntown ? nst : ntown;
    const uint64_t village_sites = nst - centres;
    if (village_sites > nv) {
        log_error("more stations (%" PRIu64 ") than towns + villages (%" PRIu64 ")", nst,
                  ntown + nv);
        return 1;
    }
    Rng pick = rng_for(o->seed, "national-pick", 0);
    uint64_t centres_left = centres, sites_left = village_sites;

    Out ot = {0}, ov = {0}, os = {0}, oa = {0}, orr = {0};
    out_open(&ot, o->out_dir, "towns.csv", TOWN_HEADER);
    out_open(&ov, o->out_dir, "villages.csv", VILLAGE_HEADER);
    out_open(&os, o->out_dir, "stations.csv", STATION_HEADER);
    out_open(&oa, o->out_dir, "station_service_area.csv", SERVICE_AREA_HEADER);
    out_open(&orr, o->out_dir, "residents.csv", RESIDENT_HEADER);

    PeopleStats ps = {0};
    uint64_t elderly = 0, meal = 0, terminals = 0;
    uint64_t town_i = 0, village_i = 0;
    for (uint64_t c = 0; c < ncounty; c++) {
        Rng rc = rng_for(o->seed, "national-county", c);
        double clat = 18.5 + rng_unit(&rc) * (53.0 - 18.5);
        double clon = 74.0 + rng_unit(&rc) * (134.5 - 74.0);
        char county_code[8];
        snprintf(county_code, sizeof(county_code), "9%05" PRIu64, c + 1);
        uint64_t towns_here = spread(c + 1, ntown, ncounty) - spread(c, ntown, ncounty);
        for (uint64_t t = 0; t < towns_here; t++, town_i++) {
            Rng rt = rng_for(o->seed, "national-town", town_i);
            double tlat = clat, tlon = clon;
            jitter(&rt, 3.0, 25.0, &tlat, &tlon);
            double u = rng_unit(&rt);
            int area = u < 0.2 ? AREA_URBAN : u < 0.8 ? AREA_RURAL : AREA_MOUNTAIN;
            const char *kind = area == AREA_URBAN      ? "subdistrict"
                               : rng_chance(&rt, 0.05) ? "township"
                                                       : "town";
            const char *kind_zh = area == AREA_URBAN ? "街道" : kind[4] == 's' ? "乡" : "镇";
            char tcode[32], tname[64];
            ASSERT(t < 999);
            snprintf(tcode, sizeof(tcode), "%s%03d000", county_code, (int)(t + 1));
            snprintf(tname, sizeof(tname), "模拟%s县%02" PRIu64 "%s", county_code + 1, t + 1,
                     kind_zh);
            fprintf(ot.f, "%s,%s,%s,%.6f,%.6f,%s,false\n", tcode, tname, kind, tlat, tlon,
                    area_names[area]);
            ot.rows++;

            if (centres_left && rng_next(&pick) % (ntown - town_i) < centres_left) {
                centres_left--;
                Station s = {0};
                s.kind = ST_TOWN_CENTRE;
                snprintf(s.code, sizeof(s.code), "SIM-%s-%s", tcode, station_tag[s.kind]);
                snprintf(s.name, sizeof(s.name), "%s%s", tname, station_suffix[s.kind]);
                s.town_code = tcode;
                s.lat = tlat;
                s.lon = tlon;
                station_fill(&s, &rt);
                station_write(&os, &s);
                meal += s.meal;
                terminals += s.terminal;
            }

            uint64_t villages_here = spread(town_i + 1, nv, ntown) - spread(town_i, nv, ntown);
            int next_comm = 1, next_vill = 200;
            for (uint64_t k = 0; k < villages_here; k++, village_i++) {
                Rng rv = rng_for(o->seed, "national-village", village_i);
                double vlat = tlat, vlon = tlon;
                jitter(&rv, spread_min_km[area], spread_max_km[area] + 1.0, &vlat, &vlon);
                bool community = rng_chance(&rv, area == AREA_URBAN ? 0.7 : 0.1);
                int num = community ? next_comm++ : next_vill++;
                char vcode[32], vname[96];
                ASSERT(next_comm < 200 && next_vill < 400);
                snprintf(vcode, sizeof(vcode), "%.9s%03d", tcode, num);
                snprintf(vname, sizeof(vname), "%s%d%s", tname, num, community ? "社区" : "村");
                /* ~440 a village on average: ~265M aged 60+ over 600k villages */
                int eld =
                    area == AREA_MOUNTAIN ? rng_range(&rv, 100, 500) : rng_range(&rv, 150, 800);
                elderly += (uint64_t)eld;
                fprintf(ov.f, "%s,%s,%s,%s,%.6f,%.6f,true,%s,%d,true\n", vcode, vname, tcode,
                        community ? "community" : "village", vlat, vlon, area_names[area], eld);
                ov.rows++;

                if (sites_left && rng_next(&pick) % (nv - village_i) < sites_left) {
                    sites_left--;
                    Station s = {0};
                    s.kind = station_kind_roll(&rv);
                    snprintf(s.code, sizeof(s.code), "SIM-%s-%s", vcode, station_tag[s.kind]);
                    snprintf(s.name, sizeof(s.name), "%s%s", vname, station_suffix[s.kind]);
                    s.town_code = tcode;
                    s.village_code = vcode;
                    s.lat = vlat;
                    s.lon = vlon;
                    jitter(&rv, 0.05, 0.3, &s.lat, &s.lon);
                    station_fill(&s, &rv);
                    station_write(&os, &s);
                    meal += s.meal;
                    terminals += s.terminal;
                }

                uint64_t nr = spread(village_i + 1, nres, nv) - spread(village_i, nres, nv);
                for (uint64_t i = 0; i < nr; i++) {
                    char phone[16];
                    snprintf(phone, sizeof(phone), "100%08" PRIu64, ps.residents);
                    resident_write(&orr, &rv, phone, vcode, vname, vlat, vlon, &ps);
                }
            }
        }
    }
    ASSERT(town_i == ntown && village_i == nv);
    ASSERT(centres_left == 0 && sites_left == 0);
    ASSERT(ps.residents == nres);

    out_close(&ot);
    out_close(&ov);
    out_close(&os);
    out_close(&oa);
    out_close(&orr);
    fprintf(stderr,
            "careline-gen national seed=%" PRIu64 " -> %s\n"
            "  counties         %" PRIu64 " (codes 900001..)\n"
            "  towns            %" PRIu64 "\n"
            "  villages         %" PRIu64 ", elderly %" PRIu64 " (synthetic)\n"
            "  stations         %" PRIu64 " (%" PRIu64 " meal delivery, %" PRIu64
            " with terminal)\n"
            "  residents        %" PRIu64 " (lives alone %" PRIu64 ", disabled %" PRIu64
            ", aged 80+ %" PRIu64 ")\n",
            o->seed, o->out_dir, ncounty, ot.rows, ov.rows, elderly, os.rows, meal, terminals,
            ps.residents, ps.lives_alone, ps.disabled, ps.aged80);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * main */

static void usage(FILE *f)
{
    fprintf(f, "usage: careline-gen yuyao [--data DIR] [--seed N] --out DIR\n"
               "       careline-gen national [--villages N] [--stations N] [--residents N]\n"
               "                             [--seed N] --out DIR\n"
               "       careline-gen --version | --help\n"
               "\n"
               "Writes towns.csv, villages.csv, stations.csv, station_service_area.csv and\n"
               "residents.csv (header line, ready for psql \\copy ... csv header) into DIR.\n"
               "The same arguments give the same bytes on every machine.\n"
               "\n"
               "  --data DIR       yuyao: directory with towns.csv and villages.csv\n"
               "                   (default data/yuyao)\n"
               "  --seed N         unsigned 64-bit seed (default 20261129)\n"
               "  --out DIR        output directory (created if missing)\n"
               "  --villages N     national: villages (default 600000)\n"
               "  --stations N     national: stations, one centre per town first (default N/3)\n"
               "  --residents N    national: residents, at most 100000000 (default 10000000)\n"
               "\n"
               "Everything generated is synthetic (marked synthetic=true, station names end in\n"
               "（模拟）, phones 1390000NNNN / 100NNNNNNNN); see data/yuyao/ATTRIBUTION.md.\n"
               "A summary goes to stderr.\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    Opts o = {.seed = 20261129,
              .data_dir = "data/yuyao",
              .villages = 600000,
              .stations = -1,
              .residents = 10000000};
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *mode = argv[1];
    if (strcmp(mode, "--help") == 0 || strcmp(mode, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(mode, "--version") == 0) {
        puts(GEN_VERSION);
        return 0;
    }
    bool national = strcmp(mode, "national") == 0;
    if (!national && strcmp(mode, "yuyao") != 0) {
        log_error("unknown data set \"%s\" (yuyao or national)", mode);
        usage(stderr);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n = 0;
        if (!v) {
            log_error("%s needs a value", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--data") == 0 && !national) {
            o.data_dir = v;
        } else if (strcmp(a, "--out") == 0) {
            o.out_dir = v;
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_u64(v, &o.seed)) {
                log_error("bad --seed %s", v);
                return 2;
            }
        } else if (national && (strcmp(a, "--villages") == 0 || strcmp(a, "--stations") == 0 ||
                                strcmp(a, "--residents") == 0)) {
            if (!parse_u64(v, &n) || n > 100000000ULL) {
                log_error("bad %s %s (0..100000000)", a, v);
                return 2;
            }
            if (a[2] == 'v')
                o.villages = (long)n;
            else if (a[2] == 's')
                o.stations = (long)n;
            else
                o.residents = (long)n;
        } else {
            log_error("unknown option %s for %s", a, mode);
            usage(stderr);
            return 2;
        }
    }
    if (!o.out_dir) {
        log_error("--out DIR is required");
        return 2;
    }
    if (mkdir(o.out_dir, 0777) != 0 && errno != EEXIST) {
        log_error("cannot create %s: %s", o.out_dir, strerror(errno));
        return 1;
    }
    if (!national)
        return run_yuyao(&o);
    if (o.villages < 1) {
        log_error("--villages must be at least 1");
        return 2;
    }
    if (o.stations < 0)
        o.stations = o.villages / 3;
    return run_national(&o);
}
