/*
 * iloop: drive a libevent loop from a test case, in-process (the async PostgreSQL and Redis
 * clients under test run on it). Every wait is bounded by the caller's timeout; nothing
 * here fails the case by itself.
 */
#ifndef CARELINE_ILOOP_H
#define CARELINE_ILOOP_H

#include <stdbool.h>

struct event_base;

/* A condition over the test's state, checked between loop turns. */
typedef bool (*IloopPred)(void *arg);

/* Runs the loop in turns of at most 5 ms until pred(arg) holds or timeout_ms has passed
 * (pred is checked first, so a condition that already holds runs no turn). Returns pred's
 * final value: false only on timeout. */
bool iloop_wait(struct event_base *b, IloopPred pred, void *arg, int timeout_ms);

/* Runs the loop for ms milliseconds (in 5 ms turns), whatever happens. */
void iloop_run_ms(struct event_base *b, int ms);

#endif
