/*
 * Prometheus text rendering of the sampler's documents: volume features
 * (one family per feature, named from placement/features.h's list), node
 * load, GPUs and pods. Every family is one contiguous group with its own
 * HELP and TYPE; label values are escaped. Pure text work: no I/O.
 */
#ifndef DD_METRICS_H
#define DD_METRICS_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

/* A label value as the text format wants it: backslash, quote and newline
 * escaped (dm names may hold any of them). */
void dd_metrics_label_value(FILE *m, const char *v);
void dd_metrics_family(FILE *m, const char *name, const char *type, const char *help);
/* The volume families from {"volumes": [...]}'s array. */
void dd_metrics_volumes(FILE *m, json_t *volumes);
/* Node load, GPUs and pods from the node document. */
void dd_metrics_node(FILE *m, json_t *node);

#endif
