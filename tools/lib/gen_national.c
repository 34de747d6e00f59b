/*
 * gen_national: counties of ~14 towns of ~14 villages over China's bounding box, streamed
 */
#include "gen_sets.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/geo.h"
#include "common/log.h"
#include "common/util.h"
#include "gen_people.h"

/* share of the n items [0, n) that fall before index i, spread evenly: floor(i * k / n) */
static uint64_t spread(uint64_t i, uint64_t k, uint64_t n)
{
    /* i <= n <= 1e8 and k <= 1e10 keep this inside 64 bits (checked in main) */
    return i * k / n;
}

int gen_national(const GenOpts *o)
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
    Rng pick = gen_rng_for(o->seed, "national-pick", 0);
    uint64_t centres_left = centres, sites_left = village_sites;

    Out ot = {0}, ov = {0}, os = {0}, oa = {0}, orr = {0};
    gen_out_open(&ot, o->out_dir, "towns.csv", GEN_TOWN_HEADER);
    gen_out_open(&ov, o->out_dir, "villages.csv", GEN_VILLAGE_HEADER);
    gen_out_open(&os, o->out_dir, "stations.csv", GEN_STATION_HEADER);
    gen_out_open(&oa, o->out_dir, "station_service_area.csv", GEN_SERVICE_AREA_HEADER);
    gen_out_open(&orr, o->out_dir, "residents.csv", GEN_RESIDENT_HEADER);

    PeopleStats ps = {0};
    uint64_t elderly = 0, meal = 0, terminals = 0;
    uint64_t town_i = 0, village_i = 0;
    for (uint64_t c = 0; c < ncounty; c++) {
        Rng rc = gen_rng_for(o->seed, "national-county", c);
        double clat = 18.5 + gen_rng_unit(&rc) * (53.0 - 18.5);
        double clon = 74.0 + gen_rng_unit(&rc) * (134.5 - 74.0);
        char county_code[8];
        snprintf(county_code, sizeof(county_code), "9%05" PRIu64, c + 1);
        uint64_t towns_here = spread(c + 1, ntown, ncounty) - spread(c, ntown, ncounty);
        for (uint64_t t = 0; t < towns_here; t++, town_i++) {
            Rng rt = gen_rng_for(o->seed, "national-town", town_i);
            double tlat = clat, tlon = clon;
            gen_jitter(&rt, 3.0, 25.0, &tlat, &tlon);
            double u = gen_rng_unit(&rt);
            int area = u < 0.2 ? AREA_URBAN : u < 0.8 ? AREA_RURAL : AREA_MOUNTAIN;
            const char *kind = area == AREA_URBAN          ? "subdistrict"
                               : gen_rng_chance(&rt, 0.05) ? "township"
                                                           : "town";
            const char *kind_zh = area == AREA_URBAN ? "街道" : kind[4] == 's' ? "乡" : "镇";
            char tcode[32], tname[64];
            ASSERT(t < 999);
            snprintf(tcode, sizeof(tcode), "%s%03d000", county_code, (int)(t + 1));
            snprintf(tname, sizeof(tname), "模拟%s县%02" PRIu64 "%s", county_code + 1, t + 1,
                     kind_zh);
            fprintf(ot.f, "%s,%s,%s,%.6f,%.6f,%s,false\n", tcode, tname, kind, tlat, tlon,
                    gen_area_names[area]);
            ot.rows++;

            if (centres_left && gen_rng_next(&pick) % (ntown - town_i) < centres_left) {
                centres_left--;
                Station s = {0};
                s.kind = ST_TOWN_CENTRE;
                snprintf(s.code, sizeof(s.code), "SIM-%s-%s", tcode, gen_station_tag[s.kind]);
                snprintf(s.name, sizeof(s.name), "%s%s", tname, gen_station_suffix[s.kind]);
                s.town_code = tcode;
                s.lat = tlat;
                s.lon = tlon;
                gen_station_fill(&s, &rt);
                gen_station_write(&os, &s);
                meal += s.meal;
                terminals += s.terminal;
            }

            uint64_t villages_here = spread(town_i + 1, nv, ntown) - spread(town_i, nv, ntown);
            int next_comm = 1, next_vill = 200;
            for (uint64_t k = 0; k < villages_here; k++, village_i++) {
                Rng rv = gen_rng_for(o->seed, "national-village", village_i);
                double vlat = tlat, vlon = tlon;
                gen_jitter(&rv, gen_spread_min_km[area], gen_spread_max_km[area] + 1.0, &vlat,
                           &vlon);
                bool community = gen_rng_chance(&rv, area == AREA_URBAN ? 0.7 : 0.1);
                int num = community ? next_comm++ : next_vill++;
                char vcode[32], vname[96];
                ASSERT(next_comm < 200 && next_vill < 400);
                snprintf(vcode, sizeof(vcode), "%.9s%03d", tcode, num);
                snprintf(vname, sizeof(vname), "%s%d%s", tname, num, community ? "社区" : "村");
                /* ~440 a village on average: ~265M aged 60+ over 600k villages */
                int eld = area == AREA_MOUNTAIN ? gen_rng_range(&rv, 100, 500)
                                                : gen_rng_range(&rv, 150, 800);
                elderly += (uint64_t)eld;
                fprintf(ov.f, "%s,%s,%s,%s,%.6f,%.6f,true,%s,%d,true\n", vcode, vname, tcode,
                        community ? "community" : "village", vlat, vlon, gen_area_names[area], eld);
                ov.rows++;

                if (sites_left && gen_rng_next(&pick) % (nv - village_i) < sites_left) {
                    sites_left--;
                    Station s = {0};
                    s.kind = gen_station_kind_roll(&rv);
                    snprintf(s.code, sizeof(s.code), "SIM-%s-%s", vcode, gen_station_tag[s.kind]);
                    snprintf(s.name, sizeof(s.name), "%s%s", vname, gen_station_suffix[s.kind]);
                    s.town_code = tcode;
                    s.village_code = vcode;
                    s.lat = vlat;
                    s.lon = vlon;
                    gen_jitter(&rv, 0.05, 0.3, &s.lat, &s.lon);
                    gen_station_fill(&s, &rv);
                    gen_station_write(&os, &s);
                    meal += s.meal;
                    terminals += s.terminal;
                }

                uint64_t nr = spread(village_i + 1, nres, nv) - spread(village_i, nres, nv);
                for (uint64_t i = 0; i < nr; i++) {
                    char phone[16];
                    snprintf(phone, sizeof(phone), "100%08" PRIu64, ps.residents);
                    gen_resident_write(&orr, &rv, phone, vcode, vname, vlat, vlon, &ps);
                }
            }
        }
    }
    ASSERT(town_i == ntown && village_i == nv);
    ASSERT(centres_left == 0 && sites_left == 0);
    ASSERT(ps.residents == nres);

    gen_out_close(&ot);
    gen_out_close(&ov);
    gen_out_close(&os);
    gen_out_close(&oa);
    gen_out_close(&orr);
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
