/*
 * LD_PRELOAD shim for the VM test (guest only): makes "a volume disappears
 * between listing and reading" happen on cue, with the real libdevmapper and
 * a real dm-vdo. It passes every call through, except once armed:
 *
 *   echo NAME > $DD_VANISH_DIR/arm
 *
 * the next DM_DEVICE_STATUS task on NAME (dedupd's and dedupctl's first read
 * of a volume after the listing found it) creates $DD_VANISH_DIR/listed and
 * waits (at most 60 s) for $DD_VANISH_DIR/go before it runs. The script
 * removes or renames the volume in between. One trigger per arm.
 *
 * And a message the kernel refuses, sent by our own code path:
 *
 *   echo NAME > $DD_VANISH_DIR/badmsg
 *
 * turns the next "stats" message to NAME into "bogus", which dm-vdo answers
 * with EINVAL as it does any unknown message. One trigger per arm.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <libdevmapper.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    struct dm_task *t;
    int type;
    char name[128];
} slots[SLOTS];

static void *next_fn(const char *sym)
{
    void *f = dlsym(RTLD_NEXT, sym);
    if (!f) {
        fprintf(stderr, "vanish-shim: no %s\n", sym);
        abort();
    }
    return f;
}

struct dm_task *dm_task_create(int type)
{
    struct dm_task *(*real)(int) = next_fn("dm_task_create");
    struct dm_task *t = real(type);
    pthread_mutex_lock(&mu);
    for (int i = 0; t && i < SLOTS; i++) {
        if (!slots[i].t) {
            slots[i].t = t;
            slots[i].type = type;
            slots[i].name[0] = '\0';
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    return t;
}

int dm_task_set_name(struct dm_task *t, const char *name)
{
    int (*real)(struct dm_task *, const char *) = next_fn("dm_task_set_name");
    pthread_mutex_lock(&mu);
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].t == t)
            snprintf(slots[i].name, sizeof(slots[i].name), "%s", name ? name : "");
    }
    pthread_mutex_unlock(&mu);
    return real(t, name);
}

void dm_task_destroy(struct dm_task *t)
{
    void (*real)(struct dm_task *) = next_fn("dm_task_destroy");
    pthread_mutex_lock(&mu);
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].t == t)
            slots[i].t = NULL;
    }
    pthread_mutex_unlock(&mu);
    real(t);
}

/* Reads $DD_VANISH_DIR/FILE; true (and the file removed) when it names NAME. */
static bool armed_for(const char *file, const char *name)
{
    const char *dir = getenv("DD_VANISH_DIR");
    char p[512], want[128] = "";
    FILE *f;

    if (!dir)
        return false;
    snprintf(p, sizeof(p), "%s/%s", dir, file);
    f = fopen(p, "r");
    if (!f)
        return false;
    if (!fgets(want, sizeof(want), f))
        want[0] = '\0';
    fclose(f);
    want[strcspn(want, "\n")] = '\0';
    return strcmp(want, name) == 0 && unlink(p) == 0;
}

int dm_task_set_message(struct dm_task *t, const char *message)
{
    int (*real)(struct dm_task *, const char *) = next_fn("dm_task_set_message");
    char name[128] = "";

    pthread_mutex_lock(&mu);
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].t == t)
            snprintf(name, sizeof(name), "%s", slots[i].name);
    }
    pthread_mutex_unlock(&mu);
    if (message && strcmp(message, "stats") == 0 && name[0] && armed_for("badmsg", name))
        return real(t, "bogus");
    return real(t, message);
}

static void hold_if_armed(const char *name)
{
    const char *dir = getenv("DD_VANISH_DIR");
    char listed[512], go[512];

    if (!armed_for("arm", name))
        return;
    snprintf(listed, sizeof(listed), "%s/listed", dir);
    snprintf(go, sizeof(go), "%s/go", dir);
    int fd = open(listed, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < 3000 && access(go, F_OK) != 0; i++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    unlink(go);
}

int dm_task_run(struct dm_task *t)
{
    int (*real)(struct dm_task *) = next_fn("dm_task_run");
    char name[128] = "";
    int type = -1;

    pthread_mutex_lock(&mu);
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].t == t) {
            type = slots[i].type;
            snprintf(name, sizeof(name), "%s", slots[i].name);
        }
    }
    pthread_mutex_unlock(&mu);
    if (type == DM_DEVICE_STATUS && name[0])
        hold_if_armed(name);
    return real(t);
}
