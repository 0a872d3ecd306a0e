/* layout.c: what native.py checks when it loads the library.
 *
 * The Model record's size, field names and offsets (compared with the ctypes mirror
 * hierbayes.bayes.native.Model), every code shared with Python by name and
 * value (compared with hierbayes/bayes/codes.py), the SHA-256 of the kernel
 * sources the library was built from (a checkout's edited kernels that were
 * not rebuilt are refused), and hb_model_check, which refuses a record whose
 * codes the kernels do not know before any density is evaluated.
 */
#include "hb.h"

#define MODEL_COUNT(f) +1
#define MODEL_OFFSET(f) offsetof(Model, f),
#define MODEL_NAME(f) #f,

int64_t hb_model_size(void) { return (int64_t)sizeof(Model); }

int64_t hb_model_fields(void) { return 0 MODEL_FIELDS(MODEL_COUNT); }

/* out receives hb_model_fields() offsets, in declaration order. */
void hb_model_offsets(int64_t *out) {
    static const size_t off[] = {MODEL_FIELDS(MODEL_OFFSET)};
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) out[i] = (int64_t)off[i];
}

/* The i-th field's name, in declaration order (NULL past the end): two fields of
 * one size swapped in the mirror keep every offset, not every name. */
const char *hb_model_field_name(int64_t i) {
    static const char *const names[] = {MODEL_FIELDS(MODEL_NAME)};
    return i >= 0 && i < hb_model_fields() ? names[i] : NULL;
}

/* setup.py (and tools/build_kernels.py) pass the SHA-256 of the kernel files,
 * so native.py can tell a library built from other sources (an edit not yet
 * rebuilt). */
#ifndef HB_SOURCE_SHA256
#define HB_SOURCE_SHA256 ""
#endif
const char *hb_source_sha256(void) { return HB_SOURCE_SHA256; }

#define CONSTANT_NAME(c) #c,
#define CONSTANT_VALUE(c) (int64_t)(c),
static const char *const constant_names[] = {HB_CONSTANTS(CONSTANT_NAME)};
static const int64_t constant_values[] = {HB_CONSTANTS(CONSTANT_VALUE)};

int64_t hb_constant_count(void) { return (int64_t)(sizeof(constant_values) / sizeof(constant_values[0])); }

/* The i-th shared code's name (NULL past the end). */
const char *hb_constant_name(int64_t i) { return i >= 0 && i < hb_constant_count() ? constant_names[i] : NULL; }

int64_t hb_constant_value(int64_t i) { return i >= 0 && i < hb_constant_count() ? constant_values[i] : -1; }

static int check_priors(const int64_t *pri_i, int64_t npri, int64_t dim) {
    for (int64_t k = 0; k < npri; k++) {
        const int64_t *row = pri_i + k * PRI_N;
        if (row[PRI_CODE] < 0 || row[PRI_CODE] >= PRIOR_N) return HB_BAD_PRIOR;
        if (row[PRI_AT] < 0 || row[PRI_AT] >= dim) return HB_BAD_MODEL;
    }
    return HB_OK;
}

/* A block's correlation code is known, and a cs/ar1 correlation's range lies where its
 * matrix is positive definite: -1/(K-1) <= lo < hi <= 1 (cs), -1 <= lo < hi <= 1 (ar1). */
static int block_ok(const int64_t *row, int64_t k_col, int64_t corr_col, const double *par) {
    int64_t corr = row[corr_col], K = row[k_col];
    if (corr < 0 || corr >= CORR_N) return 0;
    if (corr_params(corr, K) == 1 && corr != CORR_LKJ) {
        double floor = corr == CORR_CS ? -1.0 / (double)(K - 1) : -1.0;
        return par[PAR_LO] >= floor && par[PAR_LO] < par[PAR_HI] && par[PAR_HI] <= 1.0;
    }
    return 1;
}

/* HB_OK, or why the kernels cannot evaluate this record: HB_BAD_MODE,
 * HB_BAD_FAMILY (a family code with no log-likelihood, families.c),
 * HB_BAD_LINK (a link the family's kernel does not compute), HB_BAD_PRIOR (an
 * unknown prior code) or HB_BAD_MODEL (a marginal record without group terms,
 * a prior on no parameter, a dispersion outside theta, weights where no
 * kernel reads them). */
int hb_model_check(const Model *d) {
    if (d->mode == MODE_FULL) {
        if (family_loglik(d->family) == NULL) return HB_BAD_FAMILY;
        if (!family_link_ok(d->family, d->link)) return HB_BAD_LINK;
        /* prior weights are read by the Gaussian rows only, and not by its collapsed block */
        if (d->wts != NULL && (d->family != FAMILY_GAUSSIAN || d->collapsed >= 0)) return HB_BAD_MODEL;
        if (d->family == FAMILY_NEGBINOMIAL && d->nyd > 0 && (d->yd == NULL || d->ydn == NULL))
            return HB_BAD_MODEL;
        if ((d->family == FAMILY_NEGBINOMIAL || d->family == FAMILY_GAMMA || d->family == FAMILY_GAUSSIAN) &&
            (d->disp_at < 0 || d->disp_at >= d->dim))
            return HB_BAD_MODEL;
        /* a residual structure: Gaussian rows only, without weights or a collapsed block */
        if (has_structure(d)) {
            if (d->family != FAMILY_GAUSSIAN || d->wts != NULL || d->collapsed >= 0) return HB_BAD_MODEL;
            if (d->nv < 0 || (d->nv > 0 && (d->Vt == NULL || d->gam_at < 0 || d->gam_at + d->nv > d->dim)))
                return HB_BAD_MODEL;
            if (d->phi_at >= d->dim || (d->phi_at >= 0 && (d->rprev == NULL || d->rlag == NULL)) ||
                !(d->phi_lo < d->phi_hi))
                return HB_BAD_MODEL;
        }
        for (int64_t g = 0; g < d->G; g++)
            if (!block_ok(d->blk + g * B_N, B_K, B_CORR, d->blk_par + g * PAR_N)) return HB_BAD_MODEL;
        return check_priors(d->pri_i, d->npri, d->dim);
    }
    if (d->mode == MODE_MARGINAL) {
        if (d->mG < 1) return HB_BAD_MODEL;
        for (int64_t g = 0; g < d->mG; g++)
            if (!block_ok(d->mblk + g * M_N, M_K, M_CORR, d->mblk_par + g * PAR_N)) return HB_BAD_MODEL;
        return check_priors(d->mpri_i, d->mnpri, d->dim);
    }
    return HB_BAD_MODE;
}
