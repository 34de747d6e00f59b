/*
 * test_gen: careline-gen's PRNG, geometry and output. The tool is one file with static
 * helpers, so it is compiled in here with its main renamed.
 */
#define main careline_gen_main
#include "../../tools/careline-gen.c"
#undef main

#include "t.h"

#include <math.h>

int careline_gen_main(int argc, char **argv);

static void gen_splitmix_vector(void)
{
    /* reference splitmix64 from state 0 (Vigna's splitmix64.c) */
    Rng r = {0};
    T_EQ_INT(rng_next(&r) == 0xE220A8397B1DCDAFULL, 1);
    T_EQ_INT(rng_next(&r) == 0x6E789E6AA1B965F4ULL, 1);
    T_EQ_INT(rng_next(&r) == 0x06C45D188009454FULL, 1);
    Rng a = rng_for_str(1, "x", "330281001001"), b = rng_for_str(1, "x", "330281001001");
    Rng c = rng_for_str(2, "x", "330281001001"), d = rng_for_str(1, "y", "330281001001");
    uint64_t va = rng_next(&a);
    T_EQ_INT(va == rng_next(&b), 1);
    T_EQ_INT(va != rng_next(&c), 1);
    T_EQ_INT(va != rng_next(&d), 1);
    for (int i = 0; i < 10000; i++) {
        double u = rng_unit(&a);
        T_ASSERT(u >= 0.0 && u < 1.0);
        int k = rng_range(&a, 3, 7);
        T_ASSERT(k >= 3 && k <= 7);
    }
}

static void gen_det_cos(void)
{
    for (int deg = 0; deg <= 60; deg++) {
        double x = deg * GEO_DEG2RAD;
        T_NEAR(det_cos(x), cos(x), 1e-12);
    }
}

static void gen_jitter_annulus(void)
{
    Rng r = rng_for(42, "jitter", 0);
    for (int i = 0; i < 5000; i++) {
        double lat = 29.9, lon = 121.1;
        jitter(&r, 1.5, 6.0, &lat, &lon);
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

/* Calls careline-gen's main with a NULL-terminated argument list. */
static int gen(const char *const *args)
{
    int argc = 0;
    while (args[argc])
        argc++;
    char **argv = xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++)
        argv[i] = xstrdup(args[i]);
    int rc = careline_gen_main(argc, argv);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
    return rc;
}

/* Runs careline-gen twice into two directories and checks the files are identical. */
static void run_twice(const char *const *args_a, const char *const *args_b, const char *out_a,
                      const char *out_b)
{
    T_EQ_INT(gen(args_a), 0);
    T_EQ_INT(gen(args_b), 0);
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
    const char *const a[] = {"careline-gen", "yuyao", "--data", data, "--seed",
                             "20261129",     "--out", out_a,    NULL};
    const char *const b[] = {"careline-gen", "yuyao", "--data", data, "--seed",
                             "20261129",     "--out", out_b,    NULL};
    run_twice(a, b, out_a, out_b);
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
    const char *const a[] = {"careline-gen", "national",    "--villages", "1000",   "--stations",
                             "150",          "--residents", "5003",       "--seed", "9",
                             "--out",        out_a,         NULL};
    const char *const b[] = {"careline-gen", "national",    "--villages", "1000",   "--stations",
                             "150",          "--residents", "5003",       "--seed", "9",
                             "--out",        out_b,         NULL};
    run_twice(a, b, out_a, out_b);
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
    {"gen_det_cos", gen_det_cos, 0},
    {"gen_jitter_annulus", gen_jitter_annulus, 0},
    {"gen_yuyao_deterministic", gen_yuyao_deterministic, 0},
    {"gen_national_counts", gen_national_counts, 0},
    {NULL, NULL, 0},
};

int main(int argc, char **argv)
{
    return t_main(argc, argv, cases);
}
