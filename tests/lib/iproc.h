/*
 * iproc: child processes of a test case (the daemon, the gateway, the station console, a
 * private redis-server) and the loopback ports they listen on. Blocking, with every wait
 * bounded; fine in the test process, never in the daemon. A case's children are in its
 * process group, so t.c kills any that a failing case leaves behind.
 */
#ifndef CARELINE_IPROC_H
#define CARELINE_IPROC_H

#include <stdbool.h>
#include <sys/types.h>

/* Special values for iproc_spawn's in_fd and out_fd. */
#define IPROC_INHERIT (-1) /* the test's own stdin/stdout */
#define IPROC_DEVNULL (-2) /* stdin from /dev/null */
#define IPROC_ERRFILE (-3) /* stdout to the same file as stderr (err_path) */

/* Forks and execs argv[0] with argv (NULL-terminated; argv[0] is looked up in PATH when it
 * has no '/'). In the child: stdin from in_fd (or as above), stdout to out_fd (or as
 * above), stderr to err_path when not NULL (created 0644, truncated, or appended when
 * append). Descriptors the parent keeps (pipe ends) should be O_CLOEXEC. A failed exec
 * says so on the child's stderr and exits 127. Returns the pid; fails the case if fork
 * fails. */
pid_t iproc_spawn(const char *const *argv, int in_fd, int out_fd, const char *err_path,
                  bool append);

/* true while the child runs. Reaps it (WNOHANG) once it has exited: after false, the
 * exit status is gone. */
bool iproc_alive(pid_t pid);

/* Waits up to timeout_ms for the child to exit; its exit code (128 + signal when killed by
 * one) and *pid = 0, or -1 if it still runs (*pid unchanged). */
int iproc_wait_exit(pid_t *pid, int timeout_ms);

/* Sends sig and waits up to timeout_ms; then SIGKILL and reap. Returns the exit status as
 * iproc_wait_exit does, or -1 if it had to be killed (or *pid <= 0). Sets *pid = 0. */
int iproc_stop(pid_t *pid, int sig, int timeout_ms);

/* Polls (every 10 ms, up to timeout_ms) until the file at path scans with fmt (fscanf) to
 * n values, which land in the pointers that follow; gives up early once the child pid has
 * exited. Returns whether it scanned. For the port files servers write once listening. */
bool iproc_scan_file(pid_t pid, const char *path, int timeout_ms, int n, const char *fmt, ...)
    __attribute__((format(scanf, 5, 6)));

/* Prints "---- path ----" and the file's contents to stdout (for a failing case's output);
 * nothing if it cannot be opened. */
void iproc_dump_file(const char *path);

/* A loopback TCP port that was free a moment ago (bind to port 0, read it, close). */
int iproc_free_port(void);

void iproc_sleep_ms(int ms);

#endif
