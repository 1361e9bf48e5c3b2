/*
 * ttdec.c — tracetui.core.trace._ttdec: tracetui's packet records decoded in C for the
 * explorer's scans (statistics, filters), without a Python object per event.
 *
 * A Layout is built in Python (tracetui/core/trace/native.py) from a stream's marker table:
 * per event id, the fields' type codes, derived from the one field-type table
 * (tracetui/core/model/fields.py: size, signedness and kind).  The record walk is the one of
 * tracetui/core/trace/packets.py (``u16 id | u64 tsc | payload``, little endian, no padding;
 * strings NUL-terminated) and fails the same way: a record that does not fit raises
 * ValueError("the record at byte N is cut short"), an undeclared id ValueError("event id I at
 * byte N is not declared in the metadata"); the glue turns them into CorruptRecord.
 *
 * A Filter is an EventFilter compiled per event class by native.py (only the shapes C
 * evaluates exactly: integer, float and string comparisons, and/or/not; pseudo-fields and
 * type mismatches are folded to constants there).  Strings compare by their UTF-8 bytes,
 * which orders as code points do; a string that is not valid UTF-8 is decoded as Python
 * does ("replace") and compared by Python, so results are always those of the Python path.
 *
 * Times: ns = mono_ns0 + (int64)((double)(tsc - tsc0) * 1e9 / (double)freq), the expression
 * of TraceClock.mono_ns evaluated in the same doubles.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_HEADER 10

static PyTypeObject LayoutType;

/* Field kinds (native.py KIND_CODES, from FieldType.kind). */
enum { K_INT = 0, K_CHAR = 1, K_FLOAT = 2, K_STR = 3 };

typedef struct {
    uint8_t kind, size, sign;
} ftype;

typedef struct {
    int declared;
    int nf;
    int fixed; /* payload bytes when every field has a fixed size, else -1 */
    ftype *f;
    Py_ssize_t *off; /* fixed layouts: each field's offset in the payload */
} eclass;

typedef struct {
    PyObject_HEAD
    int nids;
    int maxf;
    eclass *cls;
} Layout;

static void layout_free(Layout *L) {
    if (L->cls) {
        for (int i = 0; i < L->nids; i++) {
            free(L->cls[i].f);
            free(L->cls[i].off);
        }
        free(L->cls);
        L->cls = NULL;
    }
}

static void Layout_dealloc(Layout *self) {
    layout_free(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Layout([(id, ((kind, size, signed), ...)), ...]) */
static int Layout_init(Layout *self, PyObject *args, PyObject *kw) {
    PyObject *entries;
    (void)kw;
    if (!PyArg_ParseTuple(args, "O", &entries)) return -1;
    PyObject *seq = PySequence_Fast(entries, "Layout takes a sequence of (id, fields)");
    if (!seq) return -1;
    layout_free(self);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int maxid = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PySequence_Fast_GET_ITEM(seq, i);
        long id;
        PyObject *fields;
        if (!PyArg_ParseTuple(e, "lO", &id, &fields)) goto fail;
        if (id < 0 || id > 0xFFFF) {
            PyErr_SetString(PyExc_ValueError, "event id out of range");
            goto fail;
        }
        if (id > maxid) maxid = (int)id;
    }
    self->nids = maxid + 1;
    self->maxf = 0;
    self->cls = calloc(self->nids > 0 ? self->nids : 1, sizeof(eclass));
    if (!self->cls) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PySequence_Fast_GET_ITEM(seq, i);
        long id;
        PyObject *fields;
        if (!PyArg_ParseTuple(e, "lO", &id, &fields)) goto fail;
        PyObject *fs = PySequence_Fast(fields, "fields must be a sequence");
        if (!fs) goto fail;
        eclass *c = &self->cls[id];
        Py_ssize_t nf = PySequence_Fast_GET_SIZE(fs);
        free(c->f);
        free(c->off);
        c->declared = 1;
        c->nf = (int)nf;
        c->f = calloc(nf ? nf : 1, sizeof(ftype));
        c->off = calloc(nf ? nf : 1, sizeof(Py_ssize_t));
        if (!c->f || !c->off) {
            Py_DECREF(fs);
            PyErr_NoMemory();
            goto fail;
        }
        int fixed = 0;
        for (Py_ssize_t j = 0; j < nf; j++) {
            int kind, size, sign;
            if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fs, j), "iip", &kind, &size, &sign)) {
                Py_DECREF(fs);
                goto fail;
            }
            int ok = (kind == K_STR && size == 0) || (kind == K_CHAR && size == 1) ||
                     (kind == K_FLOAT && size == 8) ||
                     (kind == K_INT && (size == 1 || size == 2 || size == 4 || size == 8));
            if (!ok) {
                Py_DECREF(fs);
                PyErr_Format(PyExc_ValueError, "field type (%d, %d) is not decoded in C", kind,
                             size);
                goto fail;
            }
            c->f[j].kind = (uint8_t)kind;
            c->f[j].size = (uint8_t)size;
            c->f[j].sign = (uint8_t)sign;
            if (fixed >= 0) {
                if (kind == K_STR) {
                    fixed = -1;
                } else {
                    c->off[j] = fixed;
                    fixed += size;
                }
            }
        }
        c->fixed = fixed;
        if (nf > self->maxf) self->maxf = (int)nf;
        Py_DECREF(fs);
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    layout_free(self);
    return -1;
}

/* One record at pos: its class, tsc and the position after it; field offsets (absolute) into
 * OFF when not NULL.  0: ok, -1: cut short, -2: undeclared id (in *eid). */
static inline int walk(const Layout *L, const uint8_t *b, Py_ssize_t end, Py_ssize_t pos,
                       const eclass **out, uint64_t *tsc, Py_ssize_t *next, Py_ssize_t *off,
                       unsigned *eid) {
    if (pos + EVENT_HEADER > end) return -1;
    unsigned id = (unsigned)b[pos] | ((unsigned)b[pos + 1] << 8);
    *eid = id;
    if ((int)id >= L->nids || !L->cls[id].declared) return -2;
    const eclass *c = &L->cls[id];
    uint64_t t;
    memcpy(&t, b + pos + 2, 8); /* little endian hosts only (setup: x86_64, aarch64) */
    *tsc = t;
    Py_ssize_t p = pos + EVENT_HEADER;
    if (c->fixed >= 0) {
        if (p + c->fixed > end) return -1;
        if (off)
            for (int j = 0; j < c->nf; j++) off[j] = p + c->off[j];
        *next = p + c->fixed;
    } else {
        for (int j = 0; j < c->nf; j++) {
            if (off) off[j] = p;
            if (c->f[j].kind == K_STR) {
                const uint8_t *z = p < end ? memchr(b + p, 0, (size_t)(end - p)) : NULL;
                if (!z) return -1;
                p = (z - b) + 1;
            } else {
                if (p + c->f[j].size > end) return -1;
                p += c->f[j].size;
            }
        }
        *next = p;
    }
    *out = c;
    return 0;
}

static void walk_error(int rc, Py_ssize_t pos, unsigned eid) {
    if (rc == -2)
        PyErr_Format(PyExc_ValueError, "event id %u at byte %zd is not declared in the metadata",
                     eid, pos);
    else
        PyErr_Format(PyExc_ValueError, "the record at byte %zd is cut short", pos);
}

/* stats(buf, start) -> ({id: count}, events, first_tsc, last_tsc) (tscs None when empty) */
static PyObject *Layout_stats(Layout *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "y*n", &view, &start)) return NULL;
    const uint8_t *b = view.buf;
    Py_ssize_t end = view.len, pos = start;
    Py_ssize_t *counts = calloc(self->nids ? self->nids : 1, sizeof(Py_ssize_t));
    int *order = malloc(sizeof(int) * (size_t)(self->nids ? self->nids : 1));
    int norder = 0;
    PyObject *res = NULL;
    if (!counts || !order) {
        free(counts);
        free(order);
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    Py_ssize_t n = 0;
    uint64_t first = 0, last = 0, tsc;
    const eclass *c;
    unsigned eid = 0;
    Py_BEGIN_ALLOW_THREADS;
    while (pos < end) {
        Py_ssize_t next;
        int rc = walk(self, b, end, pos, &c, &tsc, &next, NULL, &eid);
        if (rc) {
            n = -1 + rc; /* -2 cut short, -3 undeclared */
            break;
        }
        if (!counts[eid]++) order[norder++] = (int)eid;
        if (!n) first = tsc;
        last = tsc;
        n++;
        pos = next;
    }
    Py_END_ALLOW_THREADS;
    if (n < 0) {
        walk_error(n == -3 ? -2 : -1, pos, eid);
        goto out;
    }
    PyObject *d = PyDict_New();
    if (!d) goto out;
    for (int j = 0; j < norder; j++) { /* first-seen order, as a Counter of the items */
        int i = order[j];
        PyObject *k = PyLong_FromLong(i), *v = PyLong_FromSsize_t(counts[i]);
        int bad = !k || !v || PyDict_SetItem(d, k, v);
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (bad) {
            Py_DECREF(d);
            goto out;
        }
    }
    if (n)
        res = Py_BuildValue("NnKK", d, n, (unsigned long long)first, (unsigned long long)last);
    else
        res = Py_BuildValue("NnOO", d, n, Py_None, Py_None);
out:
    free(counts);
    free(order);
    PyBuffer_Release(&view);
    return res;
}

/* -- filters ------------------------------------------------------------------------ */

enum { N_FALSE, N_TRUE, N_AND, N_OR, N_NOT, N_INT, N_FLOAT, N_STR };
enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

typedef struct {
    int type, a, b; /* children (node indices) */
    int field, op;
    __int128 ival;
    double dval;
    const char *s;
    Py_ssize_t slen;
    PyObject *pystr; /* the constant as str, for strings that are not valid UTF-8 */
} node;

typedef struct {
    PyObject_HEAD
    Layout *layout;
    int nids;
    int *root; /* per id: -1 false, -2 true, else a node index */
    node *nodes;
    int nnodes, cap;
    PyObject *keep; /* list: the constants the nodes point into */
} Filter;

static void Filter_dealloc(Filter *self) {
    Py_XDECREF(self->layout);
    Py_XDECREF(self->keep);
    free(self->root);
    free(self->nodes);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int op_code(PyObject *o) {
    const char *s = PyUnicode_AsUTF8(o);
    if (!s) return -1;
    static const char *ops[] = {"==", "!=", "<", "<=", ">", ">="};
    for (int i = 0; i < 6; i++)
        if (!strcmp(s, ops[i])) return i;
    PyErr_Format(PyExc_ValueError, "unknown operator %s", s);
    return -1;
}

static int int128_of(PyObject *o, __int128 *out) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (!overflow) {
        *out = v;
        return 0;
    }
    unsigned long long u = PyLong_AsUnsignedLongLong(o);
    if (u == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    *out = (__int128)u;
    return 0;
}

/* A tree from native.py: True/False, ("and"|"or", a, b), ("not", a),
 * ("i"|"f"|"s", field, op, const).  Returns the node index or -1 (error). */
static int build(Filter *F, PyObject *t) {
    if (F->nnodes == F->cap) {
        int cap = F->cap ? F->cap * 2 : 16;
        node *nn = realloc(F->nodes, (size_t)cap * sizeof(node));
        if (!nn) {
            PyErr_NoMemory();
            return -1;
        }
        F->nodes = nn;
        F->cap = cap;
    }
    int me = F->nnodes++;
    memset(&F->nodes[me], 0, sizeof(node));
    if (t == Py_True || t == Py_False) {
        F->nodes[me].type = t == Py_True ? N_TRUE : N_FALSE;
        return me;
    }
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < 2) {
        PyErr_SetString(PyExc_ValueError, "bad filter node");
        return -1;
    }
    const char *k = PyUnicode_AsUTF8(PyTuple_GET_ITEM(t, 0));
    if (!k) return -1;
    if (!strcmp(k, "and") || !strcmp(k, "or")) {
        if (PyTuple_GET_SIZE(t) != 3) goto bad;
        int a = build(F, PyTuple_GET_ITEM(t, 1));
        if (a < 0) return -1;
        int b = build(F, PyTuple_GET_ITEM(t, 2));
        if (b < 0) return -1;
        node *n = &F->nodes[me];
        n->type = k[0] == 'a' ? N_AND : N_OR;
        n->a = a;
        n->b = b;
        return me;
    }
    if (!strcmp(k, "not")) {
        int a = build(F, PyTuple_GET_ITEM(t, 1));
        if (a < 0) return -1;
        F->nodes[me].type = N_NOT;
        F->nodes[me].a = a;
        return me;
    }
    if (PyTuple_GET_SIZE(t) != 4) goto bad;
    long field = PyLong_AsLong(PyTuple_GET_ITEM(t, 1));
    if (field < 0) {
        if (!PyErr_Occurred()) goto bad;
        return -1;
    }
    int op = op_code(PyTuple_GET_ITEM(t, 2));
    if (op < 0) return -1;
    PyObject *c = PyTuple_GET_ITEM(t, 3);
    node *n = &F->nodes[me];
    n->field = (int)field;
    n->op = op;
    if (!strcmp(k, "i")) {
        n->type = N_INT;
        if (int128_of(c, &n->ival)) return -1;
    } else if (!strcmp(k, "f")) {
        n->type = N_FLOAT;
        n->dval = PyFloat_AsDouble(c);
        if (n->dval == -1.0 && PyErr_Occurred()) return -1;
    } else if (!strcmp(k, "s")) {
        n->type = N_STR;
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(c, &len);
        if (!s) return -1;
        if (PyList_Append(F->keep, c)) return -1;
        n->s = s;
        n->slen = len;
        n->pystr = c;
    } else {
        goto bad;
    }
    return me;
bad:
    PyErr_SetString(PyExc_ValueError, "bad filter node");
    return -1;
}

/* Filter(layout, {id: tree}) */
static int Filter_init(Filter *self, PyObject *args, PyObject *kw) {
    Layout *L;
    PyObject *trees;
    (void)kw;
    if (!PyArg_ParseTuple(args, "O!O!", &LayoutType, &L, &PyDict_Type, &trees)) return -1;
    Py_INCREF(L);
    Py_XSETREF(self->layout, L);
    self->nids = L->nids;
    free(self->root);
    self->root = malloc(sizeof(int) * (size_t)(L->nids ? L->nids : 1));
    if (!self->root) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < L->nids; i++) self->root[i] = -1;
    Py_XSETREF(self->keep, PyList_New(0));
    if (!self->keep) return -1;
    self->nnodes = 0;
    PyObject *key, *val;
    Py_ssize_t it = 0;
    while (PyDict_Next(trees, &it, &key, &val)) {
        long id = PyLong_AsLong(key);
        if (id == -1 && PyErr_Occurred()) return -1;
        if (id < 0 || id >= L->nids || !L->cls[id].declared) {
            PyErr_Format(PyExc_ValueError, "event id %ld is not in the layout", id);
            return -1;
        }
        if (val == Py_True || val == Py_False) {
            self->root[id] = val == Py_True ? -2 : -1;
            continue;
        }
        int r = build(self, val);
        if (r < 0) return -1;
        self->root[id] = r;
    }
    /* Field indices must exist in their class: checked when evaluating would be per event. */
    return 0;
}

/* Python's strict UTF-8 (no surrogates, no overlongs, at most U+10FFFF). */
static int utf8_valid(const uint8_t *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n) return 0;
            uint8_t c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && c1 < 0xA0) return 0;
            if (c == 0xED && c1 >= 0xA0) return 0;
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n) return 0;
            uint8_t c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if (c == 0xF0 && c1 < 0x90) return 0;
            if (c == 0xF4 && c1 >= 0x90) return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

static inline int cmp_result(int op, int c) {
    switch (op) {
    case OP_EQ: return c == 0;
    case OP_NE: return c != 0;
    case OP_LT: return c < 0;
    case OP_LE: return c <= 0;
    case OP_GT: return c > 0;
    default: return c >= 0;
    }
}

/* 1 / 0, or -1 with a Python error (only the non-UTF-8 path can fail). */
static int eval(const Filter *F, int ni, const eclass *c, const uint8_t *b, const Py_ssize_t *off) {
    const node *n = &F->nodes[ni];
    switch (n->type) {
    case N_FALSE: return 0;
    case N_TRUE: return 1;
    case N_AND: {
        int a = eval(F, n->a, c, b, off);
        if (a <= 0) return a;
        return eval(F, n->b, c, b, off);
    }
    case N_OR: {
        int a = eval(F, n->a, c, b, off);
        if (a != 0) return a;
        return eval(F, n->b, c, b, off);
    }
    case N_NOT: {
        int a = eval(F, n->a, c, b, off);
        return a < 0 ? a : !a;
    }
    default: break;
    }
    if (n->field >= c->nf) return 0;
    const ftype *t = &c->f[n->field];
    const uint8_t *p = b + off[n->field];
    if (n->type == N_INT) {
        __int128 v;
        switch (t->size) {
        case 1: v = t->sign ? (__int128)(int8_t)p[0] : (__int128)p[0]; break;
        case 2: {
            uint16_t u;
            memcpy(&u, p, 2);
            v = t->sign ? (__int128)(int16_t)u : (__int128)u;
            break;
        }
        case 4: {
            uint32_t u;
            memcpy(&u, p, 4);
            v = t->sign ? (__int128)(int32_t)u : (__int128)u;
            break;
        }
        default: {
            uint64_t u;
            memcpy(&u, p, 8);
            v = t->sign ? (__int128)(int64_t)u : (__int128)u;
            break;
        }
        }
        return cmp_result(n->op, (v > n->ival) - (v < n->ival));
    }
    if (n->type == N_FLOAT) {
        double d;
        memcpy(&d, p, 8);
        switch (n->op) {
        case OP_EQ: return d == n->dval;
        case OP_NE: return d != n->dval;
        case OP_LT: return d < n->dval;
        case OP_LE: return d <= n->dval;
        case OP_GT: return d > n->dval;
        default: return d >= n->dval;
        }
    }
    /* strings */
    const uint8_t *s;
    Py_ssize_t len;
    static const uint8_t fffd[3] = {0xEF, 0xBF, 0xBD};
    if (t->kind == K_CHAR) {
        if (p[0] == 0) {
            s = p;
            len = 0;
        } else if (p[0] < 0x80) {
            s = p;
            len = 1;
        } else {
            s = fffd;
            len = 3;
        }
    } else {
        s = p;
        len = (Py_ssize_t)strlen((const char *)p); /* the walk found its NUL */
        if (!utf8_valid(s, len)) {
            PyObject *u = PyUnicode_DecodeUTF8((const char *)s, len, "replace");
            if (!u) return -1;
            int r = PyObject_RichCompareBool(u, n->pystr, (int[]){Py_EQ, Py_NE, Py_LT, Py_LE,
                                                                  Py_GT, Py_GE}[n->op]);
            Py_DECREF(u);
            return r;
        }
    }
    Py_ssize_t m = len < n->slen ? len : n->slen;
    int r = m ? memcmp(s, n->s, (size_t)m) : 0;
    if (!r) r = (len > n->slen) - (len < n->slen);
    return cmp_result(n->op, r);
}

static inline int64_t mono_ns(uint64_t tsc, int64_t tsc0, int64_t mono0, double freq) {
    __int128 d = (__int128)tsc - (__int128)tsc0;
    return mono0 + (int64_t)((double)d * 1e9 / freq);
}

static Py_ssize_t bisect_left(const int64_t *a, Py_ssize_t n, int64_t x) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* windows(buf, start, nloss, loss_tsc, tsc0, mono_ns0, freq, cuts) -> (counts, items)
 *
 * The packet's items are its NLOSS losses (at LOSS_TSC; they always pass) then its records.
 * CUTS are the window boundaries inside the packet (the begin times of windows first+1 ..
 * last): window 0 is items[:bisect(cuts[0])], window j items[bisect(cuts[j-1]):bisect(cuts[j])]
 * and the last items[bisect(cuts[-1]):], exactly as TraceIndex._split cuts a packet by ts_ns.
 * COUNTS holds the matching items per window; ITEMS the packet's item count. */
static PyObject *Filter_windows(Filter *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, nloss;
    unsigned long long loss_tsc;
    long long tsc0, mono0, freq;
    PyObject *cuts;
    if (!PyArg_ParseTuple(args, "y*nnKLLLO!", &view, &start, &nloss, &loss_tsc, &tsc0, &mono0,
                          &freq, &PyList_Type, &cuts))
        return NULL;
    const Layout *L = self->layout;
    const uint8_t *b = view.buf;
    Py_ssize_t end = view.len, pos = start;
    Py_ssize_t ncuts = PyList_GET_SIZE(cuts);
    Py_ssize_t cap = nloss + (end - start) / EVENT_HEADER + 1;
    int64_t *ts = malloc(sizeof(int64_t) * (size_t)cap);
    uint8_t *hit = malloc((size_t)cap);
    Py_ssize_t *off = malloc(sizeof(Py_ssize_t) * (size_t)(L->maxf ? L->maxf : 1));
    int64_t *cv = malloc(sizeof(int64_t) * (size_t)(ncuts ? ncuts : 1));
    PyObject *res = NULL;
    if (!ts || !hit || !off || !cv) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t j = 0; j < ncuts; j++) {
        cv[j] = PyLong_AsLongLong(PyList_GET_ITEM(cuts, j));
        if (cv[j] == -1 && PyErr_Occurred()) goto out;
    }
    double fq = (double)freq;
    Py_ssize_t n = 0;
    for (; n < nloss; n++) {
        ts[n] = mono_ns(loss_tsc, tsc0, mono0, fq);
        hit[n] = 1;
    }
    const int *root = self->root;
    while (pos < end) {
        const eclass *c;
        uint64_t tsc;
        Py_ssize_t next;
        unsigned eid;
        int rc = walk(L, b, end, pos, &c, &tsc, &next, off, &eid);
        if (rc) {
            walk_error(rc, pos, eid);
            goto out;
        }
        int r = (int)eid < self->nids ? root[eid] : -1;
        int m;
        if (r == -1)
            m = 0;
        else if (r == -2)
            m = 1;
        else if ((m = eval(self, r, c, b, off)) < 0)
            goto out;
        ts[n] = mono_ns(tsc, tsc0, mono0, fq);
        hit[n] = (uint8_t)m;
        n++;
        pos = next;
    }
    res = PyList_New(ncuts + 1);
    if (!res) goto out;
    Py_ssize_t lo = 0;
    for (Py_ssize_t j = 0; j <= ncuts; j++) {
        Py_ssize_t hi = j < ncuts ? bisect_left(ts, n, cv[j]) : n;
        Py_ssize_t k = 0;
        for (Py_ssize_t i = lo; i < hi; i++) k += hit[i];
        PyObject *v = PyLong_FromSsize_t(k);
        if (!v) {
            Py_CLEAR(res);
            goto out;
        }
        PyList_SET_ITEM(res, j, v);
        if (j < ncuts) lo = bisect_left(ts, n, cv[j]);
    }
    res = Py_BuildValue("Nn", res, n);
out:
    free(ts);
    free(hit);
    free(off);
    free(cv);
    PyBuffer_Release(&view);
    return res;
}

static PyMethodDef Layout_methods[] = {
    {"stats", (PyCFunction)Layout_stats, METH_VARARGS,
     "stats(buf, start) -> ({id: count} in first-seen order, events, first_tsc, last_tsc)"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef Filter_methods[] = {
    {"windows", (PyCFunction)Filter_windows, METH_VARARGS,
     "windows(buf, start, nloss, loss_tsc, tsc0, mono_ns0, freq, cuts) -> (counts, items)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LayoutType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tracetui.core.trace._ttdec.Layout",
    .tp_basicsize = sizeof(Layout),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Per-event-id field layouts of one stream.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Layout_init,
    .tp_dealloc = (destructor)Layout_dealloc,
    .tp_methods = Layout_methods,
};

static PyTypeObject FilterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tracetui.core.trace._ttdec.Filter",
    .tp_basicsize = sizeof(Filter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An event filter compiled per event class of one Layout.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Filter_init,
    .tp_dealloc = (destructor)Filter_dealloc,
    .tp_methods = Filter_methods,
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "tracetui.core.trace._ttdec",
    "tracetui's packet records decoded in C for the explorer's scans.", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ttdec(void) {
    if (PyType_Ready(&LayoutType) < 0 || PyType_Ready(&FilterType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&LayoutType);
    Py_INCREF(&FilterType);
    if (PyModule_AddObject(m, "Layout", (PyObject *)&LayoutType) ||
        PyModule_AddObject(m, "Filter", (PyObject *)&FilterType)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
