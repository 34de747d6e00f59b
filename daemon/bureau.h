/*
 * bureau: what the civil-affairs bureau asks of Careline — coverage against the plan's
 * targets, realized figures, snapshots and planning — over the protocol (CoverageQuery) and
 * over HTTP (/v1/coverage...). (Stub: filled in by the coverage issue.)
 */
#ifndef CARELINE_BUREAU_H
#define CARELINE_BUREAU_H

struct Server;
typedef struct Bureau Bureau;

/* Installs the CoverageQuery route and the HTTP routes; starts the snapshot timer. */
Bureau *bureau_new(struct Server *s);
void bureau_free(Bureau *b);

#endif
