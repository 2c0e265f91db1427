/*
 * The XGBoost C API calls the cost model (placement/costmodel.c) and the
 * right-sizing models (placement/rightsize.c) share: every call's -1
 * becomes DD_E_LIBRARY with "XGBoost <what>: <XGBGetLastError()>" in err
 * (err may be NULL). Internal to placement/: callers include
 * <xgboost/c_api.h> themselves. Pure: no I/O, no threads.
 */
#ifndef DD_PLACEMENT_XGB_H
#define DD_PLACEMENT_XGB_H

#include <stddef.h>

#include <xgboost/c_api.h>

/* rc of an XGBoost call: 0, or DD_E_LIBRARY with err saying what failed. */
int dd_xgb_check(int rc, const char *what, char *err, size_t errlen);

/*
 * A new booster in *out trained on nrows rows of X (row-major, nfeatures
 * columns, NaN missing) with labels y: params[0..nparams) set, then rounds
 * boosting rounds. *out is set as soon as it exists (the caller frees it,
 * on failure too).
 */
int dd_xgb_train(BoosterHandle *out, const float *X, const float *y, size_t nrows, size_t nfeatures,
                 const char *const (*params)[2], size_t nparams, unsigned rounds, char *err,
                 size_t errlen);

/*
 * An in-place prediction of n rows of X (nfeatures columns) of type (0
 * values, 2 contributions); *ret points into XGBoost's per-thread buffer
 * (copy it before any other XGBoost call on this thread), *ret_len is the
 * number of values.
 */
int dd_xgb_predict_dense(BoosterHandle b, const float *X, size_t n, int nfeatures, int type,
                         const float **ret, bst_ulong *ret_len, char *err, size_t errlen);

/*
 * A booster in *out loaded from a saved model (len bytes at buf), set to
 * predict on one thread (nthread is not saved with a model: a loaded one
 * would predict on every core), and its feature count in *nfeatures. *out
 * is set as soon as it exists (the caller frees it, on failure too).
 */
int dd_xgb_load(BoosterHandle *out, const void *buf, size_t len, bst_ulong *nfeatures, char *err,
                size_t errlen);

#endif
