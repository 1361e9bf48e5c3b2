/*
 * ttpr.c — marker emitters for instrumented programs.
 *
 * A marker holds an atomic pointer to its target list (the channels its
 * events go to, computed by the daemon from trace filters and routing).
 * The probe's control thread swaps in a new list when the daemon says so
 * and frees the old one after a grace period; writers load it once per
 * event (acquire) and never block.  Encoding happens directly in each
 * target's reservation: no intermediate buffer, no allocation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ttrb.h"
#include "ttpr.h"

struct ttpr_targets {
    uint32_t n;
    struct ttrb_chan *chan[];
};

#define unlikely(x) __builtin_expect(!!(x), 0)

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
 * Encode the fields from @iv (integers, in order) and @sv (strings, in
 * order) into every target.  @slen holds the string lengths + 1.
 */
static inline int emit_fields_(struct ttpr_marker *m, const int64_t *iv, uint32_t ni,
                                const char *const *sv, uint32_t ns, int checked)
{
    struct ttpr_targets *t = atomic_load_explicit(tp(m), memory_order_acquire);
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
encode:
    if (!t)
        return 0;
    int lost = 0;
    for (uint32_t k = 0; k < t->n; k++) {
        struct ttrb_resv r;
        if (ttrb_reserve(t->chan[k], -1, m->id, len, &r)) {
            lost++;
            continue;
        }
        char *p = r.payload;
        uint32_t i = 0, s = 0;
        for (uint32_t f = 0; f < m->nfields; f++) {
            uint8_t ty = m->types[f];
            if (ty == TTPR_STR) {
                memcpy(p, sv[s], slen[s]);
                p += slen[s++];
            } else {
                int64_t v = iv[i++];
                switch (type_size[ty]) {
                case 1: *p = (char)v; break;
                case 4: { uint32_t u = (uint32_t)v; memcpy(p, &u, 4); break; }
                default: memcpy(p, &v, 8); break;
                }
                p += type_size[ty];
            }
        }
        ttrb_commit(&r);
    }
    return lost;
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
    struct ttpr_targets *t = atomic_load_explicit(tp(m), memory_order_acquire);
    int lost = 0;
    for (uint32_t k = 0; t && k < t->n; k++)
        lost += ttrb_write(t->chan[k], m->id, payload, len) != 0;
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
