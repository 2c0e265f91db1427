/* Shared XGBoost C API calls (xgb.h). */
#include "placement/xgb.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "common/common.h"

int dd_xgb_check(int rc, const char *what, char *err, size_t errlen)
{
    if (rc == 0)
        return 0;
    if (err)
        snprintf(err, errlen, "XGBoost %s: %s", what, XGBGetLastError());
    return DD_E_LIBRARY;
}

int dd_xgb_train(BoosterHandle *out, const float *X, const float *y, size_t nrows, size_t nfeatures,
                 const char *const (*params)[2], size_t nparams, unsigned rounds, char *err,
                 size_t errlen)
{
    DMatrixHandle dm = NULL;
    char what[64];
    int r;

    if ((r = dd_xgb_check(XGDMatrixCreateFromMat(X, nrows, nfeatures, NAN, &dm),
                          "creating the training matrix", err, errlen)) < 0 ||
        (r = dd_xgb_check(XGDMatrixSetFloatInfo(dm, "label", y, nrows), "setting labels", err,
                          errlen)) < 0 ||
        (r = dd_xgb_check(XGBoosterCreate(&dm, 1, out), "creating a booster", err, errlen)) < 0)
        goto out;
    for (size_t i = 0; i < nparams && r == 0; i++) {
        snprintf(what, sizeof(what), "setting %s", params[i][0]);
        r = dd_xgb_check(XGBoosterSetParam(*out, params[i][0], params[i][1]), what, err, errlen);
    }
    for (unsigned it = 0; it < rounds && r == 0; it++)
        r = dd_xgb_check(XGBoosterUpdateOneIter(*out, (int)it, dm), "training", err, errlen);
out:
    if (dm)
        XGDMatrixFree(dm);
    return r;
}

int dd_xgb_predict_dense(BoosterHandle b, const float *X, size_t n, int nfeatures, int type,
                         const float **ret, bst_ulong *ret_len, char *err, size_t errlen)
{
    char iface[256], cfg[256];
    const bst_ulong *shape;
    bst_ulong dim, total = 1;
    int r;

    snprintf(iface, sizeof(iface),
             "{\"data\": [%llu, true], \"shape\": [%zu, %d], \"typestr\": \"<f4\", "
             "\"version\": 3}",
             (unsigned long long)(uintptr_t)X, n, nfeatures);
    snprintf(cfg, sizeof(cfg),
             "{\"type\": %d, \"training\": false, \"iteration_begin\": 0, "
             "\"iteration_end\": 0, \"strict_shape\": false, \"cache_id\": 0, "
             "\"missing\": NaN}",
             type);
    r = dd_xgb_check(XGBoosterPredictFromDense(b, iface, cfg, NULL, &shape, &dim, ret),
                     "predicting", err, errlen);
    if (r < 0)
        return r;
    for (bst_ulong i = 0; i < dim; i++)
        total *= shape[i];
    *ret_len = total;
    return 0;
}

int dd_xgb_load(BoosterHandle *out, const void *buf, size_t len, bst_ulong *nfeatures, char *err,
                size_t errlen)
{
    int r = dd_xgb_check(XGBoosterCreate(NULL, 0, out), "creating a booster", err, errlen);
    if (r == 0)
        r = dd_xgb_check(XGBoosterLoadModelFromBuffer(*out, buf, len), "loading the model", err,
                         errlen);
    if (r == 0)
        r = dd_xgb_check(XGBoosterSetParam(*out, "nthread", "1"), "setting nthread", err, errlen);
    if (r == 0)
        r = dd_xgb_check(XGBoosterGetNumFeature(*out, nfeatures), "reading the feature count", err,
                         errlen);
    return r;
}
