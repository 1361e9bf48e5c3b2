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

/* The record and packet headers' sizes (core/model/packet.py states them; the module
 * exports these as EVENT_HEADER_SIZE / PACKET_HEADER_SIZE and a test checks they agree). */
#define EVENT_HEADER 10
#define PACKET_HEADER 76

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
    if (start < 0 || start > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "start outside the packet");
        return NULL;
    }
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

static int int128_from(PyObject *o, __int128 *out);

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
        if (int128_from(c, &n->ival)) return -1;
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

/* TraceClock.mono_ns: Python's int() of the double is exact, and so is the 128-bit
 * truncation here (|ticks| < 2**65 and freq >= 1: the double is below 2**95). */
static inline __int128 mono_ns(uint64_t tsc, int64_t tsc0, int64_t mono0, double freq) {
    __int128 d = (__int128)tsc - (__int128)tsc0;
    return (__int128)mono0 + (__int128)((double)d * 1e9 / freq);
}

/* Any Python int in [-2**127, 2**127) as an __int128. */
static int int128_from(PyObject *o, __int128 *out) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (!overflow) {
        if (v == -1 && PyErr_Occurred()) return -1;
        *out = v;
        return 0;
    }
    PyObject *mask = PyLong_FromUnsignedLongLong(~0ULL), *sh = PyLong_FromLong(64);
    PyObject *lo = mask ? PyNumber_And(o, mask) : NULL, *hi = sh ? PyNumber_Rshift(o, sh) : NULL;
    int rc = -1;
    if (lo && hi) {
        unsigned long long l = PyLong_AsUnsignedLongLong(lo);
        long long h = PyLong_AsLongLong(hi);
        if (!PyErr_Occurred()) {
            *out = (__int128)h * ((__int128)1 << 64) + (__int128)l;
            rc = 0;
        }
    }
    Py_XDECREF(mask);
    Py_XDECREF(sh);
    Py_XDECREF(lo);
    Py_XDECREF(hi);
    return rc;
}

static Py_ssize_t bisect_left(const __int128 *a, Py_ssize_t n, __int128 x) {
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
    if (start < 0 || start > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "start outside the packet");
        return NULL;
    }
    const Layout *L = self->layout;
    const uint8_t *b = view.buf;
    Py_ssize_t end = view.len, pos = start;
    Py_ssize_t ncuts = PyList_GET_SIZE(cuts);
    Py_ssize_t cap = nloss + (end - start) / EVENT_HEADER + 1;
    __int128 *ts = malloc(sizeof(__int128) * (size_t)cap);
    uint8_t *hit = malloc((size_t)cap);
    Py_ssize_t *off = malloc(sizeof(Py_ssize_t) * (size_t)(L->maxf ? L->maxf : 1));
    __int128 *cv = malloc(sizeof(__int128) * (size_t)(ncuts ? ncuts : 1));
    PyObject *res = NULL;
    if (!ts || !hit || !off || !cv) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t j = 0; j < ncuts; j++) {
        if (int128_from(PyList_GET_ITEM(cuts, j), &cv[j])) goto out;
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

/* -- the Perfetto exporter ------------------------------------------------------------
 *
 * export_perfetto(streams, write, progress) writes what core/trace/export.py's Python path
 * writes for a source without counters or function events, byte for byte: the items of every
 * stream merged exactly as TraceDirectory.merged() merges them (chunks of CHUNK bytes per
 * packet, taken in order of (first key, stream); the items before the smallest pending chunk
 * start are cut from each run with bisect_left and, when they come from several runs, stably
 * sorted by tsc), then _Perfetto's encoding of each: tracks (uuid order of first use), names
 * and argument names interned in order of first use, debug annotations by value type.
 */

#define CHUNK 8192

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bbuf;

static int bb_reserve(bbuf *b, size_t more) {
    if (b->n + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more) cap *= 2;
    uint8_t *np = realloc(b->p, cap);
    if (!np) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = np;
    b->cap = cap;
    return 0;
}

static inline int bb_put(bbuf *b, const void *src, size_t n) {
    if (bb_reserve(b, n)) return -1;
    memcpy(b->p + b->n, src, n);
    b->n += n;
    return 0;
}

static inline int bb_varint(bbuf *b, uint64_t v) {
    if (bb_reserve(b, 10)) return -1;
    uint8_t *q = b->p + b->n;
    while (v >= 0x80) {
        *q++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *q++ = (uint8_t)v;
    b->n = (size_t)(q - b->p);
    return 0;
}

static inline int bb_byte(bbuf *b, uint8_t c) { return bb_put(b, &c, 1); }

/* tag + varint length + bytes */
static int bb_ld(bbuf *b, uint64_t tag, const void *src, size_t n) {
    if (bb_varint(b, tag) || bb_varint(b, n)) return -1;
    return bb_put(b, src, n);
}

/* open-addressing maps: (tag, int128) -> int and bytes -> int */
typedef struct {
    int used;
    int tag;
    __int128 k;
    int64_t v;
} imap_e;
typedef struct {
    imap_e *e;
    size_t cap, n;
} imap;

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static imap_e *imap_find(imap *m, int tag, __int128 k, int create) {
    if (create && (m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        imap_e *ne = calloc(cap, sizeof(imap_e));
        if (!ne) {
            PyErr_NoMemory();
            return NULL;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->e[i].used) continue;
            imap_e *o = &m->e[i];
            size_t h = mix((uint64_t)o->k ^ (uint64_t)(o->k >> 64) ^ ((uint64_t)o->tag << 56));
            while (ne[h & (cap - 1)].used) h++;
            ne[h & (cap - 1)] = *o;
        }
        free(m->e);
        m->e = ne;
        m->cap = cap;
    }
    if (!m->cap) return NULL;
    size_t h = mix((uint64_t)k ^ (uint64_t)(k >> 64) ^ ((uint64_t)tag << 56));
    for (;; h++) {
        imap_e *e = &m->e[h & (m->cap - 1)];
        if (!e->used) {
            if (!create) return NULL;
            e->used = 1;
            e->tag = tag;
            e->k = k;
            e->v = 0;
            m->n++;
            return e;
        }
        if (e->tag == tag && e->k == k) return e;
    }
}

typedef struct {
    char *k;
    size_t len;
    int64_t v;
} smap_e;
typedef struct {
    smap_e *e;
    size_t cap, n;
} smap;

static uint64_t shash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
    return h;
}

/* The entry of S (created with v = 0 when new, if CREATE). */
static smap_e *smap_find(smap *m, const char *s, size_t n, int create) {
    if (create && (m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        smap_e *ne = calloc(cap, sizeof(smap_e));
        if (!ne) {
            PyErr_NoMemory();
            return NULL;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->e[i].k) continue;
            size_t h = shash(m->e[i].k, m->e[i].len);
            while (ne[h & (cap - 1)].k) h++;
            ne[h & (cap - 1)] = m->e[i];
        }
        free(m->e);
        m->e = ne;
        m->cap = cap;
    }
    if (!m->cap) return NULL;
    for (size_t h = shash(s, n);; h++) {
        smap_e *e = &m->e[h & (m->cap - 1)];
        if (!e->k) {
            if (!create) return NULL;
            e->k = malloc(n + 1);
            if (!e->k) {
                PyErr_NoMemory();
                return NULL;
            }
            memcpy(e->k, s, n);
            e->k[n] = 0;
            e->len = n;
            e->v = 0;
            m->n++;
            return e;
        }
        if (e->len == n && !memcmp(e->k, s, n)) return e;
    }
}

static void smap_free(smap *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->e[i].k);
    free(m->e);
}

typedef struct {
    Py_ssize_t off, end;
    uint64_t begin;
    Py_ssize_t nloss;
    const char **lname; /* "lost N events" */
    Py_ssize_t *llen;
} xpkt;

typedef struct {
    const char *name;
    Py_ssize_t nlen;
    int nf;
    const char **arg;
    Py_ssize_t *alen;
    int64_t *arg_iid; /* cache: 0 until interned */
    int tk, pk;       /* thread/process field indices, -1: none */
    int64_t name_iid;
    int ncnt;       /* counter samples after each instant: */
    int *cspec;     /* the spec (index into xport.spec) */
    int *cfield;    /* and the field feeding it */
    int seen;
} xcls;

typedef struct {
    Layout *L;
    Py_buffer view;
    int have_view;
    xpkt *pk;
    Py_ssize_t npk;
    int64_t cpu, tsc0, mono0;
    double freq;
    xcls *ci; /* per id */
    /* cursor */
    Py_ssize_t cur, pos;
    int at_start;
} xstream;

typedef struct {
    uint64_t key;
    int32_t stream;
    int32_t loss; /* -1: a record */
    Py_ssize_t pkt, pos;
} xitem;

typedef struct {
    xitem *it;
    Py_ssize_t n, cap;
} xvec;

static int xv_push(xvec *v, xitem x) {
    if (v->n == v->cap) {
        Py_ssize_t cap = v->cap ? v->cap * 2 : 256;
        xitem *ni = realloc(v->it, sizeof(xitem) * (size_t)cap);
        if (!ni) {
            PyErr_NoMemory();
            return -1;
        }
        v->it = ni;
        v->cap = cap;
    }
    v->it[v->n++] = x;
    return 0;
}

typedef struct {
    xstream *st;
    int ns;
    bbuf out, te, body, ann, pnames, pargs, tmp;
    imap tracks;   /* tag 0 cpu, 1 thread (tid), 2 process (pid), 3 counter (spec) -> uuid */
    const char **spec;
    Py_ssize_t *speclen;
    int nspec;
    smap names, args;
    int64_t next_uuid, nitems, last_ts; /* last_ts clamped: only for progress */
    PyObject *write, *progress;
    /* error: stream, packet offset */
    int err_stream;
    Py_ssize_t err_off;
} xport;

static int x_flush(xport *X) {
    if (!X->out.n) return 0;
    PyObject *b = PyBytes_FromStringAndSize((const char *)X->out.p, (Py_ssize_t)X->out.n);
    if (!b) return -1;
    PyObject *r = PyObject_CallOneArg(X->write, b);
    Py_DECREF(b);
    if (!r) return -1;
    Py_DECREF(r);
    X->out.n = 0;
    return 0;
}

/* TracePacket { track_descriptor (60) { uuid (1), DESC } } */
static int x_track_packet(xport *X, int64_t uuid, const bbuf *desc) {
    bbuf *t = &X->tmp;
    t->n = 0;
    bbuf inner = {0};
    int rc = -1;
    if (bb_byte(&inner, 0x08) || bb_varint(&inner, (uint64_t)uuid) ||
        bb_put(&inner, desc->p, desc->n))
        goto out;
    if (bb_ld(t, 60 << 3 | 2, inner.p, inner.n)) goto out;
    if (bb_ld(&X->out, 0x0a, t->p, t->n)) goto out;
    rc = 0;
out:
    free(inner.p);
    return rc;
}

/* The encoded track_uuid's value for the CPU track (created on first use). */
static int64_t x_cpu_track(xport *X, int64_t cpu) {
    imap_e *e = imap_find(&X->tracks, 0, cpu, 0);
    if (e) return e->v;
    e = imap_find(&X->tracks, 0, cpu, 1);
    if (!e) return -1;
    int64_t uuid = e->v = X->next_uuid++;
    char name[32];
    int n = snprintf(name, sizeof name, "CPU %lld", (long long)cpu);
    bbuf d = {0};
    int rc = bb_ld(&d, 0x12, name, (size_t)n) || x_track_packet(X, uuid, &d);
    free(d.p);
    return rc ? -1 : uuid;
}

static int64_t x_counter_track(xport *X, int sp) {
    imap_e *e = imap_find(&X->tracks, 3, sp, 0);
    if (e) return e->v;
    e = imap_find(&X->tracks, 3, sp, 1);
    if (!e) return -1;
    int64_t uuid = e->v = X->next_uuid++;
    bbuf d = {0};
    static const uint8_t counter[2] = {0x42, 0x00}; /* TrackDescriptor.counter, empty */
    int rc = bb_ld(&d, 0x12, X->spec[sp], (size_t)X->speclen[sp]) || bb_put(&d, counter, 2) ||
             x_track_packet(X, uuid, &d);
    free(d.p);
    return rc ? -1 : uuid;
}

static int64_t x_thread_track(xport *X, __int128 pid, __int128 tid) {
    imap_e *e = imap_find(&X->tracks, 1, tid, 0);
    if (e) return e->v;
    bbuf d = {0}, in = {0};
    int rc = -1;
    if (!imap_find(&X->tracks, 2, pid, 0)) {
        imap_e *pe = imap_find(&X->tracks, 2, pid, 1);
        if (!pe) goto out;
        int64_t puuid = pe->v = X->next_uuid++;
        if (bb_byte(&in, 0x08) || bb_varint(&in, (uint64_t)pid) || bb_ld(&d, 0x1a, in.p, in.n) ||
            x_track_packet(X, puuid, &d))
            goto out;
    }
    e = imap_find(&X->tracks, 1, tid, 1);
    if (!e) goto out;
    int64_t uuid = e->v = X->next_uuid++;
    in.n = d.n = 0;
    if (bb_byte(&in, 0x08) || bb_varint(&in, (uint64_t)pid) || bb_byte(&in, 0x10) ||
        bb_varint(&in, (uint64_t)tid) || bb_ld(&d, 0x22, in.p, in.n) ||
        x_track_packet(X, uuid, &d))
        goto out;
    rc = 0;
out:
    free(d.p);
    free(in.p);
    return rc ? -1 : uuid;
}

/* iid of an interned string (names: EventName in field 2; args: DebugAnnotationName, 3). */
static int64_t x_intern(smap *m, bbuf *pending, int field, const char *s, size_t n) {
    smap_e *e = smap_find(m, s, n, 0);
    if (e) return e->v;
    e = smap_find(m, s, n, 1);
    if (!e) return -1;
    e->v = (int64_t)m->n;
    bbuf in = {0};
    int rc = bb_byte(&in, 0x08) || bb_varint(&in, (uint64_t)e->v) || bb_ld(&in, 0x12, s, n) ||
             bb_ld(pending, (uint64_t)(field << 3 | 2), in.p, in.n);
    free(in.p);
    return rc ? -1 : e->v;
}

/* One TracePacket with a TrackEvent of type KIND (3: instant, 4: counter) on TRACK, named
 * NAME_IID (none: < 0), with the annotations (or counter value) in X->ann. */
/* _varint of a timestamp: a negative one as 64-bit two's complement, a larger one (Python
 * ints are unbounded) in as many base-128 digits as it takes. */
static int bb_varint128(bbuf *b, __int128 v) {
    if (v < 0) v += (__int128)1 << 64;
    if (v < 0) {
        PyErr_SetString(PyExc_ValueError, "byte must be in range(0, 256)"); /* as _varint_slow */
        return -1;
    }
    unsigned __int128 u = (unsigned __int128)v;
    if (bb_reserve(b, 19)) return -1;
    uint8_t *q = b->p + b->n;
    while (u >= 0x80) {
        *q++ = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    *q++ = (uint8_t)u;
    b->n = (size_t)(q - b->p);
    return 0;
}

static int x_event(xport *X, __int128 ts, int kind, int64_t track, int64_t name_iid) {
    bbuf *te = &X->te, *body = &X->body;
    te->n = body->n = 0;
    if (bb_byte(te, 9 << 3) || bb_byte(te, (uint8_t)kind) || bb_byte(te, 11 << 3) ||
        bb_varint(te, (uint64_t)track))
        return -1;
    if (name_iid >= 0 && (bb_byte(te, 10 << 3) || bb_varint(te, (uint64_t)name_iid))) return -1;
    if (bb_put(te, X->ann.p, X->ann.n)) return -1;
    if (bb_byte(body, 8 << 3) || bb_varint128(body, ts) || bb_ld(body, 0x5a, te->p, te->n))
        return -1;
    static const uint8_t tail[4] = {10 << 3, 1, 13 << 3, 2};
    if (bb_put(body, tail, 4)) return -1;
    if (X->pnames.n || X->pargs.n) {
        if (bb_varint(body, 12 << 3 | 2) || bb_varint(body, X->pnames.n + X->pargs.n) ||
            bb_put(body, X->pnames.p, X->pnames.n) || bb_put(body, X->pargs.p, X->pargs.n))
            return -1;
        X->pnames.n = X->pargs.n = 0;
    }
    if (bb_ld(&X->out, 0x0a, body->p, body->n)) return -1;
    if (X->out.n >= (1 << 20)) return x_flush(X);
    return 0;
}

static __int128 int_at(const ftype *t, const uint8_t *p) {
    switch (t->size) {
    case 1: return t->sign ? (__int128)(int8_t)p[0] : (__int128)p[0];
    case 2: {
        uint16_t u;
        memcpy(&u, p, 2);
        return t->sign ? (__int128)(int16_t)u : (__int128)u;
    }
    case 4: {
        uint32_t u;
        memcpy(&u, p, 4);
        return t->sign ? (__int128)(int32_t)u : (__int128)u;
    }
    default: {
        uint64_t u;
        memcpy(&u, p, 8);
        return t->sign ? (__int128)(int64_t)u : (__int128)u;
    }
    }
}

static int x_string_value(bbuf *a, const uint8_t *s, Py_ssize_t len) {
    if (utf8_valid(s, len)) {
        if (bb_byte(a, 0x32) || bb_varint(a, (uint64_t)len)) return -1;
        return bb_put(a, s, (size_t)len);
    }
    PyObject *u = PyUnicode_DecodeUTF8((const char *)s, len, "replace");
    if (!u) return -1;
    Py_ssize_t n;
    const char *e = PyUnicode_AsUTF8AndSize(u, &n);
    int rc = !e || bb_byte(a, 0x32) || bb_varint(a, (uint64_t)n) || bb_put(a, e, (size_t)n);
    Py_DECREF(u);
    return rc ? -1 : 0;
}

static int x_record(xport *X, xstream *S, const xitem *it, __int128 ts) {
    const uint8_t *b = S->view.buf;
    const xpkt *pk = &S->pk[it->pkt];
    Py_ssize_t off[256], *offs = off, next;
    const eclass *c;
    uint64_t tsc;
    unsigned eid;
    if (S->L->maxf > 256) {
        offs = malloc(sizeof(Py_ssize_t) * (size_t)S->L->maxf);
        if (!offs) {
            PyErr_NoMemory();
            return -1;
        }
    }
    int rc = -1;
    if (walk(S->L, b, pk->end, it->pos, &c, &tsc, &next, offs, &eid)) {
        PyErr_SetString(PyExc_RuntimeError, "a record changed between two walks");
        goto out;
    }
    xcls *ci = &S->ci[eid];
    int64_t track;
    if (ci->tk >= 0) {
        __int128 tid = int_at(&c->f[ci->tk], b + offs[ci->tk]);
        __int128 pid = int_at(&c->f[ci->pk], b + offs[ci->pk]);
        track = x_thread_track(X, pid, tid);
    } else {
        track = x_cpu_track(X, S->cpu);
    }
    if (track < 0) goto out;
    bbuf *a = &X->ann, *v = &X->tmp;
    a->n = 0;
    for (int j = 0; j < c->nf; j++) {
        int64_t iid = ci->arg_iid[j];
        if (!iid) {
            iid = x_intern(&X->args, &X->pargs, 3, ci->arg[j], (size_t)ci->alen[j]);
            if (iid < 0) goto out;
            ci->arg_iid[j] = iid;
        }
        v->n = 0;
        if (bb_byte(v, 0x08) || bb_varint(v, (uint64_t)iid)) goto out;
        const ftype *t = &c->f[j];
        const uint8_t *p = b + offs[j];
        if (t->kind == K_INT) {
            __int128 x = int_at(t, p);
            if (x < ((__int128)1 << 63)) {
                if (bb_byte(v, 0x20) || bb_varint(v, (uint64_t)(int64_t)x)) goto out;
            } else {
                char dec[24];
                int n = snprintf(dec, sizeof dec, "%llu", (unsigned long long)x);
                if (bb_ld(v, 0x32, dec, (size_t)n)) goto out;
            }
        } else if (t->kind == K_FLOAT) {
            if (bb_byte(v, 0x29) || bb_put(v, p, 8)) goto out;
        } else if (t->kind == K_CHAR) {
            static const uint8_t fffd[3] = {0xEF, 0xBF, 0xBD};
            if (p[0] == 0) {
                if (bb_ld(v, 0x32, p, 0)) goto out;
            } else if (p[0] < 0x80) {
                if (bb_ld(v, 0x32, p, 1)) goto out;
            } else if (bb_ld(v, 0x32, fffd, 3)) {
                goto out;
            }
        } else {
            if (x_string_value(v, p, (Py_ssize_t)strlen((const char *)p))) goto out;
        }
        if (bb_ld(a, 0x22, v->p, v->n)) goto out;
    }
    if (!ci->name_iid) {
        ci->name_iid = x_intern(&X->names, &X->pnames, 2, ci->name, (size_t)ci->nlen);
        if (ci->name_iid < 0) goto out;
    }
    ci->seen = 1;
    if ((rc = x_event(X, ts, 3, track, ci->name_iid))) goto out;
    for (int q = 0; q < ci->ncnt; q++) { /* ("C", ts, spec, value) records */
        int j = ci->cfield[q], sp = ci->cspec[q];
        rc = -1;
        int64_t ct = x_counter_track(X, sp);
        if (ct < 0) goto out;
        bbuf *a = &X->ann;
        a->n = 0;
        const ftype *t = &c->f[j];
        if (t->kind == K_FLOAT) {
            static const uint8_t dtag[2] = {0xe1, 0x02}; /* double_value (44) */
            if (bb_put(a, dtag, 2) || bb_put(a, b + offs[j], 8)) goto out;
        } else {
            static const uint8_t itag[2] = {0xf0, 0x01}; /* counter_value (30) */
            if (bb_put(a, itag, 2) || bb_varint(a, (uint64_t)int_at(t, b + offs[j]))) goto out;
        }
        if ((rc = x_event(X, ts, 4, ct, -1))) goto out;
        X->nitems++;
    }
out:
    if (offs != off) free(offs);
    return rc;
}

static int x_item(xport *X, const xitem *it) {
    xstream *S = &X->st[it->stream];
    __int128 ts = mono_ns(it->key, S->tsc0, S->mono0, S->freq);
    X->nitems++;
    X->last_ts = ts > INT64_MAX ? INT64_MAX : ts < INT64_MIN ? INT64_MIN : (int64_t)ts;
    if (it->loss >= 0) {
        const xpkt *pk = &S->pk[it->pkt];
        int64_t track = x_cpu_track(X, S->cpu);
        if (track < 0) return -1;
        X->ann.n = 0;
        int64_t iid = x_intern(&X->names, &X->pnames, 2, pk->lname[it->loss],
                               (size_t)pk->llen[it->loss]);
        if (iid < 0) return -1;
        return x_event(X, ts, 3, track, iid);
    }
    return x_record(X, S, it, ts);
}

/* The next chunk of stream S (PacketReader.chunks): 1 with items in V and its start key in
 * *START, 0 when the stream has no more, -1 on error. */
static int x_chunk(xport *X, int si, xvec *v, uint64_t *start) {
    xstream *S = &X->st[si];
    const uint8_t *b = S->view.buf;
    v->n = 0;
    while (S->cur < S->npk) {
        xpkt *pk = &S->pk[S->cur];
        int first = S->at_start;
        if (first) {
            for (Py_ssize_t i = 0; i < pk->nloss; i++)
                if (xv_push(v, (xitem){pk->begin, si, (int32_t)i, S->cur, 0})) return -1;
            S->pos = pk->off + PACKET_HEADER;
            S->at_start = 0;
        }
        Py_ssize_t stop = S->pos + CHUNK < pk->end ? S->pos + CHUNK : pk->end;
        while (S->pos < stop) {
            const eclass *c;
            uint64_t tsc;
            Py_ssize_t next;
            unsigned eid;
            int rc = walk(S->L, b, pk->end, S->pos, &c, &tsc, &next, NULL, &eid);
            if (rc) {
                walk_error(rc, S->pos - pk->off, eid);
                X->err_stream = si;
                X->err_off = pk->off;
                return -1;
            }
            if (xv_push(v, (xitem){tsc, si, -1, S->cur, S->pos})) return -1;
            S->pos = next;
        }
        int done = S->pos >= pk->end;
        if (done) {
            S->cur++;
            S->at_start = 1;
        }
        if (v->n) {
            *start = v->it[0].key;
            if (first && pk->begin < *start) *start = pk->begin;
            return 1;
        }
    }
    return 0;
}

typedef struct {
    xvec v;
    Py_ssize_t pos;
} xrun;

static Py_ssize_t bisect_key(const xitem *a, Py_ssize_t lo, Py_ssize_t hi, uint64_t x) {
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (a[mid].key < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void merge_sort(xitem *a, xitem *tmp, Py_ssize_t n) {
    for (Py_ssize_t w = 1; w < n; w *= 2) {
        for (Py_ssize_t lo = 0; lo < n; lo += 2 * w) {
            Py_ssize_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            Py_ssize_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = a[j].key < a[i].key ? a[j++] : a[i++];
            while (i < mid) tmp[k++] = a[i++];
            while (j < hi) tmp[k++] = a[j++];
        }
        memcpy(a, tmp, sizeof(xitem) * (size_t)n);
    }
}

/* _take: emit the items of every run before LIMIT (all when !HAS_LIMIT), merged. */
static int x_take(xport *X, xrun *runs, int *nruns, int has_limit, uint64_t limit, xvec *batch,
                  xvec *tmp) {
    int pieces = 0, keep = 0;
    batch->n = 0;
    for (int r = 0; r < *nruns; r++) {
        xrun *run = &runs[r];
        Py_ssize_t cut = has_limit ? bisect_key(run->v.it, run->pos, run->v.n, limit) : run->v.n;
        if (cut > run->pos) {
            pieces++;
            for (Py_ssize_t i = run->pos; i < cut; i++)
                if (xv_push(batch, run->v.it[i])) return -1;
        }
        if (cut < run->v.n) {
            run->pos = cut;
            if (keep != r) {
                xrun t = runs[keep];
                runs[keep] = *run;
                *run = t;
            }
            keep++;
        }
    }
    for (int r = keep; r < *nruns; r++) runs[r].v.n = runs[r].pos = 0; /* spare vectors */
    *nruns = keep;
    if (pieces > 1) {
        if (tmp->cap < batch->n) {
            xitem *ni = realloc(tmp->it, sizeof(xitem) * (size_t)batch->n);
            if (!ni) {
                PyErr_NoMemory();
                return -1;
            }
            tmp->it = ni;
            tmp->cap = batch->n;
        }
        merge_sort(batch->it, tmp->it, batch->n);
    }
    for (Py_ssize_t i = 0; i < batch->n; i++)
        if (x_item(X, &batch->it[i])) return -1;
    if (batch->n && X->progress != Py_None) {
        PyObject *r = PyObject_CallFunction(X->progress, "L", (long long)X->last_ts);
        if (!r) return -1;
        Py_DECREF(r);
    }
    return 0;
}

static int x_single(xport *X) {
    xvec v = {0};
    uint64_t start;
    int rc;
    while ((rc = x_chunk(X, 0, &v, &start)) > 0) {
        for (Py_ssize_t i = 0; i < v.n; i++)
            if (x_item(X, &v.it[i])) {
                rc = -1;
                break;
            }
        if (rc < 0) break;
        if (X->progress != Py_None) {
            PyObject *r = PyObject_CallFunction(X->progress, "L", (long long)X->last_ts);
            if (!r) {
                rc = -1;
                break;
            }
            Py_DECREF(r);
        }
    }
    free(v.it);
    return rc < 0 ? -1 : 0;
}

typedef struct {
    uint64_t start;
    int si;
    xvec v;
} xhead;

/* TraceDirectory.merged over every stream. */
static int x_merged(xport *X) {
    int ns = X->ns, nh = 0, nruns = 0, rc = -1;
    xhead *heads = calloc((size_t)ns, sizeof(xhead));
    xrun *runs = calloc((size_t)ns * 2 + 2, sizeof(xrun));
    int runcap = ns * 2 + 2;
    xvec batch = {0}, tmp = {0};
    if (!heads || !runs) {
        PyErr_NoMemory();
        goto out;
    }
    for (int si = 0; si < ns; si++) {
        int r = x_chunk(X, si, &heads[nh].v, &heads[nh].start);
        if (r < 0) goto out;
        if (r) heads[nh++].si = si;
    }
    while (nh) {
        int m = 0;
        for (int h = 1; h < nh; h++)
            if (heads[h].start < heads[m].start ||
                (heads[h].start == heads[m].start && heads[h].si < heads[m].si))
                m = h;
        if (nruns && x_take(X, runs, &nruns, 1, heads[m].start, &batch, &tmp)) goto out;
        if (nruns == runcap) {
            xrun *nr = realloc(runs, sizeof(xrun) * (size_t)(runcap * 2));
            if (!nr) {
                PyErr_NoMemory();
                goto out;
            }
            memset(nr + runcap, 0, sizeof(xrun) * (size_t)runcap);
            runs = nr;
            runcap *= 2;
        }
        /* the chunk becomes a run; the head takes the run slot's spare vector */
        xvec spare = runs[nruns].v;
        runs[nruns].v = heads[m].v;
        runs[nruns].pos = 0;
        nruns++;
        heads[m].v = spare;
        int r = x_chunk(X, heads[m].si, &heads[m].v, &heads[m].start);
        if (r < 0) goto out;
        if (!r) {
            free(heads[m].v.it);
            heads[m] = heads[--nh];
            heads[nh].v = (xvec){0};
        }
    }
    if (nruns && x_take(X, runs, &nruns, 0, 0, &batch, &tmp)) goto out;
    rc = 0;
out:
    if (heads)
        for (int h = 0; h < ns; h++) free(heads[h].v.it);
    if (runs)
        for (int r = 0; r < runcap; r++) free(runs[r].v.it);
    free(heads);
    free(runs);
    free(batch.it);
    free(tmp.it);
    return rc;
}

/* export_perfetto(streams, write, progress, specs) -> (records written, {ids seen})
 *
 * streams: [(layout, buffer, packets, cpu, tsc0, mono_ns0, freq, classes)], in the source's
 * stream order; packets: [(offset, content_size, begin_tsc, (loss name bytes, ...))];
 * classes: {id: (name bytes, (field name bytes, ...), tid field or -1, pid field,
 * ((counter spec index, field), ...))}; specs: the counter specs (bytes), in order.
 * A record that cannot be decoded raises ValueError(message, stream index, packet offset). */
static PyObject *export_perfetto(PyObject *mod, PyObject *args) {
    PyObject *streams, *write, *progress, *specs;
    (void)mod;
    if (!PyArg_ParseTuple(args, "O!OOO!", &PyList_Type, &streams, &write, &progress,
                          &PyTuple_Type, &specs))
        return NULL;
    xport X;
    memset(&X, 0, sizeof X);
    X.nspec = (int)PyTuple_GET_SIZE(specs);
    X.spec = calloc((size_t)X.nspec + 1, sizeof(char *));
    X.speclen = calloc((size_t)X.nspec + 1, sizeof(Py_ssize_t));
    if (!X.spec || !X.speclen) {
        free(X.spec);
        free(X.speclen);
        return PyErr_NoMemory();
    }
    for (int i = 0; i < X.nspec; i++) {
        char *sp;
        if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(specs, i), &sp, &X.speclen[i])) {
            free(X.spec);
            free(X.speclen);
            return NULL;
        }
        X.spec[i] = sp;
    }
    X.write = write;
    X.progress = progress;
    X.next_uuid = 1;
    X.err_stream = -1;
    X.ns = (int)PyList_GET_SIZE(streams);
    X.st = calloc((size_t)(X.ns ? X.ns : 1), sizeof(xstream));
    PyObject *res = NULL;
    if (!X.st) return PyErr_NoMemory();
    for (int si = 0; si < X.ns; si++) {
        xstream *S = &X.st[si];
        PyObject *L, *buf, *pkts, *classes;
        long long cpu, tsc0, mono0, freq;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(streams, si), "O!OO!LLLLO!", &LayoutType, &L, &buf,
                              &PyList_Type, &pkts, &cpu, &tsc0, &mono0, &freq, &PyDict_Type,
                              &classes))
            goto out;
        S->L = (Layout *)L;
        if (PyObject_GetBuffer(buf, &S->view, PyBUF_SIMPLE)) goto out;
        S->have_view = 1;
        S->cpu = cpu;
        S->tsc0 = tsc0;
        S->mono0 = mono0;
        S->freq = (double)freq;
        S->at_start = 1;
        S->npk = PyList_GET_SIZE(pkts);
        S->pk = calloc((size_t)(S->npk ? S->npk : 1), sizeof(xpkt));
        S->ci = calloc((size_t)(S->L->nids ? S->L->nids : 1), sizeof(xcls));
        if (!S->pk || !S->ci) {
            PyErr_NoMemory();
            goto out;
        }
        for (Py_ssize_t i = 0; i < S->npk; i++) {
            Py_ssize_t off, size;
            unsigned long long begin;
            PyObject *ln;
            if (!PyArg_ParseTuple(PyList_GET_ITEM(pkts, i), "nnKO!", &off, &size, &begin,
                                  &PyTuple_Type, &ln))
                goto out;
            xpkt *p = &S->pk[i];
            if (off < 0 || size < PACKET_HEADER || off + size > S->view.len) {
                PyErr_SetString(PyExc_ValueError, "packet outside its stream's bytes");
                goto out;
            }
            p->off = off;
            p->end = off + size;
            p->begin = begin;
            p->nloss = PyTuple_GET_SIZE(ln);
            p->lname = calloc((size_t)(p->nloss ? p->nloss : 1), sizeof(char *));
            p->llen = calloc((size_t)(p->nloss ? p->nloss : 1), sizeof(Py_ssize_t));
            if (!p->lname || !p->llen) {
                PyErr_NoMemory();
                goto out;
            }
            for (Py_ssize_t j = 0; j < p->nloss; j++) {
                char *s;
                if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(ln, j), &s, &p->llen[j])) goto out;
                p->lname[j] = s;
            }
        }
        PyObject *key, *val;
        Py_ssize_t it = 0;
        while (PyDict_Next(classes, &it, &key, &val)) {
            long id = PyLong_AsLong(key);
            PyObject *name, *fnames, *cnts;
            int tk, pk;
            if (id == -1 && PyErr_Occurred()) goto out;
            if (id < 0 || id >= S->L->nids || !S->L->cls[id].declared) {
                PyErr_SetString(PyExc_ValueError, "class id not in the layout");
                goto out;
            }
            if (!PyArg_ParseTuple(val, "O!O!iiO!", &PyBytes_Type, &name, &PyTuple_Type, &fnames,
                                  &tk, &pk, &PyTuple_Type, &cnts))
                goto out;
            xcls *c = &S->ci[id];
            const eclass *ec = &S->L->cls[id];
            c->name = PyBytes_AS_STRING(name);
            c->nlen = PyBytes_GET_SIZE(name);
            c->nf = (int)PyTuple_GET_SIZE(fnames);
            if (c->nf != ec->nf || tk >= c->nf || pk >= c->nf || (tk >= 0 && pk < 0) ||
                (tk >= 0 && (ec->f[tk].kind != K_INT || ec->f[pk].kind != K_INT))) {
                PyErr_SetString(PyExc_ValueError, "class fields disagree with the layout");
                goto out;
            }
            c->tk = tk;
            c->pk = pk;
            c->ncnt = (int)PyTuple_GET_SIZE(cnts);
            c->cspec = calloc((size_t)c->ncnt + 1, sizeof(int));
            c->cfield = calloc((size_t)c->ncnt + 1, sizeof(int));
            if (!c->cspec || !c->cfield) {
                PyErr_NoMemory();
                goto out;
            }
            for (int q = 0; q < c->ncnt; q++) {
                int sp, fj;
                if (!PyArg_ParseTuple(PyTuple_GET_ITEM(cnts, q), "ii", &sp, &fj)) goto out;
                if (sp < 0 || sp >= X.nspec || fj < 0 || fj >= c->nf || ec->f[fj].kind == K_STR ||
                    ec->f[fj].kind == K_CHAR) {
                    PyErr_SetString(PyExc_ValueError, "a counter of no numeric field");
                    goto out;
                }
                c->cspec[q] = sp;
                c->cfield[q] = fj;
            }
            c->arg = calloc((size_t)(c->nf ? c->nf : 1), sizeof(char *));
            c->alen = calloc((size_t)(c->nf ? c->nf : 1), sizeof(Py_ssize_t));
            c->arg_iid = calloc((size_t)(c->nf ? c->nf : 1), sizeof(int64_t));
            if (!c->arg || !c->alen || !c->arg_iid) {
                PyErr_NoMemory();
                goto out;
            }
            for (int j = 0; j < c->nf; j++) {
                char *s;
                if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(fnames, j), &s, &c->alen[j]))
                    goto out;
                c->arg[j] = s;
            }
        }
    }
    /* the first packet clears the sequence's incremental state */
    static const uint8_t first[6] = {0x0a, 0x04, 10 << 3, 1, 13 << 3, 1};
    if (bb_put(&X.out, first, sizeof first)) goto out;
    if ((X.ns == 1 ? x_single(&X) : X.ns ? x_merged(&X) : 0) || x_flush(&X)) {
        if (X.err_stream >= 0 && PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            PyErr_NormalizeException(&t, &v, &tb);
            PyObject *msg = PyObject_Str(v);
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(tb);
            if (msg) {
                PyObject *e = Py_BuildValue("((Nin))", msg, X.err_stream, X.err_off);
                if (e) {
                    PyErr_SetObject(PyExc_ValueError, e);
                    Py_DECREF(e);
                }
            }
        }
        goto out;
    }
    PyObject *seen = PySet_New(NULL);
    if (!seen) goto out;
    for (int si = 0; si < X.ns; si++)
        for (int i = 0; i < X.st[si].L->nids; i++) {
            if (!X.st[si].ci[i].seen) continue;
            PyObject *k = PyLong_FromLong(i);
            if (!k || PySet_Add(seen, k)) {
                Py_XDECREF(k);
                Py_DECREF(seen);
                goto out;
            }
            Py_DECREF(k);
        }
    res = Py_BuildValue("LN", (long long)X.nitems, seen);
out:
    for (int si = 0; si < X.ns; si++) {
        xstream *S = &X.st[si];
        if (S->have_view) PyBuffer_Release(&S->view);
        if (S->pk)
            for (Py_ssize_t i = 0; i < S->npk; i++) {
                free(S->pk[i].lname);
                free(S->pk[i].llen);
            }
        free(S->pk);
        if (S->ci && S->L)
            for (int i = 0; i < S->L->nids; i++) {
                free(S->ci[i].arg);
                free(S->ci[i].alen);
                free(S->ci[i].arg_iid);
                free(S->ci[i].cspec);
                free(S->ci[i].cfield);
            }
        free(S->ci);
    }
    free(X.st);
    free(X.spec);
    free(X.speclen);
    free(X.out.p);
    free(X.te.p);
    free(X.body.p);
    free(X.ann.p);
    free(X.pnames.p);
    free(X.pargs.p);
    free(X.tmp.p);
    free(X.tracks.e);
    smap_free(&X.names);
    smap_free(&X.args);
    return res;
}

static PyMethodDef module_methods[] = {
    {"export_perfetto", export_perfetto, METH_VARARGS,
     "export_perfetto(streams, write, progress, specs) -> (records, ids seen) (native/ttdec.c)"},
    {NULL, NULL, 0, NULL},
};

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
    "tracetui's packet records decoded in C for the explorer's scans.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ttdec(void) {
    if (PyType_Ready(&LayoutType) < 0 || PyType_Ready(&FilterType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&LayoutType);
    Py_INCREF(&FilterType);
    if (PyModule_AddObject(m, "Layout", (PyObject *)&LayoutType) ||
        PyModule_AddObject(m, "Filter", (PyObject *)&FilterType) ||
        PyModule_AddIntConstant(m, "EVENT_HEADER_SIZE", EVENT_HEADER) ||
        PyModule_AddIntConstant(m, "PACKET_HEADER_SIZE", PACKET_HEADER)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
