/*
 * ttpr.c — marker emitters for instrumented programs.
 *
 * A marker holds an atomic pointer to its target list (the channels its
 * events go to, computed by the daemon from trace filters and routing).
 * The probe's control thread swaps in a new list when the daemon says so
 * and frees the old one after a grace period; writers load it once per
 * event (acquire) and never block.  Encoding happens directly in each
 * target's reservation: no intermediate buffer, no allocation.
 *
 * Quiescence (ttpr_synchronize).  Every emit runs inside a read-side
 * section, LTTng-UST / urcu "memb" style: each thread owns a reader node
 * (registered lock-free at its first emit, handed back at thread exit and
 * reused, never freed) whose sequence number is odd while an emit of that
 * thread runs.  Entering costs a thread-local load, one relaxed store and
 * a compiler barrier; the store-load ordering an RCU reader needs is
 * supplied by the synchronizing side with
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which runs a full barrier on
 * every CPU running a thread of this process.  synchronize then waits for
 * each node that was odd to change: an emit that started after the barrier
 * already sees the new target list, so a thread emitting without pause never
 * starves it.  Where the kernel lacks membarrier, emitters use a seq_cst
 * fence instead (slower, still correct).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ttrb.h"
#include "ttpr.h"

struct ttpr_targets {
    uint32_t n;
    struct ttrb_chan *chan[];
};

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* ---- read-side sections and ttpr_synchronize ------------------------------ */

struct reader {
    _Atomic uint64_t seq;       /* odd while an emit of the owning thread runs */
    _Atomic int in_use;         /* owned by a live thread */
    struct reader *next;        /* immutable once pushed; nodes are never freed */
} __attribute__((aligned(64))); /* a cache line each: threads never share one */

#define STATIC_READERS 64
static struct reader static_readers[STATIC_READERS];
static _Atomic uint32_t static_used;
static struct reader *_Atomic readers;
static pthread_key_t reader_key;
static pthread_once_t reader_once = PTHREAD_ONCE_INIT;
static int use_membarrier;
static int fence_readers;  /* no membarrier: emitters fence themselves */
static _Atomic int test_hold;
static _Atomic int test_held;

/* initial-exec: no __tls_get_addr call on the emit path (a few bytes of the
 * static TLS surplus glibc keeps for dlopen'ed modules). */
static __thread struct reader *tls_reader __attribute__((tls_model("initial-exec")));

static int membarrier_register(void)
{
    return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

static void reader_exit(void *p)
{
    struct reader *r = p;
    tls_reader = NULL;
    atomic_store_explicit(&r->in_use, 0, memory_order_release);
}

/* In a forked child only the forking thread exists: the others' nodes are
 * free, and an emit they were in the middle of will never finish. */
static void reader_atfork_child(void)
{
    for (struct reader *r = atomic_load(&readers); r; r = r->next) {
        if (r == tls_reader)
            continue;
        uint64_t s = atomic_load_explicit(&r->seq, memory_order_relaxed);
        if (s & 1)
            atomic_store_explicit(&r->seq, s + 1, memory_order_relaxed);
        atomic_store_explicit(&r->in_use, 0, memory_order_relaxed);
    }
    /* membarrier registration belongs to the address space: not inherited. */
    if (use_membarrier && !membarrier_register()) {
        use_membarrier = 0;
        fence_readers = 1;
    }
}

static void reader_init(void)
{
    pthread_key_create(&reader_key, reader_exit);
    use_membarrier = membarrier_register();
    fence_readers = !use_membarrier;
    pthread_atfork(NULL, NULL, reader_atfork_child);
}

static __attribute__((noinline)) struct reader *reader_register(void)
{
    pthread_once(&reader_once, reader_init);
    struct reader *r;
    for (r = atomic_load_explicit(&readers, memory_order_acquire); r; r = r->next) {
        int free_ = 0;
        if (atomic_compare_exchange_strong(&r->in_use, &free_, 1))
            goto own;
    }
    uint32_t i = atomic_fetch_add(&static_used, 1);
    r = i < STATIC_READERS ? &static_readers[i] : aligned_alloc(64, sizeof(*r));
    if (!r)
        return NULL;
    if (i >= STATIC_READERS)
        memset(r, 0, sizeof(*r));
    atomic_store(&r->in_use, 1);
    r->next = atomic_load(&readers);
    while (!atomic_compare_exchange_weak_explicit(&readers, &r->next, r, memory_order_release,
                                                  memory_order_relaxed))
        ;
own:
    pthread_setspecific(reader_key, r);
    tls_reader = r;
    return r;
}

/* A read-side section.  Nesting (an emit from a signal handler that
 * interrupted an emit) needs no counter: the inner section finds the
 * sequence odd already and leaves it alone. */
struct rd {
    struct reader *r;
    uint64_t seq;   /* odd value this section set; 0 if nested or none */
};

/* Enter; 0 if no node can be had (no memory: the emit is skipped). */
static inline __attribute__((always_inline)) int rd_enter(struct rd *d)
{
    struct reader *r = tls_reader;
    if (unlikely(!r)) {
        r = reader_register();
        if (!r)
            return 0;
    }
    uint64_t s = atomic_load_explicit(&r->seq, memory_order_relaxed);
    d->r = r;
    d->seq = 0;
    if (likely(!(s & 1))) {
        d->seq = s + 1;
        atomic_store_explicit(&r->seq, s + 1, memory_order_relaxed);
        if (unlikely(fence_readers))
            atomic_thread_fence(memory_order_seq_cst);
        else
            atomic_signal_fence(memory_order_seq_cst);
    }
    return 1;
}

static inline __attribute__((always_inline)) void rd_exit(const struct rd *d)
{
    /* Release: every access to the target list and every commit happen
     * before the synchronizer sees this section end. */
    if (likely(d->seq))
        atomic_store_explicit(&d->r->seq, d->seq + 1, memory_order_release);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int ttpr_synchronize(uint64_t timeout_ns)
{
    pthread_once(&reader_once, reader_init);
    if (!use_membarrier ||
        syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        atomic_thread_fence(memory_order_seq_cst);
    uint64_t deadline = mono_ns() + timeout_ns;
    for (struct reader *r = atomic_load_explicit(&readers, memory_order_acquire); r;
         r = r->next) {
        uint64_t s = atomic_load_explicit(&r->seq, memory_order_acquire);
        if (r == tls_reader && (s & 1))
            continue; /* called from inside an emit of this thread */
        if (!(s & 1))
            continue;
        for (unsigned spin = 0;
             atomic_load_explicit(&r->seq, memory_order_acquire) == s; spin++) {
            if (mono_ns() >= deadline)
                return -ETIMEDOUT;
            if (spin < 64) {
                sched_yield();
            } else {
                struct timespec d = {0, 100000};
                nanosleep(&d, NULL);
            }
        }
    }
    atomic_thread_fence(memory_order_seq_cst);
    return 0;
}

int ttpr_test_hold(int hold)
{
    atomic_store(&test_hold, hold ? 1 : 0);
    return 0;
}

int ttpr_test_held(void) { return atomic_load(&test_held); }

static __attribute__((noinline)) void test_hold_here(void)
{
    atomic_fetch_add(&test_held, 1);
    while (atomic_load(&test_hold)) {
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
    atomic_fetch_sub(&test_held, 1);
}

static inline _Atomic uint64_t *early(struct ttpr_marker *m)
{
    return (_Atomic uint64_t *)&m->early_;
}

static inline _Atomic(struct ttpr_targets *) *tp(struct ttpr_marker *m)
{
    return (_Atomic(struct ttpr_targets *) *)&m->targets_;
}

struct ttpr_targets *ttpr_targets_new(uint32_t n)
{
    struct ttpr_targets *t = calloc(1, sizeof(*t) + n * sizeof(t->chan[0]));
    if (t)
        t->n = n;
    return t;
}

void ttpr_targets_set(struct ttpr_targets *t, uint32_t i, struct ttrb_chan *chan)
{
    if (i < t->n)
        t->chan[i] = chan;
}

void ttpr_targets_free(struct ttpr_targets *t) { free(t); }

static const uint8_t type_size[] = {
    [TTPR_I32] = 4, [TTPR_U32] = 4, [TTPR_I64] = 8, [TTPR_U64] = 8, [TTPR_X32] = 4,
    [TTPR_PTR] = 8, [TTPR_STR] = 0, [TTPR_CHAR] = 1, [TTPR_F64] = 8,
};

int ttpr_marker_init(struct ttpr_marker *m, uint16_t id, const uint8_t *types, uint32_t n)
{
    if (n > TTPR_MAX_FIELDS)
        return -EINVAL;
    for (uint32_t i = 0; i < n; i++)
        if (types[i] < TTPR_I32 || types[i] > TTPR_F64)
            return -EINVAL;
    atomic_store(tp(m), NULL);
    m->count_early = 0;
    atomic_store(early(m), 0);
    m->id = id;
    m->nfields = (uint8_t)n;
    memcpy(m->types, types, n);
    m->fixed_len = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (types[i] == TTPR_STR) {
            m->fixed_len = 0;
            break;
        }
        m->fixed_len += type_size[types[i]];
    }
    return 0;
}

struct ttpr_targets *ttpr_marker_swap(struct ttpr_marker *m, struct ttpr_targets *t)
{
    return atomic_exchange_explicit(tp(m), t, memory_order_acq_rel);
}

void ttpr_marker_set_id(struct ttpr_marker *m, uint16_t id) { m->id = id; }

void ttpr_marker_count_early(struct ttpr_marker *m, int on)
{
    __atomic_store_n(&m->count_early, on ? 1u : 0u, __ATOMIC_RELAXED);
}

uint64_t ttpr_marker_take_early(struct ttpr_marker *m)
{
    return atomic_exchange(early(m), 0);
}

static __attribute__((noinline)) void count_early(struct ttpr_marker *m)
{
    atomic_fetch_add_explicit(early(m), 1, memory_order_relaxed);
}


static inline int in_range(uint8_t type, int64_t v)
{
    switch (type) {
    case TTPR_I32:
        return v >= INT32_MIN && v <= INT32_MAX;
    case TTPR_U32:
    case TTPR_X32:
        return v >= 0 && v <= (int64_t)UINT32_MAX;
    case TTPR_CHAR:
        return v >= 0 && v <= 255;
    case TTPR_U64:
    case TTPR_PTR:
        return v >= 0;
    default:
        return 1;
    }
}

/*
 * The one path from a marker to its channels, as a walk the emitters drive:
 *
 *     struct walk w;
 *     if (!walk_begin(m, &w)) return 0;          // no targets yet: counted early
 *     while (walk_next(&w, m, len)) {            // a reservation in each target
 *         ... fill w.r.payload ...
 *         walk_commit(&w);
 *     }
 *     return walk_end(&w);                       // targets that refused the record
 *
 * A walk, not a callback, so a writer that reads a va_list stays inlined.
 */
struct walk {
    struct rd d;
    struct ttpr_targets *t;
    uint32_t k;
    int lost;
    struct ttrb_resv r;
};

static inline __attribute__((always_inline)) int walk_begin(struct ttpr_marker *m,
                                                           struct walk *w)
{
    if (unlikely(!rd_enter(&w->d)))
        return 0;
    w->t = atomic_load_explicit(tp(m), memory_order_acquire);
    if (!w->t) {
        if (unlikely(__atomic_load_n(&m->count_early, __ATOMIC_RELAXED)))
            count_early(m);
        rd_exit(&w->d);
        return 0;
    }
    w->k = 0;
    w->lost = 0;
    return 1;
}

static inline __attribute__((always_inline)) int walk_next(struct walk *w,
                                                          const struct ttpr_marker *m,
                                                          uint32_t len)
{
    while (w->k < w->t->n) {
        if (!ttrb_reserve(w->t->chan[w->k++], -1, m->id, len, &w->r))
            return 1;
        w->lost++; /* the target's loss counters hold the record */
    }
    return 0;
}

static inline __attribute__((always_inline)) void walk_commit(struct walk *w)
{
    if (unlikely(atomic_load_explicit(&test_hold, memory_order_relaxed)))
        test_hold_here(); /* tests only: a writer held between reserve and commit */
    ttrb_commit(&w->r);
}

static inline __attribute__((always_inline)) int walk_end(struct walk *w)
{
    rd_exit(&w->d);
    return w->lost;
}

/* Store a fixed-size field's value (its low bytes; a double's bits) at @p. */
static inline __attribute__((always_inline)) char *put_fixed(char *p, uint8_t ty, uint64_t v)
{
    switch (type_size[ty]) {
    case 1:
        *p = (char)v;
        break;
    case 4: {
        uint32_t u = (uint32_t)v;
        memcpy(p, &u, 4);
        break;
    }
    default:
        memcpy(p, &v, 8);
        break;
    }
    return p + type_size[ty];
}

/*
 * Encode the fields from @iv (integers, in order) and @sv (strings, in
 * order) into every target.  @slen holds the string lengths + 1.
 */
static inline int emit_fields_(struct ttpr_marker *m, const int64_t *iv, uint32_t ni,
                                const char *const *sv, uint32_t ns, int checked)
{
    uint32_t len = 0, nint = 0, nstr = 0;
    uint32_t slen[2];
    if (!checked && m->fixed_len && ni == m->nfields && !ns) {
        /* Typed emitters: cffi checked every value; the length is known. */
        len = m->fixed_len;
        nint = ni;
        goto encode;
    }
    for (uint32_t f = 0; f < m->nfields; f++) {
        uint8_t ty = m->types[f];
        if (ty == TTPR_STR) {
            if (nstr >= ns || !sv[nstr])
                return -ERANGE;
            slen[nstr] = (uint32_t)strlen(sv[nstr]) + 1;
            len += slen[nstr++];
        } else {
            if (ty == TTPR_F64 || nint >= ni || (checked && !in_range(ty, iv[nint])))
                return -ERANGE;
            nint++;
            len += type_size[ty];
        }
    }
    if (nint != ni || nstr != ns)
        return -ERANGE;
encode:;
    struct walk w;
    if (!walk_begin(m, &w))
        return 0;
    while (walk_next(&w, m, len)) {
        char *p = w.r.payload;
        uint32_t i = 0, s = 0;
        for (uint32_t f = 0; f < m->nfields; f++) {
            uint8_t ty = m->types[f];
            if (ty == TTPR_STR) {
                memcpy(p, sv[s], slen[s]);
                p += slen[s++];
            } else {
                p = put_fixed(p, ty, (uint64_t)iv[i++]);
            }
        }
        walk_commit(&w);
    }
    return walk_end(&w);
}

static int emit_fields(struct ttpr_marker *m, const int64_t *iv, uint32_t ni,
                       const char *const *sv, uint32_t ns)
{
    return emit_fields_(m, iv, ni, sv, ns, 1);
}

/* For the typed emitters build.py generates: cffi has range-checked every
 * argument against its C parameter type already. */
int ttpr_emit_raw(struct ttpr_marker *m, const int64_t *iv, uint32_t ni)
{
    return emit_fields_(m, iv, ni, NULL, 0, 0);
}

int ttpr_emit_bytes(struct ttpr_marker *m, const char *payload, uint32_t len)
{
    struct rd d;
    if (unlikely(!rd_enter(&d)))
        return 0;
    struct ttpr_targets *t = atomic_load_explicit(tp(m), memory_order_acquire);
    if (!t && unlikely(__atomic_load_n(&m->count_early, __ATOMIC_RELAXED)))
        count_early(m);
    int lost = 0;
    for (uint32_t k = 0; t && k < t->n; k++) {
        if (likely(!atomic_load_explicit(&test_hold, memory_order_relaxed))) {
            lost += ttrb_write(t->chan[k], m->id, payload, len) != 0;
            continue;
        }
        /* Tests only: the same write, held between reserve and commit. */
        struct ttrb_resv r;
        if (ttrb_reserve(t->chan[k], -1, m->id, len, &r)) {
            lost++;
            continue;
        }
        memcpy(r.payload, payload, len);
        test_hold_here();
        ttrb_commit(&r);
    }
    rd_exit(&d);
    return lost;
}

int ttpr_emit_i1(struct ttpr_marker *m, int64_t a)
{
    int64_t iv[1] = {a};
    return emit_fields(m, iv, 1, NULL, 0);
}

int ttpr_emit_i2(struct ttpr_marker *m, int64_t a, int64_t b)
{
    int64_t iv[2] = {a, b};
    return emit_fields(m, iv, 2, NULL, 0);
}

int ttpr_emit_i3(struct ttpr_marker *m, int64_t a, int64_t b, int64_t c)
{
    int64_t iv[3] = {a, b, c};
    return emit_fields(m, iv, 3, NULL, 0);
}

int ttpr_emit_i4(struct ttpr_marker *m, int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t iv[4] = {a, b, c, d};
    return emit_fields(m, iv, 4, NULL, 0);
}

int ttpr_emit_s1(struct ttpr_marker *m, const char *s)
{
    const char *sv[1] = {s};
    return emit_fields(m, NULL, 0, sv, 1);
}

int ttpr_emit_i1s1(struct ttpr_marker *m, int64_t a, const char *s)
{
    int64_t iv[1] = {a};
    const char *sv[1] = {s};
    return emit_fields(m, iv, 1, sv, 1);
}

int ttpr_emit_i2s1(struct ttpr_marker *m, int64_t a, int64_t b, const char *s)
{
    int64_t iv[2] = {a, b};
    const char *sv[1] = {s};
    return emit_fields(m, iv, 2, sv, 1);
}

int ttpr_emit_i3s1(struct ttpr_marker *m, int64_t a, int64_t b, int64_t c, const char *s)
{
    int64_t iv[3] = {a, b, c};
    const char *sv[1] = {s};
    return emit_fields(m, iv, 3, sv, 1);
}

int ttpr_emit_i2s2(struct ttpr_marker *m, int64_t a, int64_t b, const char *s, const char *u)
{
    int64_t iv[2] = {a, b};
    const char *sv[2] = {s, u};
    return emit_fields(m, iv, 2, sv, 2);
}

/* ---- the C API's emitter (ttpr_va.h) -------------------------------------- */

#include <stdarg.h>
#include "ttpr_va.h"

int ttpr_marker_wanted(struct ttpr_marker *m)
{
    return atomic_load_explicit(tp(m), memory_order_relaxed) != NULL ||
           __atomic_load_n(&m->count_early, __ATOMIC_RELAXED);
}

/* The arguments are read once, straight from the caller's va_list, into 64-bit values (a
 * va_copy per target made the copy's 16-byte load wait on va_start's smaller stores: a
 * store-forwarding stall that cost about a fifth of an event), then written to each target. */
int ttpr_emit_va(struct ttpr_marker *m, va_list ap)
{
    uint64_t v[TTPR_MAX_FIELDS];
    uint32_t slen[TTPR_MAX_FIELDS];
    uint32_t len = 0;
    const uint32_t n = m->nfields;
    for (uint32_t f = 0; f < n; f++) {
        uint8_t ty = m->types[f];
        switch (ty) {
        case TTPR_I32:
        case TTPR_U32:
        case TTPR_X32:
            v[f] = (uint32_t)va_arg(ap, unsigned int);
            break;
        case TTPR_CHAR:
            v[f] = (unsigned char)va_arg(ap, int);
            break;
        case TTPR_PTR:
            v[f] = (uint64_t)(uintptr_t)va_arg(ap, void *);
            break;
        case TTPR_F64: {
            double d = va_arg(ap, double);
            memcpy(&v[f], &d, 8);
            break;
        }
        case TTPR_STR: {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            v[f] = (uint64_t)(uintptr_t)str;
            slen[f] = (uint32_t)strlen(str) + 1;
            len += slen[f];
            continue;
        }
        default:
            v[f] = (uint64_t)va_arg(ap, unsigned long long);
            break;
        }
        len += type_size[ty];
    }
    struct walk w;
    if (!walk_begin(m, &w))
        return 0;
    while (walk_next(&w, m, len)) {
        char *p = w.r.payload;
        for (uint32_t f = 0; f < n; f++) {
            if (m->types[f] == TTPR_STR) {
                memcpy(p, (const char *)(uintptr_t)v[f], slen[f]);
                p += slen[f];
            } else {
                p = put_fixed(p, m->types[f], v[f]);
            }
        }
        walk_commit(&w);
    }
    return walk_end(&w);
}
