/*
 * The estimator's outputs: the stable JSON document (keys listed in README;
 * tools and tests read them) and a readable summary. Figures that are
 * undefined for the input (a ratio over zero blocks) are JSON null, never a
 * made-up number.
 */
#include <math.h>
#include <stdio.h>

#include "common/common.h"
#include "dedupd/scan/scan-internal.h"

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *count_or_null(double v)
{
    return isfinite(v) ? json_integer((json_int_t)llround(v)) : json_null();
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *blkid_json(const struct dd_blkid_info *b)
{
    if (!b->probed)
        return json_null();
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}", "size", (json_int_t)b->size, "type",
                     str_or_null(b->type), "usage", str_or_null(b->usage), "label",
                     str_or_null(b->label), "uuid", str_or_null(b->uuid), "signature",
                     str_or_null(b->signature));
}

static json_t *input_json(const struct dd_scan_input *in)
{
    json_t *errors = json_array();
    json_t *o;

    if (!errors)
        return NULL;
    for (size_t i = 0; i < in->n_errors; i++) {
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", in->errors[i].path, "message",
                                                in->errors[i].message));
    }
    o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:I}", "path", in->path, "type",
                  dd_input_type_name(in->type), "bytes", (json_int_t)in->bytes_read, "size",
                  (json_int_t)in->size, "files", (json_int_t)in->files, "skipped",
                  (json_int_t)in->skipped, "blkid", blkid_json(&in->blkid), "error",
                  in->n_errors ? json_string(in->errors[0].message) : json_null(), "errors", errors,
                  "errors_dropped", (json_int_t)in->errors_dropped);
    return o;
}

json_t *dd_scan_to_json(const struct dd_scan *scan)
{
    const struct dd_scan_result *r = &scan->result;
    json_t *inputs = json_array();
    json_t *o;

    if (!inputs)
        return NULL;
    for (size_t i = 0; i < scan->n_inputs; i++) {
        json_t *in = input_json(&scan->inputs[i]);
        if (!in || json_array_append_new(inputs, in) < 0) {
            json_decref(inputs);
            return NULL;
        }
    }
    o = json_object();
    if (!o) {
        json_decref(inputs);
        return NULL;
    }
    json_object_set_new(o, "logical_bytes", json_integer((json_int_t)r->logical_bytes));
    json_object_set_new(o, "blocks_total", json_integer((json_int_t)r->blocks_total));
    json_object_set_new(o, "zero_blocks", json_integer((json_int_t)r->zero_blocks));
    json_object_set_new(o, "nonzero_blocks", json_integer((json_int_t)r->nonzero_blocks));
    json_object_set_new(o, "distinct_blocks", count_or_null(r->distinct_blocks));
    json_object_set_new(o, "dedup_ratio", num_or_null(r->dedup_ratio));
    json_object_set_new(o, "dedup_savings_percent", num_or_null(r->dedup_savings_percent));
    json_object_set_new(o, "ci95_low", num_or_null(r->ci95_low));
    json_object_set_new(o, "ci95_high", num_or_null(r->ci95_high));
    json_object_set_new(o, "compressible_fraction", num_or_null(r->compressible_fraction));
    json_object_set_new(o, "compression_savings_percent",
                        num_or_null(r->compression_savings_percent));
    json_object_set_new(o, "estimated_physical_blocks",
                        count_or_null(r->estimated_physical_blocks));
    json_object_set_new(o, "data_reduction_percent", num_or_null(r->data_reduction_percent));
    json_object_set_new(o, "mode", json_string(r->sampled ? "sampled" : "exact"));
    json_object_set_new(o, "sampling_rate", json_real(r->sampling_rate));
    json_object_set_new(o, "sampling_bits", json_integer(r->sampling_bits));
    json_object_set_new(o, "window_blocks",
                        r->window_blocks ? json_integer((json_int_t)r->window_blocks)
                                         : json_null());
    json_object_set_new(o, "compress_sampling_rate",
                        r->compression_estimated ? json_real(r->compress_sampling_rate)
                                                 : json_null());
    json_object_set_new(o, "compress_samples", json_integer((json_int_t)r->compress_samples));
    json_object_set_new(o, "compressible_ci95_low", num_or_null(r->compressible_ci95_low));
    json_object_set_new(o, "compressible_ci95_high", num_or_null(r->compressible_ci95_high));
    json_object_set_new(o, "compression_low_support",
                        json_boolean(r->compression_estimated && r->compression_low_support));
    json_object_set_new(o, "mean_fragment_bytes", num_or_null(r->mean_fragment_bytes));
    json_object_set_new(o, "packing_blocks_per_fragment",
                        num_or_null(r->packing_blocks_per_fragment));
    json_object_set_new(o, "bytes_per_second", json_real(r->bytes_per_second));
    json_object_set_new(o, "seconds", json_real(r->seconds));
    json_object_set_new(o, "threads", json_integer(r->threads));
    json_object_set_new(o, "peak_table_bytes", json_integer((json_int_t)r->table_bytes));
    json_object_set_new(o, "hash", json_string("xxh3-128"));
    json_object_set_new(o, "hash_isa", json_string(dd_hasher_isa()));
    json_object_set_new(o, "inputs_failed", json_integer((json_int_t)r->inputs_failed));
    json_object_set_new(o, "inputs", inputs);
    return o;
}

static void human_bytes(double v, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < DD_ARRAY_SIZE(units)) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void print_pct(FILE *out, const char *label, double v)
{
    if (isfinite(v))
        fprintf(out, "  %-28s %6.2f %%\n", label, v);
    else
        fprintf(out, "  %-28s    n/a\n", label);
}

void dd_scan_print_summary(const struct dd_scan *scan, FILE *out)
{
    const struct dd_scan_result *r = &scan->result;
    char b1[32], b2[32];

    human_bytes((double)r->logical_bytes, b1, sizeof(b1));
    human_bytes(r->bytes_per_second, b2, sizeof(b2));
    fprintf(out, "dedupctl estimate: %s in %.2f s (%s/s, %u threads, %s mode", b1, r->seconds, b2,
            r->threads, r->sampled ? "sampled" : "exact");
    if (r->sampled)
        fprintf(out, ", sampling 1/%.0f", 1.0 / r->sampling_rate);
    fprintf(out, ")\n");
    fprintf(out, "  %-28s %llu (%llu zero, %llu non-zero)\n", "4 KiB blocks",
            (unsigned long long)r->blocks_total, (unsigned long long)r->zero_blocks,
            (unsigned long long)r->nonzero_blocks);
    if (isfinite(r->distinct_blocks))
        fprintf(out, "  %-28s %.0f\n", "blocks VDO would write", r->distinct_blocks);
    if (r->window_blocks)
        fprintf(out, "  %-28s %llu blocks\n", "dedup window", (unsigned long long)r->window_blocks);
    if (isfinite(r->dedup_ratio))
        fprintf(out, "  %-28s %.3f\n", "dedup ratio", r->dedup_ratio);
    print_pct(out, "dedup + zero savings", r->dedup_savings_percent);
    if (r->sampled && isfinite(r->ci95_low))
        fprintf(out, "  %-28s [%.2f, %.2f] %%\n", "95 % confidence", r->ci95_low, r->ci95_high);
    if (r->compression_estimated) {
        fprintf(out, "  %-28s %.1f %% (%llu blocks tried", "compressible blocks",
                100.0 * r->compressible_fraction, (unsigned long long)r->compress_samples);
        if (r->compressible_ci95_low != r->compressible_ci95_high)
            fprintf(out, ", 95 %% [%.1f, %.1f] %%", 100.0 * r->compressible_ci95_low,
                    100.0 * r->compressible_ci95_high);
        fprintf(out, ")\n");
        print_pct(out, "compression savings", r->compression_savings_percent);
        if (r->compression_low_support)
            fprintf(out,
                    "  warning: the compression figures rest on %llu LZ4 trials (1 in %.0f "
                    "distinct blocks; under %u): a lower --sampling-bits or --compress-sample "
                    "tries more\n",
                    (unsigned long long)r->compress_samples, 1.0 / r->compress_sampling_rate,
                    DD_SCAN_MIN_COMPRESS_TRIALS);
    } else {
        fprintf(out, "  %-28s not estimated\n", "compression");
    }
    if (isfinite(r->estimated_physical_blocks)) {
        human_bytes(r->estimated_physical_blocks * DD_BLOCK_SIZE, b1, sizeof(b1));
        fprintf(out, "  %-28s %.0f (%s)\n", "estimated physical blocks",
                r->estimated_physical_blocks, b1);
    }
    print_pct(out, "total data reduction", r->data_reduction_percent);
    for (size_t i = 0; i < scan->n_inputs; i++) {
        const struct dd_scan_input *in = &scan->inputs[i];
        if (in->blkid.type)
            fprintf(out, "  %s: %s holds %s%s%s%s%s\n", in->path, dd_input_type_name(in->type),
                    in->blkid.type, in->blkid.label ? " label " : "",
                    in->blkid.label ? in->blkid.label : "", in->blkid.uuid ? " uuid " : "",
                    in->blkid.uuid ? in->blkid.uuid : "");
        if (in->blkid.signature)
            fprintf(out, "  warning: %s carries a %s signature\n", in->path, in->blkid.signature);
        for (size_t e = 0; e < in->n_errors; e++)
            fprintf(out, "  failed: %s: %s\n", in->errors[e].path, in->errors[e].message);
    }
}
