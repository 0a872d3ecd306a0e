/* work.c: the densities' work buffers, allocated once per chain.
 *
 * hb_run_chain allocates one Work before its first evaluation and frees it
 * after its last; Python's hb_logp calls share one per model (hb_work_new),
 * and the exact draws allocate one per call. An evaluation then allocates nothing: the buffers that the
 * densities accumulate into are zeroed where they are used (full.c,
 * marginal.c), the rest are written in full before they are read. Sizes come
 * from the Model record alone, so there is no limit on the number of blocks
 * or terms other than memory.
 */
#include "hb.h"

/* calloc of n doubles, never of zero bytes (so NULL always means out of memory) */
static double *zeros(int64_t n) { return calloc(n > 0 ? n : 1, sizeof(double)); }

static int full_alloc(FullWork *f, const Model *d) {
    f->loglik = family_loglik(d->family);
    if (f->loglik == NULL) return HB_BAD_FAMILY;
    int64_t n = d->n, dim = d->dim;
    if (has_structure(d)) {
        f->loglik = loglik_structured;
        f->ra = zeros(n);
        f->ru = zeros(n);
        f->rs = zeros(n);
        f->rr = zeros(n);
        if (!f->ra || !f->ru || !f->rs || !f->rr) return HB_NOMEM;
    }
    f->eta = zeros(n + 1);
    f->ge = zeros(n + 1);
    f->r = zeros(dim);
    f->g_r = zeros(dim);
    int bad = rows_alloc(d, &f->rw);
    bad = tw_alloc(&f->tw, d->blk, d->G, B_N) || bad;
    if (d->collapsed >= 0) {
        int64_t Lc = d->blk[d->collapsed * B_N + B_L], cmax = 0;
        for (int64_t j = 0; j < Lc; j++)
            if (d->ccnt[j] > (double)cmax) cmax = (int64_t)d->ccnt[j];
        f->cmax = cmax;
        f->S = zeros(Lc);
        f->cj = zeros(Lc + 2 * (cmax + 1));
        bad = bad || !f->S || !f->cj;
    }
    int64_t Kmax = f->tw.Kmax > 0 ? f->tw.Kmax : 1;
    f->gT = zeros(Kmax * Kmax);
    f->wv = zeros(Kmax);
    f->vv = zeros(Kmax);
    bad = bad || !f->eta || !f->ge || !f->r || !f->g_r || !f->gT || !f->wv || !f->vv;
    return bad ? HB_NOMEM : HB_OK;
}

static void full_free(FullWork *f) {
    free(f->eta);
    free(f->ge);
    free(f->rw.K);
    tw_free(&f->tw);
    free(f->r);
    free(f->g_r);
    free(f->S);
    free(f->cj);
    free(f->gT);
    free(f->wv);
    free(f->vv);
    free(f->ra);
    free(f->ru);
    free(f->rs);
    free(f->rr);
}

static int marg_alloc(MargWork *m, const Model *d) {
    int bad = tw_alloc(&m->w, d->mblk, d->mG, M_N);
    int64_t K1 = d->mblk[M_K], L1 = d->mblk[M_L], q1 = d->q1, q2 = d->q2, q = d->q;
    int64_t ld = m->w.Kmax;
    m->L11 = zeros(L1 * K1 * K1 + 1);
    m->W = zeros(q2 * q1 + 1);
    m->LS = zeros(q2 * q2 + 1);
    m->A21 = zeros(q2 * q1 + 1);
    m->tmp = zeros(q2 * q1 + 1);
    m->S = zeros(q2 * q2 + 1);
    m->Tr22 = zeros(q2 * q2 + 1);
    m->Tr22t = zeros(q2 * q2 + 1);
    m->c = zeros(q + 1);
    m->u = zeros(q + 1);
    m->b = zeros(q + 1);
    m->Ztr = zeros(q + 1);
    m->XtXb = zeros(d->mp + 1);
    m->wu = zeros(q1 + 1);
    m->rhs = zeros(q2 + 1);
    m->ys = zeros(q2 + 1);
    m->Sinv = zeros(q2 * q2 + 1);
    m->SW = zeros(q2 * q1 + 1);
    m->gT = zeros(d->mG * ld * ld + 1);
    m->Gb = zeros(q + 1);
    m->za = zeros(q + 1);
    m->TrSW = zeros(q2 * q1 + 1);
    m->LSinv = zeros(q2 * q2 + 1);
    m->e = zeros(q2 + 1);
    m->col = zeros(q2 + 1);
    m->GT21 = zeros(q2 * q1 + 1);
    m->G22Tr = zeros(q2 * q2 + 1);
    bad = bad || !m->L11 || !m->W || !m->LS || !m->A21 || !m->tmp || !m->S || !m->Tr22 || !m->Tr22t ||
          !m->c || !m->u || !m->b || !m->Ztr || !m->XtXb || !m->wu || !m->rhs || !m->ys || !m->Sinv ||
          !m->SW || !m->gT || !m->Gb || !m->za || !m->TrSW || !m->LSinv || !m->e || !m->col || !m->GT21 ||
          !m->G22Tr;
    return bad ? HB_NOMEM : HB_OK;
}

static void marg_free(MargWork *m) {
    tw_free(&m->w);
    double *all[] = {m->L11, m->W,    m->LS, m->A21, m->tmp,  m->S,     m->Tr22,  m->Tr22t, m->c, m->u,
                     m->b,   m->Ztr,  m->XtXb, m->wu, m->rhs, m->ys,   m->Sinv,  m->SW,    m->gT, m->Gb,
                     m->za,  m->TrSW, m->LSinv, m->e, m->col, m->GT21, m->G22Tr};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) free(all[i]);
}

int work_alloc(Work *w, const Model *d) {
    memset(w, 0, sizeof(Work));
    if (d->mode == MODE_MARGINAL) return d->mG < 1 ? HB_BAD_MODEL : marg_alloc(&w->m, d);
    if (d->mode != MODE_FULL) return HB_BAD_MODE;
    return full_alloc(&w->f, d);
}

void work_free(Work *w) {
    full_free(&w->f);
    marg_free(&w->m);
    memset(w, 0, sizeof(Work));
}
