/*
 * t: forked, time-bounded test cases with a per-case temporary directory
 * (after beanstalkd's ct). The parent only counts; all work happens in the child.
 */
#include "t.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

const char *t_tmpdir(void)
{
    return tmpdir;
}

void t_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "  %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    _exit(1);
}

const char *t_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        t_fail(__FILE__, __LINE__, "environment variable %s is not set (run via tests/run.sh)",
               name);
    return v;
}

/* Weak: present only when linked with the ASan/LSan runtime. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

long t_count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        t_fail(__FILE__, __LINE__, "cannot read %s", path);
    char line[8192];
    long n = 0;
    while (fgets(line, sizeof(line), f))
        n += !needle || strstr(line, needle);
    fclose(f);
    return n;
}

void t_leak_check(void)
{
    if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check() != 0)
        t_fail(__FILE__, __LINE__, "memory leaked (see the LeakSanitizer report above)");
}

static int run_case(const TCase *tc)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/t-%s-XXXXXX", base && *base ? base : "/tmp", tc->name);
    if (!mkdtemp(tmpdir)) {
        printf("FAIL %s: mkdtemp: %s\n", tc->name, strerror(errno));
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        printf("FAIL %s: fork: %s\n", tc->name, strerror(errno));
        return 1;
    }
    if (pid == 0) {
        setpgid(0, 0); /* so a timeout can kill the case's own children too */
        alarm(tc->timeout_s ? tc->timeout_s : 60);
        tc->fn();
        fflush(stdout);
        exit(0); /* not _exit: LeakSanitizer checks at exit */
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    kill(-pid, SIGKILL); /* reap anything the case left behind */
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok   %s\n", tc->name);
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
        return 0;
    }
    if (WIFSIGNALED(status))
        printf("FAIL %s: killed by signal %d%s (files kept in %s)\n", tc->name, WTERMSIG(status),
               WTERMSIG(status) == SIGALRM ? " (timeout)" : "", tmpdir);
    else
        printf("FAIL %s (exit %d, files kept in %s)\n", tc->name, WEXITSTATUS(status), tmpdir);
    return 1;
}

int t_main(int argc, char **argv, const TCase *cases)
{
    int passed = 0, failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (const TCase *tc = cases; tc->name; tc++) {
        bool selected = argc < 2;
        for (int i = 1; i < argc; i++)
            if (strncmp(tc->name, argv[i], strlen(argv[i])) == 0)
                selected = true;
        if (!selected)
            continue;
        if (run_case(tc) == 0)
            passed++;
        else
            failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
