/*
 * The feature table generated from features.h's X-macro, the JSON codec and
 * the what-if. Every range rule lives in dd_feature_value_ok, so the API,
 * the report decoder and the model's input checks agree.
 */
#include "placement/features.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

#define DD_F_INFO_(id, key, unit, kind, mc, ml, help) {#key, unit, help, kind, {mc, ml}},
const struct dd_feature_info dd_feature_table[DD_F_COUNT] = {DD_FEATURES(DD_F_INFO_)};

#define DD_T_INFO_(id, key, unit, help) {#key, unit, help},
const struct dd_target_info dd_target_table[DD_T_COUNT] = {DD_TARGETS(DD_T_INFO_)};

/* the model's inputs are the first columns of the full list */
#define DD_F_CHECK_(id, ...)                                                                       \
    _Static_assert((int)DD_F_MODEL_COUNT_##id == (int)DD_F_##id, "model order");
DD_FEATURES_MODEL(DD_F_CHECK_)

void dd_features_clear(struct dd_features *f)
{
    for (size_t i = 0; i < DD_F_COUNT; i++)
        f->v[i] = (double)NAN;
    for (size_t i = 0; i < DD_T_COUNT; i++)
        f->target[i] = (double)NAN;
}

int dd_feature_by_key(const char *key)
{
    for (size_t i = 0; i < DD_F_COUNT; i++) {
        if (strcmp(dd_feature_table[i].key, key) == 0)
            return (int)i;
    }
    return -1;
}

int dd_target_by_key(const char *key)
{
    for (size_t i = 0; i < DD_T_COUNT; i++) {
        if (strcmp(dd_target_table[i].key, key) == 0)
            return (int)i;
    }
    return -1;
}

/* Beyond any real rate, count or size (an exabyte in bytes is 1e18; our
 * units are MB/s, GiB and entries): a guard against absurd input. */
#define VALUE_MAX 1e15

bool dd_feature_value_ok(enum dd_feature f, double x)
{
    if (!isfinite(x) || x < 0 || x > VALUE_MAX)
        return false;
    switch (dd_feature_table[f].kind) {
    case DD_FK_SHARE:
        return x <= 1;
    case DD_FK_FLAG:
        return x == 0 || x == 1;
    default:
        return true;
    }
}

static const char *range_text(enum dd_feature f)
{
    switch (dd_feature_table[f].kind) {
    case DD_FK_SHARE:
        return "a share, 0..1";
    case DD_FK_FLAG:
        return "a flag, 0 or 1";
    default:
        return "a finite number, not negative";
    }
}

json_t *dd_features_to_json(const struct dd_features *f)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    for (size_t i = 0; i < DD_F_COUNT; i++) {
        if (isfinite(f->v[i]))
            json_object_set_new_nocheck(o, dd_feature_table[i].key,
                                        dd_feature_table[i].kind == DD_FK_FLAG ||
                                                (dd_feature_table[i].kind == DD_FK_COUNT &&
                                                 f->v[i] == floor(f->v[i]) && f->v[i] < 9e15)
                                            ? json_integer((json_int_t)f->v[i])
                                            : json_real(f->v[i]));
    }
    for (size_t i = 0; i < DD_T_COUNT; i++) {
        if (isfinite(f->target[i]))
            json_object_set_new_nocheck(o, dd_target_table[i].key, json_real(f->target[i]));
    }
    return o;
}

int dd_features_from_json(json_t *o, enum dd_features_parse mode, const char *where,
                          struct dd_features *ret, char *errbuf, size_t errlen)
{
    struct dd_features f;
    const char *key;
    json_t *v;

    if (!json_is_object(o)) {
        snprintf(errbuf, errlen, "%s: expected an object", where);
        return -EINVAL;
    }
    dd_features_clear(&f);
    json_object_foreach(o, key, v)
    {
        int i = dd_feature_by_key(key), t = i < 0 ? dd_target_by_key(key) : -1;
        if (i < 0 && t < 0) {
            if (mode == DD_FEATURES_LENIENT)
                continue;
            snprintf(errbuf, errlen, "%s.%.64s: unknown feature", where, key);
            return -EINVAL;
        }
        if (!json_is_number(v)) {
            if (mode == DD_FEATURES_LENIENT || json_is_null(v))
                continue;
            snprintf(errbuf, errlen, "%s.%s: expected a number", where, key);
            return -EINVAL;
        }
        double x = json_number_value(v);
        if (i >= 0) {
            if (!dd_feature_value_ok((enum dd_feature)i, x)) {
                if (mode == DD_FEATURES_LENIENT)
                    continue;
                snprintf(errbuf, errlen, "%s.%s: %g is out of range (%s)", where, key, x,
                         range_text((enum dd_feature)i));
                return -EINVAL;
            }
            f.v[i] = x;
        } else {
            if (!isfinite(x) || x < 0 || x > VALUE_MAX) {
                if (mode == DD_FEATURES_LENIENT)
                    continue;
                snprintf(errbuf, errlen, "%s.%s: %g is out of range (not negative)", where, key, x);
                return -EINVAL;
            }
            f.target[t] = x;
        }
    }
    if (mode == DD_FEATURES_STRICT_MODEL) {
        for (size_t i = 0; i < DD_F_NMODEL; i++) {
            if (!isfinite(f.v[i])) {
                snprintf(errbuf, errlen, "%s.%s: %s", where, dd_feature_table[i].key,
                         json_object_get(o, dd_feature_table[i].key) ? "expected a number"
                                                                     : "missing");
                return -EINVAL;
            }
        }
    }
    *ret = f;
    return 0;
}

void dd_features_model_row(const struct dd_features *f, float *row)
{
    for (size_t i = 0; i < DD_F_NMODEL; i++)
        row[i] = (float)f->v[i];
}

int dd_what_if_from_json(json_t *o, const char *where, struct dd_what_if *ret, char *errbuf,
                         size_t errlen)
{
    static const char *const keys[] = {"write_mbps", "duplicate_share", "cpu_load"};
    double v[3] = {0, (double)NAN, 0};
    const char *key;
    json_t *x;

    if (!json_is_object(o)) {
        snprintf(errbuf, errlen, "%s: expected an object", where);
        return -EINVAL;
    }
    json_object_foreach(o, key, x)
    {
        size_t k = 0;
        while (k < DD_ARRAY_SIZE(keys) && strcmp(key, keys[k]) != 0)
            k++;
        if (k == DD_ARRAY_SIZE(keys)) {
            snprintf(errbuf, errlen, "%s.%.64s: unknown (write_mbps, duplicate_share, cpu_load)",
                     where, key);
            return -EINVAL;
        }
        if (!json_is_number(x) || !isfinite(json_number_value(x)) || json_number_value(x) < 0 ||
            (k > 0 && json_number_value(x) > 1) || json_number_value(x) > 1e6) {
            snprintf(errbuf, errlen, "%s.%s: expected a number %s", where, key,
                     k == 0 ? "0..1000000 (MB/s)" : "0..1 (a share)");
            return -EINVAL;
        }
        v[k] = json_number_value(x);
    }
    if (isfinite(v[1]) && !(v[0] > 0)) {
        snprintf(errbuf, errlen,
                 "%s.duplicate_share: the share of added writes; give %s.write_mbps > 0 with it",
                 where, where);
        return -EINVAL;
    }
    ret->write_mbps = v[0];
    ret->duplicate_share = v[1];
    ret->cpu_load = v[2];
    return 0;
}

static double known_or_zero(double x)
{
    return isfinite(x) ? x : 0;
}

void dd_features_what_if(struct dd_features *f, const struct dd_what_if *w)
{
    double w0 = known_or_zero(f->v[DD_F_WRITE_MBPS]);
    double u0 = known_or_zero(f->v[DD_F_DEDUP_HIT_RATE]);
    double l0 = known_or_zero(f->v[DD_F_NODE_CPU_UTIL_EX_VDO]);

    if (w->write_mbps > 0) {
        double u = isfinite(w->duplicate_share)
                       ? (u0 * w0 + w->duplicate_share * w->write_mbps) / (w0 + w->write_mbps)
                       : u0;
        f->v[DD_F_WRITE_MBPS] = w0 + w->write_mbps;
        f->v[DD_F_WRITE_IOPS] = known_or_zero(f->v[DD_F_WRITE_IOPS]) + w->write_mbps * 1e6 / 4096.0;
        f->v[DD_F_DEDUP_HIT_RATE] = u; /* dedup_ratio, a lifetime figure, stays */
    }
    f->v[DD_F_NODE_CPU_UTIL_EX_VDO] = l0 + w->cpu_load > 1 ? 1 : l0 + w->cpu_load;
}
