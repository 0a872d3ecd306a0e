/* nutpie.c: the model's log density behind nutpie's function pointers.
 *
 * nutpie runs NUTS in Rust and can call a C function for each gradient
 * (its private _lib.LogpFunc and _lib.ExpandFunc; hierbayes/bayes/nutpie_native.py
 * passes these functions' addresses). Its chains run in threads that call the
 * same pointer with the same user data at once, and the density needs work
 * buffers that one evaluation at a time may use. The user data is therefore a
 * pool of Work, one per thread that may call, allocated once (hb_pool_new): a
 * call claims a free one with an atomic exchange, evaluates, and releases it.
 * No lock, no allocation per call. A thread first tries the slot it used last,
 * so a chain keeps one Work and its buffers stay in that core's cache; when
 * more threads call than there are slots, a caller waits for one to be freed.
 */
#include "hb.h"

#if defined(_MSC_VER)
#include <intrin.h>
typedef long Flag;
#define CLAIM(f) (_InterlockedExchange((f), 1) == 0)
#define RELEASE(f) _InterlockedExchange((f), 0)
#define THREAD_LOCAL __declspec(thread)
#define YIELD() ((void)0)
#else
#include <sched.h>
typedef int Flag;
#define CLAIM(f) (__atomic_exchange_n((f), 1, __ATOMIC_ACQUIRE) == 0)
#define RELEASE(f) __atomic_store_n((f), 0, __ATOMIC_RELEASE)
#define THREAD_LOCAL __thread
#define YIELD() sched_yield()
#endif

/* nutpie reads a positive code as a point where the density cannot be
 * evaluated (the step is rejected, as a divergence), anything else non-zero as
 * a failure that ends sampling. */
enum { NUTPIE_OK = 0, NUTPIE_NOT_FINITE = 1, NUTPIE_BAD_DIM = -1 };

/* A slot per cache line pair: threads claiming neighbouring flags would
 * otherwise write to one line on every evaluation. */
typedef struct {
    volatile Flag busy;
    Work work;
    char pad[128];
} Slot;

struct HbPool {
    const Model *d;
    int64_t n;
    Slot *slots;
};

static THREAD_LOCAL int64_t last_slot;

HbPool *hb_pool_new(const Model *d, int64_t n, int *status) {
    HbPool *p = calloc(1, sizeof(HbPool));
    if (p == NULL || n < 1 || (p->slots = calloc((size_t)n, sizeof(Slot))) == NULL) {
        free(p);
        *status = n < 1 ? HB_BAD_MODEL : HB_NOMEM;
        return NULL;
    }
    p->d = d;
    p->n = n;
    *status = HB_OK;
    for (int64_t i = 0; i < n && *status == HB_OK; i++) *status = work_alloc(&p->slots[i].work, d);
    if (*status != HB_OK) {
        hb_pool_free(p);
        return NULL;
    }
    return p;
}

void hb_pool_free(HbPool *p) {
    if (p == NULL) return;
    /* calloc'd slots: work_free is safe on a Work that work_alloc never saw */
    for (int64_t i = 0; i < p->n; i++) work_free(&p->slots[i].work);
    free(p->slots);
    free(p);
}

static Slot *claim(HbPool *p) {
    int64_t n = p->n, i = last_slot < n ? last_slot : 0;
    for (;;) {
        for (int64_t k = 0; k < n; k++, i = i + 1 < n ? i + 1 : 0)
            if (CLAIM(&p->slots[i].busy)) {
                last_slot = i;
                return &p->slots[i];
            }
        YIELD();
    }
}

int hb_nutpie_logp(size_t dim, const double *x, double *grad, double *logp, const void *user_data) {
    HbPool *p = (HbPool *)user_data;
    if ((int64_t)dim != p->d->dim) return NUTPIE_BAD_DIM;
    Slot *s = claim(p);
    double lp = density(p->d, x, grad, &s->work);
    RELEASE(&s->busy);
    *logp = lp;
    if (!isfinite(lp)) return NUTPIE_NOT_FINITE;
    for (size_t i = 0; i < dim; i++)
        if (!isfinite(grad[i])) return NUTPIE_NOT_FINITE;
    return NUTPIE_OK;
}

/* A draw is kept as nutpie gives it, unconstrained: Python constrains the
 * draws after sampling, as it does our own sampler's (hierbayes.bayes.pack). */
int hb_nutpie_expand(size_t dim, size_t n_expanded, const double *x, double *out, const void *user_data) {
    const HbPool *p = (const HbPool *)user_data;
    if ((int64_t)dim != p->d->dim || n_expanded != dim) return NUTPIE_BAD_DIM;
    memcpy(out, x, dim * sizeof(double));
    return NUTPIE_OK;
}
