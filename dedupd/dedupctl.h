/*
 * dedupctl's verbs, one file each; dedupctl.c dispatches. Each takes the
 * verb's own argc/argv (argv[0] is the verb) and returns the exit status.
 */
#ifndef DD_DEDUPCTL_H
#define DD_DEDUPCTL_H

int dd_ctl_vdostats(int argc, char **argv);
int dd_ctl_vdo_sim(int argc, char **argv);
/* status, volumes, history, and estimate --remote: clients of dedupd's API */
int dd_ctl_remote(const char *verb, int argc, char **argv);
/* dedupctl model fit --data FILE: the cost model fitted offline (dedupctl-model.c). */
int dd_ctl_model_fit(int argc, char **argv);

#endif
