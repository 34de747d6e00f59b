/*
 * test_gen: careline-gen's PRNG, geometry and output, through its modules' headers
 * (tools/lib/gen_*.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/geo.h"
#include "common/util.h"
#include "gen_rng.h"
#include "gen_sets.h"
#include "t.h"

static void gen_splitmix_vector(void)
{
    /* reference splitmix64 from state 0 (Vigna's splitmix64.c) */
    Rng r = {0};
    T_EQ_INT(gen_rng_next(&r) == 0xE220A8397B1DCDAFULL, 1);
    T_EQ_INT(gen_rng_next(&r) == 0x6E789E6AA1B965F4ULL, 1);
    T_EQ_INT(gen_rng_next(&r) == 0x06C45D188009454FULL, 1);
    Rng a = gen_rng_for_str(1, "x", "330281001001"), b = gen_rng_for_str(1, "x", "330281001001");
    Rng c = gen_rng_for_str(2, "x", "330281001001"), d = gen_rng_for_str(1, "y", "330281001001");
    uint64_t va = gen_rng_next(&a);
    T_EQ_INT(va == gen_rng_next(&b), 1);
    T_EQ_INT(va != gen_rng_next(&c), 1);
    T_EQ_INT(va != gen_rng_next(&d), 1);
    for (int i = 0; i < 10000; i++) {
        double u = gen_rng_unit(&a);
        T_ASSERT(u >= 0.0 && u < 1.0);
        int k = gen_rng_range(&a, 3, 7);
        T_ASSERT(k >= 3 && k <= 7);
    }
}

static void det_cos_matches_libm(void)
{
    for (int deg = 0; deg <= 60; deg++) {
        double x = deg * GEO_DEG2RAD;
        T_NEAR(gen_det_cos(x), cos(x), 1e-12);
    }
}

static void gen_jitter_annulus(void)
{
    Rng r = gen_rng_for(42, "jitter", 0);
    for (int i = 0; i < 5000; i++) {
        double lat = 29.9, lon = 121.1;
        gen_jitter(&r, 1.5, 6.0, &lat, &lon);
        double km = geo_km(29.9, 121.1, lat, lon);
        T_ASSERT(km >= 1.5 * 0.999 && km <= 6.0 * 1.001);
    }
}

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        t_fail(__FILE__, __LINE__, "cannot open %s", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = xrealloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

static size_t count_lines(const char *buf, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += buf[i] == '\n';
    return k;
}

static const char *const files[] = {"towns.csv", "villages.csv", "stations.csv",
                                    "station_service_area.csv", "residents.csv"};

/* Runs one data set into out (created here). */
static int gen(GenOpts o, bool national, const char *out)
{
    o.out_dir = out;
    T_ASSERT(mkdir(out, 0777) == 0);
    return national ? gen_national(&o) : gen_yuyao(&o);
}

/* Runs a data set twice into two directories and checks the files are identical. */
static void run_twice(const GenOpts *o, bool national, const char *out_a, const char *out_b)
{
    T_EQ_INT(gen(*o, national, out_a), 0);
    T_EQ_INT(gen(*o, national, out_b), 0);
    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        size_t na, nb;
        char *a = slurp(out_a, files[i], &na), *b = slurp(out_b, files[i], &nb);
        T_EQ_INT(na, nb);
        T_EQ_INT(memcmp(a, b, na), 0);
        free(a);
        free(b);
    }
}

static void gen_yuyao_deterministic(void)
{
    const char *src = getenv("CARELINE_SRC");
    char data[1024], out_a[600], out_b[600];
    snprintf(data, sizeof(data), "%s/data/yuyao", src && *src ? src : ".");
    snprintf(out_a, sizeof(out_a), "%s/a", t_tmpdir());
    snprintf(out_b, sizeof(out_b), "%s/b", t_tmpdir());
    GenOpts o = {.seed = 20261129, .data_dir = data};
    run_twice(&o, false, out_a, out_b);
    size_t n;
    char *v = slurp(out_a, "villages.csv", &n);
    T_EQ_INT(count_lines(v, n), 327); /* header + 326 */
    free(v);
    char *t = slurp(out_a, "towns.csv", &n);
    T_EQ_INT(count_lines(t, n), 22);
    T_ASSERT(strstr(t, "330281001000,梨洲街道,subdistrict,") != NULL);
    T_ASSERT(strstr(t, ",mountain,") != NULL);
    free(t);
}

static void gen_national_counts(void)
{
    char out_a[600], out_b[600];
    snprintf(out_a, sizeof(out_a), "%s/a", t_tmpdir());
    snprintf(out_b, sizeof(out_b), "%s/b", t_tmpdir());
    GenOpts o = {.seed = 9, .villages = 1000, .stations = 150, .residents = 5003};
    run_twice(&o, true, out_a, out_b);
    size_t n;
    char *buf = slurp(out_a, "villages.csv", &n);
    T_EQ_INT(count_lines(buf, n), 1001);
    free(buf);
    buf = slurp(out_a, "stations.csv", &n);
    T_EQ_INT(count_lines(buf, n), 151);
    free(buf);
    buf = slurp(out_a, "residents.csv", &n);
    T_EQ_INT(count_lines(buf, n), 5004);
    free(buf);
}

static const TCase cases[] = {
    {"gen_splitmix_vector", gen_splitmix_vector, 0},
    {"gen_det_cos", det_cos_matches_libm, 0},
    {"gen_jitter_annulus", gen_jitter_annulus, 0},
    {"gen_yuyao_deterministic", gen_yuyao_deterministic, 0},
    {"gen_national_counts", gen_national_counts, 0},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
