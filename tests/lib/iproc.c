/*
 * iproc: fork/exec with redirections, bounded waits for exit and for port files.
 */
#include "iproc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "t.h"

void iproc_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

pid_t iproc_spawn(const char *const *argv, int in_fd, int out_fd, const char *err_path, bool append)
{
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid > 0)
        return pid;
    if (in_fd == IPROC_DEVNULL)
        in_fd = open("/dev/null", O_RDONLY);
    if (in_fd >= 0 && in_fd != 0)
        dup2(in_fd, 0);
    if (err_path) {
        int fd = open(err_path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            if (out_fd == IPROC_ERRFILE)
                dup2(fd, 1);
            close(fd);
        }
    }
    if (out_fd >= 0 && out_fd != 1)
        dup2(out_fd, 1);
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

bool iproc_alive(pid_t pid)
{
    int st;
    return pid > 0 && waitpid(pid, &st, WNOHANG) == 0;
}

int iproc_wait_exit(pid_t *pid, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        int st;
        if (waitpid(*pid, &st, WNOHANG) == *pid) {
            *pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        iproc_sleep_ms(10);
    }
    return -1;
}

int iproc_stop(pid_t *pid, int sig, int timeout_ms)
{
    if (*pid <= 0)
        return -1;
    kill(*pid, sig);
    int rc = iproc_wait_exit(pid, timeout_ms);
    if (rc < 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        *pid = 0;
    }
    return rc;
}

bool iproc_scan_file(pid_t pid, const char *path, int timeout_ms, int n, const char *fmt, ...)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        FILE *f = fopen(path, "r");
        if (f) {
            va_list ap;
            va_start(ap, fmt);
            int got = vfscanf(f, fmt, ap);
            va_end(ap);
            fclose(f);
            if (got == n)
                return true;
        }
        if (!iproc_alive(pid))
            return false;
        iproc_sleep_ms(10);
    }
    return false;
}

void iproc_dump_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[2048];
    printf("---- %s ----\n", path);
    while (fgets(line, sizeof(line), f))
        fputs(line, stdout);
    fclose(f);
}

int iproc_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    T_ASSERT(fd >= 0);
    T_ASSERT(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    T_ASSERT(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}
