/*
 * THE feature vector: what one volume looks like over one sample interval,
 * as the cost model, the store, the node report, the metrics and the what-if
 * see it. One X-macro list below is the only place a feature is named; the
 * enum, the JSON keys, the units, the range checks, the monotone constraints
 * of each target and the metric names are all generated from it.
 *
 * Columns: X(ID, key, unit, kind, mono_cost, mono_latency, help)
 *   key   the JSON key (stable: the store and saved models use it)
 *   kind  DD_FK_RATE  per second, >= 0          DD_FK_SHARE 0..1
 *         DD_FK_COUNT a count or size, >= 0     DD_FK_FLAG  0 or 1
 *         DD_FK_GAUGE another level, >= 0 (a ratio, a pressure in %)
 *   mono  +1: more of the feature never predicts less of that target
 *         (XGBoost monotone constraint); 0: unconstrained
 *
 * The model's inputs come first, in the column order of the cost model's
 * rows (DD_F_NMODEL of them); the rest are observed and shown but not
 * learned from. Targets (what the model predicts) are a list of their own.
 *
 * A value is a double; NaN means "not known this interval" (XGBoost's
 * missing value). Values are typed inside the process; JSON is for the wire
 * and the store, where a feature not known is simply absent.
 *
 * Pure: no I/O, thread-safe.
 */
#ifndef DD_PLACEMENT_FEATURES_H
#define DD_PLACEMENT_FEATURES_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

enum dd_feature_kind { DD_FK_RATE, DD_FK_SHARE, DD_FK_COUNT, DD_FK_FLAG, DD_FK_GAUGE };

/* The cost model's inputs, in its column order. */
#define DD_FEATURES_MODEL(X)                                                                       \
    X(WRITE_MBPS, write_mbps, "MB/s", DD_FK_RATE, 0, 1, "Writes to the volume (10^6 B/s).")        \
    X(READ_MBPS, read_mbps, "MB/s", DD_FK_RATE, 0, 0, "Reads from the volume (10^6 B/s).")         \
    X(WRITE_IOPS, write_iops, "1/s", DD_FK_RATE, 0, 1, "4 KiB write bios per second.")             \
    X(DEDUP_HIT_RATE, dedup_hit_rate, "share", DD_FK_SHARE, 0, 0,                                  \
      "Share of the interval's writes that were duplicates.")                                      \
    X(INDEX_ENTRIES, index_entries, "entries", DD_FK_COUNT, 0, 0, "UDS index entries.")            \
    X(COMPRESSION, compression, "flag", DD_FK_FLAG, 0, 0, "1 when compression is on.")             \
    X(PACKER_SAVINGS, packer_savings, "share", DD_FK_SHARE, 0, 0,                                  \
      "Share of the interval's blocks the packer saved.")                                          \
    X(NODE_CPU_UTIL_EX_VDO, node_cpu_util_ex_vdo, "share", DD_FK_SHARE, 1, 1,                      \
      "Node CPU busy share without the VDO threads.")                                              \
    X(CPU_PSI, cpu_psi, "%", DD_FK_GAUGE, 1, 1, "CPU pressure, some, avg10.")                      \
    X(IO_PSI, io_psi, "%", DD_FK_GAUGE, 0, 1, "IO pressure, some, avg10.")                         \
    X(RUN_QUEUE, run_queue, "tasks", DD_FK_COUNT, 1, 1, "Runnable tasks on the node.")

/*
 * Observed and shown, not model inputs. The volume's lifetime levels are
 * here because they act as clocks: in a fill they only grow, so trees
 * trained on older rows split on them and extrapolate badly to newer ones
 * (the real dm-vdo series: XGBoost's time-ordered latency hold-out MAPE
 * 42.8 % with them as inputs). Their per-interval signal is in the model
 * list already: dedup_ratio (lifetime) is the history of dedup_hit_rate
 * (the interval's); stored_gib and physical_used_fraction showed no effect
 * of their own (a unique write cost the same at 0.15 M and 1.9 M index
 * entries); index_fill is index_entries over a capacity fixed per volume.
 * index_entries stays an input: the index lookup grows with it (the
 * prior's log2 E term) and it is the prior's input.
 */
#define DD_FEATURES_INFO(X)                                                                        \
    X(DEDUP_RATIO, dedup_ratio, "ratio", DD_FK_GAUGE, 0, 0,                                        \
      "Logical blocks used over data blocks used (lifetime).")                                     \
    X(INDEX_FILL, index_fill, "share", DD_FK_SHARE, 0, 0, "Index entries over its capacity.")      \
    X(STORED_GIB, stored_gib, "GiB", DD_FK_COUNT, 0, 0, "Data blocks stored, in GiB.")             \
    X(PHYSICAL_USED_FRACTION, physical_used_fraction, "share", DD_FK_SHARE, 0, 0,                  \
      "Physical blocks used (data and overhead) over physical blocks.")                            \
    X(JOURNAL_BLOCKS_PER_S, journal_blocks_per_s, "1/s", DD_FK_RATE, 0, 0,                         \
      "Recovery journal blocks written per second.")                                               \
    X(BLOCK_MAP_PAGES_PER_S, block_map_pages_per_s, "1/s", DD_FK_RATE, 0, 0,                       \
      "Block map pages loaded and saved per second.")                                              \
    X(OPERATING_MODE_NORMAL, operating_mode_normal, "flag", DD_FK_FLAG, 0, 0,                      \
      "1 when the volume is in normal mode and not recovering.")

#define DD_FEATURES(X) DD_FEATURES_MODEL(X) DD_FEATURES_INFO(X)

/* Columns: X(ID, key, unit, help) */
#define DD_TARGETS(X)                                                                              \
    X(COST, cost, "CPU-s/GiB", "VDO kernel thread CPU-seconds per GiB written.")                   \
    X(LATENCY, latency, "ms", "Average write latency of the VDO device.")

#define DD_F_ENUM_(id, ...) DD_F_##id,
enum dd_feature { DD_FEATURES(DD_F_ENUM_) DD_F_COUNT };
#define DD_F_MODEL_ENUM_(id, ...) DD_F_MODEL_COUNT_##id,
enum { DD_FEATURES_MODEL(DD_F_MODEL_ENUM_) DD_F_NMODEL };
#define DD_T_ENUM_(id, ...) DD_T_##id,
enum dd_target { DD_TARGETS(DD_T_ENUM_) DD_T_COUNT };

struct dd_feature_info {
    const char *key, *unit, *help;
    enum dd_feature_kind kind;
    int mono[DD_T_COUNT]; /* per target: +1 or 0 */
};
extern const struct dd_feature_info dd_feature_table[DD_F_COUNT];

struct dd_target_info {
    const char *key, *unit, *help;
};
extern const struct dd_target_info dd_target_table[DD_T_COUNT];

/* One volume's interval: NaN = not known. */
struct dd_features {
    double v[DD_F_COUNT];
    double target[DD_T_COUNT];
};

/* All NaN. */
void dd_features_clear(struct dd_features *f);

/* The feature or target whose key is key; -1 when none. */
int dd_feature_by_key(const char *key);
int dd_target_by_key(const char *key);

/* Is x in range for feature f (finite, not negative, a share or flag not
 * above 1, a flag 0 or 1)? */
bool dd_feature_value_ok(enum dd_feature f, double x);

/*
 * JSON: {"write_mbps": 12.5, ..., "cost": 0.41, "latency": 0.3}, features
 * and targets in one object (the store's volume documents hold it as
 * "features"). Known values only; real numbers with 10 significant digits.
 */
json_t *dd_features_to_json(const struct dd_features *f);

enum dd_features_parse {
    /* stored rows and reports' optional figures: a missing, null or
     * non-number key is NaN; unknown keys are ignored */
    DD_FEATURES_LENIENT,
    /* an API's full input: every model feature present and in range,
     * unknown keys refused */
    DD_FEATURES_STRICT_MODEL,
    /* a report: any key present must be known and in range, missing is NaN */
    DD_FEATURES_STRICT_PRESENT,
};

/* Fills *ret from a JSON object; on error returns -EINVAL and errbuf names
 * the key ("<where>.write_mbps: ..."), *ret untouched. */
int dd_features_from_json(json_t *o, enum dd_features_parse mode, const char *where,
                          struct dd_features *ret, char *errbuf, size_t errlen);

/* The cost model's row: the first DD_F_NMODEL features as floats. */
void dd_features_model_row(const struct dd_features *f, float *row);

/*
 * A what-if: a pod adds write_mbps of writes at duplicate_share (NaN: the
 * volume's own share), and cpu_load more of the node's CPU is taken
 * (0..1). The write rate, write IOPS (4 KiB writes) and the interval's
 * duplicate share move; the lifetime dedup ratio stays (a pod's first
 * interval barely moves it). Node load is capped at 1.
 */
struct dd_what_if {
    double write_mbps;      /* >= 0 */
    double duplicate_share; /* 0..1, NaN: unchanged */
    double cpu_load;        /* 0..1 */
};

/* Parses {"write_mbps", "duplicate_share", "cpu_load"} (each optional;
 * unknown keys and out-of-range values refused naming the key under
 * where, a duplicate_share without write_mbps > 0 refused). */
int dd_what_if_from_json(json_t *o, const char *where, struct dd_what_if *ret, char *errbuf,
                         size_t errlen);
/* Applies w to f (pure). */
void dd_features_what_if(struct dd_features *f, const struct dd_what_if *w);

#endif
