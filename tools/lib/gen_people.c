/*
 * gen_people: stations and residents as careline-gen draws them. Each draw is its own
 * statement (C leaves the order of operands unspecified, and so would be the bytes).
 */
#include "gen_people.h"

#include <string.h>

#include "common/util.h"

const char *const gen_area_names[] = {"urban", "rural", "mountain"};
/* village spread around the town point for villages without a source point (km) */
const double gen_spread_min_km[] = {0.5, 0.5, 1.5};
const double gen_spread_max_km[] = {3.0, 3.0, 6.0};
/* share of villages with a station of their own */
const double gen_station_share[] = {0.55, 0.40, 0.08};

static const char *const station_kinds[] = {"town_centre", "village_station", "canteen",
                                            "meal_point"};
const char *const gen_station_suffix[] = {"居家养老服务中心（模拟）", "居家养老服务站（模拟）",
                                          "老年食堂（模拟）", "助餐点（模拟）"};
const char *const gen_station_tag[] = {"TC", "VS", "CT", "MP"};

static const char *const care_names[] = {"bathing", "cleaning", "companionship", "medical_escort",
                                         "care_other"};

const char *const GEN_STATION_HEADER =
    "code,name,town_code,village_code,kind,lat,lon,offers_meal_delivery,offers_home_care,"
    "care_subtypes,meal_capacity_lunch,meal_capacity_dinner,caregivers,caregivers_certified,"
    "opens_at,closes_at,open_days,has_terminal,active,synthetic";

/* Fills a station's service attributes; kind, position and names are the caller's. */
void gen_station_fill(Station *s, Rng *r)
{
    switch (s->kind) {
    case ST_TOWN_CENTRE:
        s->meal = true;
        s->care = true;
        s->care_mask = 0x1F;
        s->caregivers = gen_rng_range(r, 6, 12);
        break;
    case ST_VILLAGE_STATION:
        s->meal = gen_rng_chance(r, 0.5);
        s->care = true;
        /* one draw per statement: operand order is unspecified in C, and so would be the
         * bytes across compilers */
        s->care_mask = 0x06; /* cleaning, companionship */
        if (gen_rng_chance(r, 0.4))
            s->care_mask |= 0x01; /* bathing */
        if (gen_rng_chance(r, 0.3))
            s->care_mask |= 0x08; /* medical escort */
        if (gen_rng_chance(r, 0.3))
            s->care_mask |= 0x10; /* other */
        s->caregivers = gen_rng_range(r, 2, 8);
        break;
    case ST_CANTEEN:
        s->meal = gen_rng_chance(r, 0.7);
        s->care = false;
        s->care_mask = 0;
        s->caregivers = gen_rng_range(r, 2, 4);
        break;
    default:
        ASSERT(s->kind == ST_MEAL_POINT);
        s->meal = gen_rng_chance(r, 0.85);
        s->care = false;
        s->care_mask = 0;
        s->caregivers = gen_rng_range(r, 2, 3);
        break;
    }
    s->cap_lunch = gen_rng_range(r, 20, 80);
    s->cap_dinner = s->cap_lunch * gen_rng_range(r, 50, 100) / 100;
    if (s->cap_dinner < 20)
        s->cap_dinner = 20;
    /* certified share 40..80 %, rounded */
    s->certified = (s->caregivers * gen_rng_range(r, 40, 80) + 50) / 100;
    s->opens = "07:00";
    s->closes = "19:00";
    s->open_days =
        s->kind == ST_TOWN_CENTRE || gen_rng_chance(r, 0.8) ? 127 : 63; /* 63 = Mon-Sat */
    s->terminal = gen_rng_chance(r, 0.5);
}

void gen_station_write(Out *o, const Station *s)
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
            station_kinds[s->kind], s->lat, s->lon, gen_tf(s->meal), gen_tf(s->care), subtypes,
            s->cap_lunch, s->cap_dinner, s->caregivers, s->certified, s->opens, s->closes,
            s->open_days, gen_tf(s->terminal));
    o->rows++;
}

/* Picks a station kind for a village site: mostly care stations, some canteens and meal points. */
int gen_station_kind_roll(Rng *r)
{
    double u = gen_rng_unit(r);
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

/* One resident row. phone: digits; village_label: the address prefix. */
void gen_resident_write(Out *o, Rng *r, const char *phone, const char *village_code,
                        const char *village_label, double vlat, double vlon, PeopleStats *st)
{
    /* one draw per statement (argument order is unspecified in C) */
    char name[32];
    const char *sur = surnames[gen_rng_range(r, 0, ARRAY_LEN(surnames) - 1)];
    const char *g1 = given_chars[gen_rng_range(r, 0, ARRAY_LEN(given_chars) - 1)];
    const char *g2 = "";
    if (gen_rng_chance(r, 0.75))
        g2 = given_chars[gen_rng_range(r, 0, ARRAY_LEN(given_chars) - 1)];
    snprintf(name, sizeof(name), "%s%s%s", sur, g1, g2);
    double lat = vlat, lon = vlon;
    gen_jitter(r, 0.0, 0.3, &lat, &lon);
    bool alone = gen_rng_chance(r, 0.20);
    bool disabled = gen_rng_chance(r, 0.08);
    /* 1930..1965, skewed to the younger end (max of two uniforms): ~22 % aged 80+ in 2026 */
    int a = gen_rng_range(r, 0, 35), b = gen_rng_range(r, 0, 35);
    int birth = 1930 + (a > b ? a : b);
    char card[24] = "";
    if (gen_rng_chance(r, 0.25))
        snprintf(card, sizeof(card), "SIM%09d", gen_rng_range(r, 0, 999999999));
    double u = gen_rng_unit(r);
    const char *assist = u < 0.02 ? "extreme_hardship" : u < 0.07 ? "minimum_allowance" : "";
    int house = gen_rng_range(r, 1, 199);
    fprintf(o->f, "%s,%s,%s,%s%d号,%.6f,%.6f,%s,%s,%d,%s,%s,true\n", phone, name, village_code,
            village_label, house, lat, lon, gen_tf(alone), gen_tf(disabled), birth, card, assist);
    o->rows++;
    st->residents++;
    st->lives_alone += alone;
    st->disabled += disabled;
    st->aged80 += birth <= 1946;
    st->cards += card[0] != 0;
}

const char *const GEN_TOWN_HEADER = "code,name,kind,lat,lon,area_kind,approx_location";
const char *const GEN_VILLAGE_HEADER =
    "code,name,town_code,kind,lat,lon,approx_location,area_kind,elderly_population,"
    "elderly_synthetic";
const char *const GEN_SERVICE_AREA_HEADER = "station_code,village_code";
const char *const GEN_RESIDENT_HEADER =
    "phone,name,village_code,address,lat,lon,lives_alone,disabled,birth_year,subsidy_card,"
    "assistance_category,synthetic";
