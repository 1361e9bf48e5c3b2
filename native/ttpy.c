/*
 * ttpy.c — tracetui.core._ttpy: the CPython side of the probe.
 *
 *  - Marker: a marker as a C object with vectorcall.  Calling it converts
 *    and range-checks its arguments and emits through ttpr (ttpr_emit_raw
 *    for all-integer markers, ttpr_emit_bytes with a payload encoded here
 *    for the others).  A wrong argument raises TypeError with the sentence
 *    of the format's Python encoder (tracetui.core.formats), an integer out
 *    of range raises FieldRangeError (both OverflowError and TypeError);
 *    nothing else ever escapes.
 *  - Function tracing: a C profile function (PyEval_SetProfile, CPython
 *    3.11) or sys.monitoring callbacks (3.12+) emitting py_call, py_return,
 *    py_raise (and py_c_call / py_c_return) markers with a function id;
 *    each code object is resolved once (name, filter decision, id, cached in
 *    co_extra) and its definition (py_func) written into the trace once per
 *    target generation.  Opt-in on 3.11 and 3.12: a PEP 523 frame evaluation
 *    function instead.
 *  - LogFast: Logger._log of the logging bridge (tracetui.core.logbridge) for
 *    the usual call, recording py_log without building a LogRecord.
 *
 * There is exactly one copy of the ring-buffer and emitter state per
 * process: this extension does not compile ttrb.c/ttpr.c.  init() receives
 * the addresses of ttpr's emitters from the cffi module (tracetui.core._ttrb,
 * see tracetui/core/cmarker.py) and a marker's `struct ttpr_marker *` comes
 * as an address owned by its NativeMarker, which the Marker keeps alive.
 *
 * C functions return 0 or a negative errno unless they are Python entry
 * points (which follow the CPython conventions).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <structmember.h>

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ttrb.h"
#include "ttpr.h"

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
/* The opt-in PEP 523 hook of 3.11 and 3.12 reads a frame's code and globals:
 * the interpreter frame's layout is internal (stable within a version; f_code
 * in both, f_executable from 3.13). */
#define TTPY_EVALFRAME 1
#define Py_BUILD_CORE 1
#include <internal/pycore_frame.h>
#undef Py_BUILD_CORE
#else
#define TTPY_EVALFRAME 0
#endif

#if PY_VERSION_HEX >= 0x030C0000
#define TTPY_MONITORING 1
#define ttpy_request_extra PyUnstable_Eval_RequestCodeExtraIndex
#define ttpy_get_extra PyUnstable_Code_GetExtra
#define ttpy_set_extra PyUnstable_Code_SetExtra
#else
#define TTPY_MONITORING 0
#define ttpy_request_extra _PyEval_RequestCodeExtraIndex
#define ttpy_get_extra _PyCode_GetExtra
#define ttpy_set_extra _PyCode_SetExtra
#endif

#define unlikely(x) __builtin_expect(!!(x), 0)
#define likely(x) __builtin_expect(!!(x), 1)

/* The emitter table (from the cffi module).  Typedefs taken from ttpr.h's
 * declarations, so the compiler checks the signatures. */
static struct {
    __typeof__(ttpr_emit_raw) *emit_raw;
    __typeof__(ttpr_emit_bytes) *emit_bytes;
    __typeof__(ttpr_emit_i2s1) *emit_i2s1;
    __typeof__(ttpr_emit_i2s2) *emit_i2s2;
} api;

static PyObject *FieldRangeError;

/* ------------------------------------------------------------------ Marker */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *enabled;  /* Py_True / Py_False: read by `if m.enabled` (a slot) */
    PyObject *id_;      /* the daemon's id, or None */
    PyObject *name;
    PyObject *format;   /* tracetui.core.formats.MarkerFormat */
    PyObject *native;   /* the NativeMarker owning *m */
    PyObject *encode;   /* format.encode: the sentence for bad arguments */
    PyObject *params;   /* tuple of encode's parameter names (keywords) */
    struct ttpr_marker *m;
    int all_int;
    uint8_t nfields;
    uint8_t types[TTPR_MAX_FIELDS];
} TMarker;

static const uint8_t type_size[] = {
    [TTPR_I32] = 4, [TTPR_U32] = 4, [TTPR_I64] = 8, [TTPR_U64] = 8, [TTPR_X32] = 4,
    [TTPR_PTR] = 8, [TTPR_STR] = 0, [TTPR_CHAR] = 1, [TTPR_F64] = 8,
};

/* Bad arguments: the format's encoder says why (TypeError), with Python's
 * own wording for a wrong count or keyword. */
static PyObject *bad_args(TMarker *self, PyObject *const *args, size_t nargsf,
                          PyObject *kwnames, int range)
{
    PyObject *r = PyObject_Vectorcall(self->encode, args, PyVectorcall_NARGS(nargsf), kwnames);
    if (r) {
        Py_DECREF(r);
        PyErr_Format(PyExc_TypeError, "marker %U: bad arguments", self->name);
        return NULL;
    }
    if (range && PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
        PyObject *msg = v ? PyObject_Str(v) : NULL;
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        if (msg) {
            PyErr_SetObject(FieldRangeError, msg);
            Py_DECREF(msg);
        }
        return NULL;
    }
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
        /* Never anything but the programmer's TypeError. */
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "marker %U: bad arguments", self->name);
    }
    return NULL;
}

/* Convert an int to the field's type.  Return: 0; -EINVAL not an int;
 * -ERANGE out of range (no Python error set in either case). */
static inline int to_int(PyObject *o, uint8_t ty, int64_t *out)
{
    if (unlikely(!PyLong_Check(o)))
        return -EINVAL;
    int ovf;
    long long v = PyLong_AsLongLongAndOverflow(o, &ovf);
    if (unlikely(ovf)) {
        if (ovf > 0 && (ty == TTPR_U64 || ty == TTPR_PTR)) {
            unsigned long long u = PyLong_AsUnsignedLongLong(o);
            if (u == (unsigned long long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
                return -ERANGE;
            }
            *out = (int64_t)u;
            return 0;
        }
        return -ERANGE;
    }
    if (unlikely(v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -EINVAL;
    }
    switch (ty) {
    case TTPR_I32:
        if (v < INT32_MIN || v > INT32_MAX)
            return -ERANGE;
        break;
    case TTPR_U32:
    case TTPR_X32:
        if (v < 0 || v > (long long)UINT32_MAX)
            return -ERANGE;
        break;
    case TTPR_U64:
    case TTPR_PTR:
        if (v < 0)
            return -ERANGE;
        break;
    default:
        break;
    }
    *out = v;
    return 0;
}

/* Arguments in field order when some came by keyword.  Return 0, or -1 when
 * they do not match the fields (the caller asks encode for the sentence). */
static int by_keyword(TMarker *self, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, PyObject **out)
{
    Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
    if (nargs + nkw != self->nfields)
        return -1;
    for (Py_ssize_t i = 0; i < self->nfields; i++)
        out[i] = i < nargs ? args[i] : NULL;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *kw = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t f;
        for (f = 0; f < self->nfields; f++)
            if (PyUnicode_Compare(kw, PyTuple_GET_ITEM(self->params, f)) == 0)
                break;
        if (f == self->nfields || out[f])
            return -1;
        out[f] = args[nargs + k];
    }
    return 0;
}

/* A string field's UTF-8 bytes up to the first NUL (like C's %s), with
 * replacement of unencodable characters as the Python encoder does.
 * *owned gets a reference the caller drops.  Return 0 or -EINVAL. */
static int str_bytes(PyObject *o, const char **p, Py_ssize_t *n, PyObject **owned)
{
    *owned = NULL;
    if (PyUnicode_Check(o)) {
        *p = PyUnicode_AsUTF8AndSize(o, n);
        if (unlikely(!*p)) {
            PyErr_Clear();
            *owned = PyUnicode_AsEncodedString(o, "utf-8", "replace");
            if (!*owned) {
                PyErr_Clear();
                return -ENOMEM;
            }
            *p = PyBytes_AS_STRING(*owned);
            *n = PyBytes_GET_SIZE(*owned);
        }
    } else if (PyBytes_Check(o)) {
        *p = PyBytes_AS_STRING(o);
        *n = PyBytes_GET_SIZE(o);
    } else if (PyByteArray_Check(o)) {
        *p = PyByteArray_AS_STRING(o);
        *n = PyByteArray_GET_SIZE(o);
    } else {
        return -EINVAL;
    }
    *n = (Py_ssize_t)strnlen(*p, (size_t)*n);
    return 0;
}

#define STACK_PAYLOAD 512

static PyObject *marker_vectorcall(PyObject *self_, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames)
{
    TMarker *self = (TMarker *)self_;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *const *av = args;
    PyObject *kwv[TTPR_MAX_FIELDS];
    if (unlikely(kwnames && PyTuple_GET_SIZE(kwnames))) {
        if (by_keyword(self, args, nargs, kwnames, kwv) < 0)
            return bad_args(self, args, nargsf, kwnames, 0);
        av = kwv;
    } else if (unlikely(nargs != self->nfields)) {
        return bad_args(self, args, nargsf, kwnames, 0);
    }
    int on = self->enabled == Py_True;
    uint32_t n = self->nfields;

    if (self->all_int) {
        int64_t iv[TTPR_MAX_FIELDS];
        for (uint32_t i = 0; i < n; i++) {
            int rc = to_int(av[i], self->types[i], &iv[i]);
            if (unlikely(rc))
                return bad_args(self, args, nargsf, kwnames, rc == -ERANGE);
        }
        if (on)
            api.emit_raw(self->m, iv, n);
        Py_RETURN_NONE;
    }

    /* Mixed fields: check every value, then encode into one payload. */
    const char *sp[TTPR_MAX_FIELDS];
    Py_ssize_t sl[TTPR_MAX_FIELDS];
    PyObject *owned[TTPR_MAX_FIELDS];
    union { int64_t i; double d; } val[TTPR_MAX_FIELDS];
    uint32_t nowned = 0;
    size_t len = 0;
    PyObject *ret = Py_None;
    for (uint32_t i = 0; i < n; i++) {
        PyObject *o = av[i];
        uint8_t ty = self->types[i];
        switch (ty) {
        case TTPR_STR:
            if (!on) {
                if (!PyUnicode_Check(o) && !PyBytes_Check(o) && !PyByteArray_Check(o))
                    goto bad;
                break;
            }
            {
                PyObject *own;
                int rc = str_bytes(o, &sp[i], &sl[i], &own);
                if (rc == -EINVAL)
                    goto bad;
                if (rc) {
                    on = 0; /* no memory: the event is lost, the program carries on */
                    break;
                }
                if (own)
                    owned[nowned++] = own;
                len += (size_t)sl[i] + 1;
            }
            break;
        case TTPR_CHAR:
            if (PyUnicode_Check(o) && PyUnicode_GET_LENGTH(o) == 1 &&
                PyUnicode_READ_CHAR(o, 0) < 128)
                val[i].i = (int64_t)PyUnicode_READ_CHAR(o, 0);
            else if (PyBytes_Check(o) && PyBytes_GET_SIZE(o) == 1 &&
                     (uint8_t)PyBytes_AS_STRING(o)[0] < 128)
                val[i].i = PyBytes_AS_STRING(o)[0];
            else
                goto bad;
            len += 1;
            break;
        case TTPR_F64:
            if (PyFloat_Check(o)) {
                val[i].d = PyFloat_AS_DOUBLE(o);
            } else if (PyLong_Check(o)) {
                val[i].d = PyLong_AsDouble(o);
                if (val[i].d == -1.0 && PyErr_Occurred()) {
                    PyErr_Clear();
                    goto bad;
                }
            } else {
                goto bad;
            }
            len += 8;
            break;
        default: {
            int rc = to_int(o, ty, &val[i].i);
            if (rc) {
                for (uint32_t k = 0; k < nowned; k++)
                    Py_DECREF(owned[k]);
                return bad_args(self, args, nargsf, kwnames, rc == -ERANGE);
            }
            len += type_size[ty];
        }
        }
    }
    if (on && len <= UINT32_MAX) {
        char stack[STACK_PAYLOAD];
        char *buf = len <= sizeof(stack) ? stack : PyMem_Malloc(len);
        if (buf) {
            char *p = buf;
            for (uint32_t i = 0; i < n; i++) {
                uint8_t ty = self->types[i];
                switch (ty) {
                case TTPR_STR:
                    memcpy(p, sp[i], (size_t)sl[i]);
                    p += sl[i];
                    *p++ = 0;
                    break;
                case TTPR_CHAR:
                    *p++ = (char)val[i].i;
                    break;
                case TTPR_F64:
                    memcpy(p, &val[i].d, 8);
                    p += 8;
                    break;
                default:
                    if (type_size[ty] == 4) {
                        uint32_t u = (uint32_t)val[i].i;
                        memcpy(p, &u, 4);
                    } else {
                        memcpy(p, &val[i].i, 8);
                    }
                    p += type_size[ty];
                }
            }
            api.emit_bytes(self->m, buf, (uint32_t)len);
            if (buf != stack)
                PyMem_Free(buf);
        }
    }
    for (uint32_t k = 0; k < nowned; k++)
        Py_DECREF(owned[k]);
    Py_INCREF(ret);
    return ret;
bad:
    for (uint32_t k = 0; k < nowned; k++)
        Py_DECREF(owned[k]);
    return bad_args(self, args, nargsf, kwnames, 0);
}

/* Marker(native, address, types, params, format, name) */
static PyObject *marker_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyObject *native, *params, *format, *name;
    unsigned long long addr;
    Py_buffer types;
    if (kw && PyDict_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError, "Marker() takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OKy*O!OU:Marker", &native, &addr, &types, &PyTuple_Type,
                          &params, &format, &name))
        return NULL;
    if (!api.emit_raw) {
        PyBuffer_Release(&types);
        PyErr_SetString(PyExc_RuntimeError, "tracetui.core._ttpy.init() was not called");
        return NULL;
    }
    if (types.len > TTPR_MAX_FIELDS || PyTuple_GET_SIZE(params) != types.len || !addr) {
        PyBuffer_Release(&types);
        PyErr_SetString(PyExc_ValueError, "Marker(): fields, parameters and address disagree");
        return NULL;
    }
    PyObject *encode = PyObject_GetAttrString(format, "encode");
    if (!encode) {
        PyBuffer_Release(&types);
        return NULL;
    }
    TMarker *self = (TMarker *)type->tp_alloc(type, 0);
    if (!self) {
        Py_DECREF(encode);
        PyBuffer_Release(&types);
        return NULL;
    }
    self->vectorcall = marker_vectorcall;
    self->enabled = Py_NewRef(Py_False);
    self->id_ = Py_NewRef(Py_None);
    self->name = Py_NewRef(name);
    self->format = Py_NewRef(format);
    self->native = Py_NewRef(native);
    self->params = Py_NewRef(params);
    self->encode = encode;
    self->m = (struct ttpr_marker *)(uintptr_t)addr;
    self->nfields = (uint8_t)types.len;
    self->all_int = 1;
    for (Py_ssize_t i = 0; i < types.len; i++) {
        uint8_t t = ((uint8_t *)types.buf)[i];
        if (t < TTPR_I32 || t > TTPR_F64) {
            PyBuffer_Release(&types);
            Py_DECREF(self);
            PyErr_SetString(PyExc_ValueError, "Marker(): bad field type");
            return NULL;
        }
        self->types[i] = t;
        if (t == TTPR_STR || t == TTPR_CHAR || t == TTPR_F64)
            self->all_int = 0;
    }
    PyBuffer_Release(&types);
    return (PyObject *)self;
}

static void marker_dealloc(TMarker *self)
{
    Py_XDECREF(self->enabled);
    Py_XDECREF(self->id_);
    Py_XDECREF(self->name);
    Py_XDECREF(self->format);
    Py_XDECREF(self->native);
    Py_XDECREF(self->encode);
    Py_XDECREF(self->params);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *marker_repr(TMarker *self)
{
    PyObject *text = PyObject_GetAttrString(self->format, "text");
    if (!text)
        return NULL;
    /* `del m.enabled` / `del m._id` leave NULL: shown as disabled and None. */
    int on = self->enabled && PyObject_IsTrue(self->enabled) == 1;
    PyErr_Clear();
    PyObject *r = PyUnicode_FromFormat("<marker %S %R id=%S %s>", self->name, text,
                                       self->id_ ? self->id_ : Py_None,
                                       on ? "enabled" : "disabled");
    Py_DECREF(text);
    return r;
}

static PyObject *marker_get_id(TMarker *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->id_ ? self->id_ : Py_None);
}

static PyMemberDef marker_members[] = {
    {"enabled", T_OBJECT_EX, offsetof(TMarker, enabled), 0,
     "True while a trace wants this marker's events (set by the probe's daemon link)."},
    {"_id", T_OBJECT, offsetof(TMarker, id_), 0, NULL},
    {"name", T_OBJECT_EX, offsetof(TMarker, name), READONLY, "The marker's name."},
    {"format", T_OBJECT_EX, offsetof(TMarker, format), READONLY, "Its MarkerFormat."},
    {"native", T_OBJECT_EX, offsetof(TMarker, native), READONLY, "Its NativeMarker."},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(TMarker, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef marker_getset[] = {
    {"id", (getter)marker_get_id, NULL, "The daemon's id for this marker, or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject MarkerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tracetui.core._ttpy.Marker",
    .tp_basicsize = sizeof(TMarker),
    .tp_dealloc = (destructor)marker_dealloc,
    .tp_vectorcall_offset = offsetof(TMarker, vectorcall),
    .tp_repr = (reprfunc)marker_repr,
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "A marker: call it with its fields to record an event.",
    .tp_members = marker_members,
    .tp_getset = marker_getset,
    .tp_new = marker_new,
};

/* ----------------------------------------------------- function tracing */

/* What a code object (or C function) resolved to, once. */
struct codeinfo {
    uint64_t id;   /* pid << 32 | sequence: unique in a trace across processes */
    uint64_t gen;  /* definition generation it was last written for */
    int traced;    /* the filters' decision */
    int line;
    char *name;    /* module.qualname */
    char *file;
};

static struct {
    TMarker *call, *ret, *raise, *def, *c_call, *c_ret;
    PyObject *includes, *excludes; /* tuples of bytes (glob patterns) */
    int c_calls;
    int active;
    uint64_t gen;
    uint32_t seq;
    int pid;
    PyObject *cfuncs;  /* dict: PyMethodDef address -> capsule of codeinfo */
    PyObject *disable; /* sys.monitoring.DISABLE (3.12+) */
} T;

static Py_ssize_t extra_index = -1;

/* The per-thread state, in one initial-exec TLS block: every event reads it,
 * and the default (general dynamic) model of a dlopen'ed module costs a
 * __tls_get_addr call per access (a third of the hook's own instructions). */
static __thread struct {
    int tid;
    /* Traced calls minus returns in this thread since tracing started in it.
     * A return at depth 0 is a frame's that was live before (tracing started
     * below it, in the thread's bootstrap, or before fork): it has no call to
     * pair with and is not recorded.  Frames nest, so no frame needs
     * remembering. */
    int depth;
    /* Set while tracetui's own code runs in a traced thread (after fork: the
     * probe's reconnection): nothing is recorded or counted. */
    int paused;
    /* 0 unknown, 1 traced, 2 never (tracetui's own threads), 3 being found
     * out (see thread_ok). */
    int state;
} tl __attribute__((tls_model("initial-exec")));
#define tl_tid tl.tid
#define tl_depth tl.depth
#define tl_paused tl.paused
#define tl_state tl.state

static inline int64_t cur_tid(void)
{
    if (unlikely(!tl_tid))
        tl_tid = (int)syscall(SYS_gettid);
    return tl_tid;
}

static int fork_pause; /* pause tracing in a forked child until resumed (pause_after_fork) */

static void after_fork_child(void)
{
    tl_tid = 0;
    tl_depth = 0;
    if (fork_pause)
        tl_paused = 1;
    T.pid = (int)getpid();
    T.gen++;
}

static void free_codeinfo(void *p)
{
    struct codeinfo *ci = p;
    if (ci) {
        free(ci->name);
        free(ci->file);
        free(ci);
    }
}

static int matches(PyObject *patterns, const char *name)
{
    Py_ssize_t n = patterns ? PyTuple_GET_SIZE(patterns) : 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (fnmatch(PyBytes_AS_STRING(PyTuple_GET_ITEM(patterns, i)), name, 0) == 0)
            return 1;
    return 0;
}

/* A new codeinfo for NAME (module.qualname); NULL without memory. */
static struct codeinfo *new_info(const char *name, const char *file, int line)
{
    struct codeinfo *ci = calloc(1, sizeof(*ci));
    if (!ci)
        return NULL;
    ci->name = strdup(name);
    ci->file = strdup(file ? file : "");
    if (!ci->name || !ci->file) {
        free_codeinfo(ci);
        return NULL;
    }
    ci->line = line;
    ci->id = ((uint64_t)(uint32_t)T.pid << 32) | ++T.seq;
    ci->gen = T.gen - 1;
    int inc = !T.includes || PyTuple_GET_SIZE(T.includes) == 0 || matches(T.includes, name);
    ci->traced = inc && !matches(T.excludes, name);
    return ci;
}

static const char *utf8_or(PyObject *o, const char *dflt)
{
    if (o && PyUnicode_Check(o)) {
        const char *s = PyUnicode_AsUTF8(o);
        if (s)
            return s;
        PyErr_Clear();
    }
    return dflt;
}

/* Resolve CODE seen in a frame whose globals are GLOBALS (borrowed, may be
 * NULL); cached in co_extra.  NULL when it cannot be cached (no memory). */
static struct codeinfo *resolve(PyCodeObject *code, PyObject *globals)
{
    PyObject *exc_t, *exc_v, *exc_tb;
    PyErr_Fetch(&exc_t, &exc_v, &exc_tb);
    const char *mod = "?";
    if (globals && PyDict_Check(globals))
        mod = utf8_or(PyDict_GetItemString(globals, "__name__"), "?");
    const char *qual = utf8_or(code->co_qualname, "?");
    size_t need = strlen(mod) + strlen(qual) + 2;
    char *full = malloc(need);
    struct codeinfo *ci = NULL;
    if (full) {
        snprintf(full, need, "%s.%s", mod, qual);
        ci = new_info(full, utf8_or(code->co_filename, ""), code->co_firstlineno);
        free(full);
    }
    if (ci && ttpy_set_extra((PyObject *)code, extra_index, ci) < 0) {
        PyErr_Clear();
        free_codeinfo(ci);
        ci = NULL;
    }
    PyErr_Restore(exc_t, exc_v, exc_tb);
    return ci;
}

static inline void define(struct codeinfo *ci)
{
    if (T.def && T.def->enabled == Py_True)
        api.emit_i2s2(T.def->m, (int64_t)ci->id, ci->line, ci->name, ci->file);
    ci->gen = T.gen;
}

/* A "tid %d func %lu" event: its 12-byte payload encoded here and written
 * whole (ttpr_emit_bytes: one reservation, no walk over the fields). */
static inline void emit2(TMarker *mk, struct codeinfo *ci)
{
    if (unlikely(ci->gen != T.gen))
        define(ci);
    char p[12];
    uint32_t tid = (uint32_t)cur_tid();
    memcpy(p, &tid, 4);
    memcpy(p + 4, &ci->id, 8);
    api.emit_bytes(mk->m, p, sizeof(p));
}

/* CODE's cached codeinfo, or NULL (not resolved yet, or not a code object).
 * PyUnstable_Code_GetExtra's own reading, inlined: co_extra points to a size
 * and an array of slots (_PyCodeObjectExtra, the same from 3.6 to 3.13). */
struct ttpy_code_extra {
    Py_ssize_t ce_size;
    void *ce_extras[1];
};

static inline struct codeinfo *code_extra(PyObject *code)
{
    if (unlikely(!PyCode_Check(code)))
        return NULL;
#if PY_VERSION_HEX < 0x030E0000
    struct ttpy_code_extra *x = ((PyCodeObject *)code)->co_extra;
    if (likely(x && extra_index >= 0 && extra_index < x->ce_size))
        return x->ce_extras[extra_index];
    return NULL;
#else
    void *ci = NULL;
    ttpy_get_extra(code, extra_index, &ci);
    return ci;
#endif
}

static inline struct codeinfo *code_info(PyCodeObject *co, PyFrameObject *f)
{
    struct codeinfo *ci = code_extra((PyObject *)co);
    if (unlikely(!ci)) {
        PyObject *g = f ? PyFrame_GetGlobals(f) : NULL;
        ci = resolve(co, g);
        Py_XDECREF(g);
    }
    return ci;
}

/* The C function (builtin or method descriptor) called: its codeinfo. */
static struct codeinfo *cfunc_info(PyObject *fn)
{
    if (!T.cfuncs)
        return NULL;
    void *key_p = fn;
    const char *mod = "", *qual = "?";
    if (PyCFunction_Check(fn)) {
        key_p = ((PyCFunctionObject *)fn)->m_ml;
    }
    PyObject *key = PyLong_FromVoidPtr(key_p);
    if (!key) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *cap = PyDict_GetItemWithError(T.cfuncs, key);
    struct codeinfo *ci = NULL;
    if (cap) {
        ci = PyCapsule_GetPointer(cap, "ttpy.codeinfo");
        Py_DECREF(key);
        return ci;
    }
    PyObject *exc_t, *exc_v, *exc_tb;
    PyErr_Fetch(&exc_t, &exc_v, &exc_tb);
    PyObject *q = PyObject_GetAttrString(fn, "__qualname__");
    PyObject *m = q ? PyObject_GetAttrString(fn, "__module__") : NULL;
    if (!m)
        PyErr_Clear();
    if (q)
        qual = utf8_or(q, "?");
    else
        PyErr_Clear();
    if (m && PyUnicode_Check(m))
        mod = utf8_or(m, "");
    else
        mod = "builtins";
    size_t need = strlen(mod) + strlen(qual) + 2;
    char *full = malloc(need);
    if (full) {
        snprintf(full, need, "%s.%s", mod, qual);
        ci = new_info(full, "", 0);
        free(full);
    }
    if (ci) {
        PyObject *c = PyCapsule_New(ci, "ttpy.codeinfo", NULL);
        if (!c || PyDict_SetItem(T.cfuncs, key, c) < 0) {
            PyErr_Clear();
            free_codeinfo(ci);
            ci = NULL;
        }
        Py_XDECREF(c);
    }
    Py_XDECREF(q);
    Py_XDECREF(m);
    Py_DECREF(key);
    PyErr_Restore(exc_t, exc_v, exc_tb);
    return ci;
}

#if !TTPY_MONITORING
/* The 3.11 hook (PyEval_SetProfile). */
static int profile_fn(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    (void)obj;
    if (unlikely(tl_paused))
        return 0;
    switch (what) {
    case PyTrace_CALL:
    case PyTrace_RETURN: {
#if TTPY_EVALFRAME
        /* 3.11's frame object (internal, stable within 3.11): its code borrowed,
         * without PyFrame_GetCode's call and reference. */
        struct codeinfo *ci = code_info(frame->f_frame->f_code, frame);
#else
        PyCodeObject *co = PyFrame_GetCode(frame);
        struct codeinfo *ci = code_info(co, frame);
        Py_DECREF(co);
#endif
        if (!ci || !ci->traced)
            return 0;
        if (what == PyTrace_CALL) {
            tl_depth++;
            if (T.call->enabled == Py_True)
                emit2(T.call, ci);
            return 0;
        }
        if (tl_depth <= 0)
            return 0;
        tl_depth--;
        if (arg) {
            if (T.ret->enabled == Py_True)
                emit2(T.ret, ci);
        } else if (T.raise->enabled == Py_True) {
            /* 3.11 hides the exception from profile functions: type unknown. */
            if (unlikely(ci->gen != T.gen))
                define(ci);
            api.emit_i2s1(T.raise->m, cur_tid(), (int64_t)ci->id, "");
        }
        return 0;
    }
    case PyTrace_C_CALL:
    case PyTrace_C_RETURN:
    case PyTrace_C_EXCEPTION: {
        if (!T.c_calls)
            return 0;
        TMarker *mk = what == PyTrace_C_CALL ? T.c_call : T.c_ret;
        struct codeinfo *ci = cfunc_info(arg);
        if (!ci || !ci->traced)
            return 0;
        if (what == PyTrace_C_CALL) {
            tl_depth++;
        } else {
            if (tl_depth <= 0)
                return 0;
            tl_depth--;
        }
        if (mk->enabled == Py_True)
            emit2(mk, ci);
        return 0;
    }
    default:
        return 0;
    }
}
#endif

/* Threads of tracetui itself (the probe's daemon link) are never traced. */
/* Return 1 for a thread of tracetui itself, 0 for the program's, -1 for a
 * thread threading does not know (yet: a Thread registers itself a few calls
 * into its bootstrap; or never: threads not started by threading). */
static int thread_is_ours(void)
{
    PyObject *exc_t, *exc_v, *exc_tb;
    PyErr_Fetch(&exc_t, &exc_v, &exc_tb);
    int ours = -1;
    /* threading._active[ident], not current_thread(): that would make a dummy
     * Thread object for a thread threading did not start (the program would see it). */
    PyObject *threading = PyImport_ImportModule("threading");
    PyObject *active = threading ? PyObject_GetAttrString(threading, "_active") : NULL;
    PyObject *key = active ? PyLong_FromUnsignedLong(PyThread_get_thread_ident()) : NULL;
    PyObject *cur = key && PyDict_Check(active) ? PyDict_GetItemWithError(active, key) : NULL;
    Py_XINCREF(cur);
    Py_XDECREF(key);
    Py_XDECREF(active);
    PyObject *name = cur ? PyObject_GetAttrString(cur, "name") : NULL;
    if (cur)
        ours = 0;
    if (name && PyUnicode_Check(name)) {
        const char *s = PyUnicode_AsUTF8(name);
        ours = s && strncmp(s, "tracetui-", 9) == 0;
    }
    Py_XDECREF(name);
    Py_XDECREF(cur);
    Py_XDECREF(threading);
    PyErr_Clear();
    PyErr_Restore(exc_t, exc_v, exc_tb);
    return ours;
}

#if !TTPY_MONITORING
/* threading.setprofile() hook: the first profile event of a new thread
 * replaces the Python-level trampoline with the C profile function. */
static PyObject *thread_hook(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    (void)mod;
    if (nargs != 3 || !PyFrame_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyEval_SetProfile(NULL, NULL);
        Py_RETURN_NONE;
    }
    if (!T.active || thread_is_ours() == 1) {
        PyEval_SetProfile(NULL, NULL);
        Py_RETURN_NONE;
    }
    PyEval_SetProfile(profile_fn, NULL);
    if (PyUnicode_CompareWithASCIIString(args[1], "call") == 0)
        profile_fn(NULL, (PyFrameObject *)args[0], PyTrace_CALL, Py_None);
    Py_RETURN_NONE;
}
#endif

/* 0 unknown, 1 traced, 2 never (tracetui's own threads), 3 being found out
 * (thread_is_ours runs Python code, which the evalframe hook sees).  A thread
 * threading does not know yet records nothing and is asked again at its next
 * event (the frames of a Thread's bootstrap: their returns, at depth 0, are
 * not recorded either). */
static inline int thread_ok(void)
{
    if (likely(tl_state == 1))
        return 1;
    if (tl_state != 0)
        return 0;
    tl_state = 3;
    int ours = thread_is_ours();
    tl_state = ours < 0 ? 0 : ours ? 2 : 1;
    return tl_state == 1;
}

#if TTPY_EVALFRAME
/* The opt-in hook of 3.11 and 3.12 (PEP 523): wraps the evaluation of every
 * frame, so it needs no frame objects and no exception shuffling (3.11's
 * profile machinery), no callback call per event (3.12's sys.monitoring), and
 * a filtered-out code object costs one co_extra lookup.  The price: with an
 * evaluation function set, CPython no longer inlines Python-to-Python calls
 * (nor, on 3.12, generator resumptions), so each call also recurses in C (deep
 * recursion uses the C stack, within the recursion limit). */
static PyObject *eval_hook(PyThreadState *ts, _PyInterpreterFrame *f, int throwflag)
{
    if (unlikely(!T.active || tl_paused))
        return _PyEval_EvalFrameDefault(ts, f, throwflag);
    PyCodeObject *co = f->f_code;
    struct codeinfo *ci = code_extra((PyObject *)co);
    if (unlikely(!ci))
        ci = resolve(co, f->f_globals);
    if (!ci || !ci->traced || !thread_ok())
        return _PyEval_EvalFrameDefault(ts, f, throwflag);
    /* Calling a generator function runs its frame up to RETURN_GENERATOR, which
     * only makes the generator: as with the profile hook, the generator's
     * runs are its resumptions (frames then owned by the generator). */
    if ((co->co_flags & (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR)) &&
        f->owner != FRAME_OWNED_BY_GENERATOR)
        return _PyEval_EvalFrameDefault(ts, f, throwflag);
    tl_depth++;
    if (T.call->enabled == Py_True)
        emit2(T.call, ci);
    PyObject *r = _PyEval_EvalFrameDefault(ts, f, throwflag); /* f is gone after this */
    if (tl_depth <= 0)
        return r; /* a frame a forked child inherited: its call is the parent's */
    tl_depth--;
    if (r) {
        if (T.ret->enabled == Py_True)
            emit2(T.ret, ci);
    } else if (T.raise->enabled == Py_True) {
        if (unlikely(ci->gen != T.gen))
            define(ci);
        PyObject *exc = PyErr_Occurred();
        api.emit_i2s1(T.raise->m, cur_tid(), (int64_t)ci->id,
                      exc ? ((PyTypeObject *)exc)->tp_name : "");
    }
    return r;
}
#endif

#if TTPY_MONITORING
/* sys.monitoring callbacks (registered by tracetui.core.pytrace). */

/* KIND: 0 call, 1 return, 2 unwind, 3 call that may not return DISABLE (throw). */
static inline __attribute__((always_inline)) PyObject *
mon_event(PyObject *const *args, Py_ssize_t nargs, int kind)
{
    if (unlikely(nargs < 2 || !T.active || tl_paused))
        Py_RETURN_NONE;
    PyObject *co = args[0];
    struct codeinfo *ci = code_extra(co);
    if (unlikely(!ci)) {
        if (!PyCode_Check(co))
            Py_RETURN_NONE;
        PyFrameObject *f = PyEval_GetFrame();
        PyObject *g = f ? PyFrame_GetGlobals(f) : NULL;
        ci = resolve((PyCodeObject *)co, g);
        Py_XDECREF(g);
        if (!ci)
            Py_RETURN_NONE;
    }
    if (!ci->traced)
        return Py_NewRef(kind >= 2 || !T.disable ? Py_None : T.disable);
    if (unlikely(!thread_ok()))
        Py_RETURN_NONE;
    if (kind == 0 || kind == 3) {
        tl_depth++;
        if (T.call->enabled == Py_True)
            emit2(T.call, ci);
        Py_RETURN_NONE;
    }
    if (tl_depth <= 0)
        Py_RETURN_NONE;
    tl_depth--;
    if (kind == 1) {
        if (T.ret->enabled == Py_True)
            emit2(T.ret, ci);
    } else if (T.raise->enabled == Py_True) {
        if (unlikely(ci->gen != T.gen))
            define(ci);
        const char *exc = "";
        if (nargs >= 3 && args[2])
            exc = Py_TYPE(args[2])->tp_name;
        api.emit_i2s1(T.raise->m, cur_tid(), (int64_t)ci->id, exc);
    }
    Py_RETURN_NONE;
}

/* The callbacks are objects of their own with vectorcall, not builtin
 * functions: CPython calls them straight, without the METH_FASTCALL wrapper's
 * recursion check (about a tenth of the hook's cost per event). */
#define MON_ARGS PyObject *self, PyObject *const *a, size_t nargsf, PyObject *kw
static PyObject *mon_start(MON_ARGS)
{
    (void)self, (void)kw;
    return mon_event(a, PyVectorcall_NARGS(nargsf), 0);
}
static PyObject *mon_return(MON_ARGS)
{
    (void)self, (void)kw;
    return mon_event(a, PyVectorcall_NARGS(nargsf), 1);
}
static PyObject *mon_unwind(MON_ARGS)
{
    (void)self, (void)kw;
    return mon_event(a, PyVectorcall_NARGS(nargsf), 2);
}
static PyObject *mon_throw(MON_ARGS)
{
    (void)self, (void)kw;
    return mon_event(a, PyVectorcall_NARGS(nargsf), 3);
}

/* CALL (code, offset, callable, arg0): only calls into C are recorded. */
static PyObject *mon_c_call(MON_ARGS)
{
    (void)self, (void)kw;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (n < 3 || !T.active || !T.c_calls || tl_paused || PyFunction_Check(a[2]) ||
        PyMethod_Check(a[2]) || !thread_ok())
        Py_RETURN_NONE;
    struct codeinfo *ci = cfunc_info(a[2]);
    if (ci && ci->traced) {
        tl_depth++;
        if (T.c_call->enabled == Py_True)
            emit2(T.c_call, ci);
    }
    Py_RETURN_NONE;
}

static PyObject *mon_c_return(MON_ARGS)
{
    (void)self, (void)kw;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (n < 3 || !T.active || !T.c_calls || tl_paused || !thread_ok())
        Py_RETURN_NONE;
    if (PyFunction_Check(a[2]) || PyMethod_Check(a[2]))
        Py_RETURN_NONE;
    struct codeinfo *ci = cfunc_info(a[2]);
    if (ci && ci->traced && tl_depth > 0) {
        tl_depth--;
        if (T.c_ret->enabled == Py_True)
            emit2(T.c_ret, ci);
    }
    Py_RETURN_NONE;
}

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    const char *name;
} MonCallback;

static PyObject *moncb_repr(MonCallback *self)
{
    return PyUnicode_FromFormat("<tracetui callback %s>", self->name);
}

static PyTypeObject MonCallbackType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tracetui.core._ttpy.Callback",
    .tp_basicsize = sizeof(MonCallback),
    .tp_vectorcall_offset = offsetof(MonCallback, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_repr = (reprfunc)moncb_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "A sys.monitoring callback of the function-tracing hook.",
};

static int add_callback(PyObject *mod, const char *name, vectorcallfunc fn)
{
    MonCallback *cb = PyObject_New(MonCallback, &MonCallbackType);
    if (!cb)
        return -1;
    cb->vectorcall = fn;
    cb->name = name;
    return PyModule_AddObject(mod, name, (PyObject *)cb) < 0 ? (Py_DECREF(cb), -1) : 0;
}

static int add_callbacks(PyObject *mod)
{
    if (PyType_Ready(&MonCallbackType) < 0)
        return -1;
    static const struct { const char *name; vectorcallfunc fn; } cbs[] = {
        {"mon_start", mon_start}, {"mon_return", mon_return}, {"mon_unwind", mon_unwind},
        {"mon_throw", mon_throw}, {"mon_c_call", mon_c_call}, {"mon_c_return", mon_c_return},
    };
    for (size_t i = 0; i < sizeof(cbs) / sizeof(cbs[0]); i++)
        if (add_callback(mod, cbs[i].name, cbs[i].fn) < 0)
            return -1;
    return 0;
}
#endif

/* ------------------------------------------------------- logging bridge */

/* LogFast: Logger._log in C for the logging bridge (tracetui.core.logbridge),
 * the common call `_log(self, level, msg, args)` only; anything else (keyword
 * arguments, a logger with filters, a level under the bridge's, an error on
 * the way) goes to FALLBACK, the bridge's Python _log, which does the same
 * work.  It records the py_log event (the caller found as findCaller finds it,
 * the message formatted as LogRecord.getMessage formats it) and hands the call
 * to logging's own _log only when some handler will see the record.  No
 * exception of its own reaches the program. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *handler;  /* the TraceHandler: its level */
    TMarker *marker;    /* py_log */
    PyObject *fallback; /* the bridge's Python _log */
    PyObject *orig_log; /* logging.Logger._log */
    PyObject *srcfile;  /* logging._srcfile */
    PyObject *mapping;  /* collections.abc.Mapping */
    PyObject *logging;  /* the logging module: lastResort */
} LogFast;

static PyObject *s_filters, *s_level, *s_name, *s_last_resort, *s_handlers, *s_propagate,
    *s_parent;

/* The line of a logging call site, cached per code object (in a co_extra slot
 * of its own, freed with the code object) by instruction offset: computing it
 * (PyFrame_GetLineNumber) walks the code's line table from its start, which
 * for a call late in a long function was 40% of a recorded log call. */
#define LINECACHE_N 8
struct linecache {
    int lasti[LINECACHE_N];
    int line[LINECACHE_N];
    unsigned next;
};
static Py_ssize_t line_extra_index = -1;

static void free_linecache(void *p) { free(p); }

static int frame_line(PyFrameObject *f, PyCodeObject *co)
{
    int lasti = PyFrame_GetLasti(f);
    struct linecache *lc = NULL;
    if (line_extra_index >= 0 && lasti >= 0) {
        if (ttpy_get_extra((PyObject *)co, line_extra_index, (void **)&lc) < 0) {
            PyErr_Clear();
            lc = NULL;
        }
        if (lc)
            for (int i = 0; i < LINECACHE_N; i++)
                if (lc->lasti[i] == lasti)
                    return lc->line[i];
    }
    int line = PyFrame_GetLineNumber(f);
    if (line_extra_index >= 0 && lasti >= 0) {
        if (!lc) {
            lc = malloc(sizeof(*lc));
            if (lc) {
                for (int i = 0; i < LINECACHE_N; i++)
                    lc->lasti[i] = -1;
                lc->next = 0;
                if (ttpy_set_extra((PyObject *)co, line_extra_index, lc) < 0) {
                    PyErr_Clear();
                    free(lc);
                    lc = NULL;
                }
            }
        }
        if (lc) {
            unsigned k = lc->next++ % LINECACHE_N;
            lc->lasti[k] = lasti;
            lc->line[k] = line;
        }
    }
    return line;
}

/* 1 when FILE (a code object's co_filename) is logging's or importlib's
 * bootstrap (findCaller skips those frames). */
static int internal_file(LogFast *lf, PyObject *file)
{
    if (!PyUnicode_Check(file))
        return 0;
    if (file == lf->srcfile ||
        (PyUnicode_Check(lf->srcfile) && PyUnicode_Compare(file, lf->srcfile) == 0))
        return 1;
    const char *s = PyUnicode_AsUTF8(file);
    if (!s) {
        PyErr_Clear();
        return 0;
    }
    return strstr(s, "importlib") && strstr(s, "_bootstrap");
}

/* Record the event.  Return 0, or -1 with an error set (the caller clears it). */
static int logfast_record(LogFast *lf, PyObject *logger, PyObject *level, PyObject *msg,
                          PyObject *args)
{
    PyObject *file = NULL, *text = NULL, *name = NULL, *tid = NULL, *line = NULL;
    int rc = -1;
    /* The caller: the first frame outside logging (stacklevel 1). */
    PyFrameObject *f = PyEval_GetFrame();
    Py_XINCREF(f);
    int lineno = 0;
    while (f) {
        PyCodeObject *co = PyFrame_GetCode(f);
        PyFrameObject *b = internal_file(lf, co->co_filename) ? PyFrame_GetBack(f) : NULL;
        if (!b) { /* outside logging, or the outermost frame */
            file = Py_NewRef(co->co_filename);
            lineno = frame_line(f, co);
            Py_DECREF(co);
            break;
        }
        Py_DECREF(co);
        Py_DECREF(f);
        f = b;
    }
    Py_XDECREF(f);
    /* The message, as LogRecord.getMessage makes it. */
    PyObject *m = PyUnicode_Check(msg) ? Py_NewRef(msg) : PyObject_Str(msg);
    if (!m)
        goto bad_args;
    int nonempty = PyObject_IsTrue(args);
    if (nonempty < 0) {
        Py_DECREF(m);
        goto bad_args;
    }
    if (nonempty) {
        PyObject *a = args;
        if (PyTuple_Check(args) && PyTuple_GET_SIZE(args) == 1) {
            PyObject *a0 = PyTuple_GET_ITEM(args, 0);
            if (!PyLong_CheckExact(a0) && !PyUnicode_CheckExact(a0) &&
                !PyFloat_CheckExact(a0) && !PyBytes_CheckExact(a0) &&
                PyObject_IsInstance(a0, lf->mapping) == 1 && PyObject_IsTrue(a0) == 1)
                a = a0;
            PyErr_Clear();
        }
        text = PyUnicode_Format(m, a);
        Py_DECREF(m);
        if (!text)
            goto bad_args;
    } else {
        text = m;
    }
    goto emit;
bad_args: /* the program's bad arguments: keep what it wrote */
    PyErr_Clear();
    Py_CLEAR(file);
    text = PyObject_Str(msg);
    if (!text)
        goto out;
    file = PyUnicode_FromString("(unknown file)");
    lineno = 0;
emit:
    if (!file)
        file = PyUnicode_FromString("");
    name = PyObject_GetAttr(logger, s_name);
    tid = PyLong_FromLongLong(cur_tid());
    line = PyLong_FromLong(lineno);
    if (file && name && tid && line) {
        PyObject *av[6] = {tid, level, line, name, text, file};
        PyObject *r = marker_vectorcall((PyObject *)lf->marker, av, 6, NULL);
        Py_XDECREF(r);
        rc = r ? 0 : -1;
    }
out:
    Py_XDECREF(file);
    Py_XDECREF(text);
    Py_XDECREF(name);
    Py_XDECREF(tid);
    Py_XDECREF(line);
    return rc;
}

/* Does some handler want a record of LEVEL from LOGGER?  1 yes (logging's
 * last resort, its no-handler warning, or a handler up the hierarchy, walked
 * as Logger.hasHandlers walks it), 0 no, -1 error. */
static int logfast_wanted(LogFast *lf, PyObject *logger, PyObject *level)
{
    PyObject *last = PyObject_GetAttr(lf->logging, s_last_resort);
    if (!last)
        return -1;
    if (last == Py_None) {
        Py_DECREF(last);
        return 1;
    }
    PyObject *ll = PyObject_GetAttr(last, s_level);
    Py_DECREF(last);
    if (!ll)
        return -1;
    int ge = PyObject_RichCompareBool(level, ll, Py_GE);
    Py_DECREF(ll);
    if (ge != 0)
        return ge;
    PyObject *c = Py_NewRef(logger);
    while (c != Py_None) {
        PyObject *h = PyObject_GetAttr(c, s_handlers);
        int has = h ? PyObject_IsTrue(h) : -1;
        Py_XDECREF(h);
        if (has != 0) {
            Py_DECREF(c);
            return has;
        }
        PyObject *p = PyObject_GetAttr(c, s_propagate);
        int prop = p ? PyObject_IsTrue(p) : -1;
        Py_XDECREF(p);
        if (prop <= 0) {
            Py_DECREF(c);
            return prop;
        }
        PyObject *parent = PyObject_GetAttr(c, s_parent);
        Py_DECREF(c);
        if (!parent)
            return -1;
        c = parent;
    }
    Py_DECREF(c);
    return 0;
}

static PyObject *logfast_vectorcall(PyObject *self_, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames)
{
    LogFast *lf = (LogFast *)self_;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (n != 4 || (kwnames && PyTuple_GET_SIZE(kwnames)) || !PyLong_Check(args[1]))
        return PyObject_Vectorcall(lf->fallback, args, nargsf, kwnames);
    PyObject *logger = args[0], *level = args[1];
    PyObject *filters = PyObject_GetAttr(logger, s_filters);
    int has_filters = filters ? PyObject_IsTrue(filters) : -1;
    Py_XDECREF(filters);
    PyObject *hl = has_filters == 0 ? PyObject_GetAttr(lf->handler, s_level) : NULL;
    int below = hl ? PyObject_RichCompareBool(level, hl, Py_LT) : -1;
    Py_XDECREF(hl);
    if (below != 0) {
        PyErr_Clear();
        return PyObject_Vectorcall(lf->fallback, args, nargsf, kwnames);
    }
    if (lf->marker->enabled == Py_True) {
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb);
        if (logfast_record(lf, logger, level, args[2], args[3]) < 0)
            PyErr_Clear(); /* nothing of ours reaches the program */
        PyErr_Restore(et, ev, etb);
    }
    int wanted = logfast_wanted(lf, logger, level);
    if (wanted == 0)
        Py_RETURN_NONE;
    PyErr_Clear(); /* on an error, logging's own _log decides (and says) */
    return PyObject_Vectorcall(lf->orig_log, args, 4, NULL);
}

static PyObject *logfast_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyObject *o[7];
    if (kw && PyDict_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError, "LogFast() takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO!OOOOO:LogFast", &o[0], &MarkerType, &o[1], &o[2], &o[3],
                          &o[4], &o[5], &o[6]))
        return NULL;
    LogFast *self = (LogFast *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->vectorcall = logfast_vectorcall;
    self->handler = Py_NewRef(o[0]);
    self->marker = (TMarker *)Py_NewRef(o[1]);
    self->fallback = Py_NewRef(o[2]);
    self->orig_log = Py_NewRef(o[3]);
    self->srcfile = Py_NewRef(o[4]);
    self->mapping = Py_NewRef(o[5]);
    self->logging = Py_NewRef(o[6]);
    return (PyObject *)self;
}

static void logfast_dealloc(LogFast *self)
{
    Py_XDECREF(self->handler);
    Py_XDECREF(self->marker);
    Py_XDECREF(self->fallback);
    Py_XDECREF(self->orig_log);
    Py_XDECREF(self->srcfile);
    Py_XDECREF(self->mapping);
    Py_XDECREF(self->logging);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A method: logger._log binds like a function (and CPython's method calls
 * skip the binding, Py_TPFLAGS_METHOD_DESCRIPTOR). */
static PyObject *logfast_get(PyObject *self, PyObject *obj, PyObject *type)
{
    (void)type;
    if (!obj || obj == Py_None)
        return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

static PyMemberDef logfast_members[] = {
    {"fallback", T_OBJECT_EX, offsetof(LogFast, fallback), READONLY, "The Python _log."},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(LogFast, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject LogFastType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tracetui.core._ttpy.LogFast",
    .tp_basicsize = sizeof(LogFast),
    .tp_dealloc = (destructor)logfast_dealloc,
    .tp_vectorcall_offset = offsetof(LogFast, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = logfast_get,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "LogFast(handler, marker, fallback, orig_log, srcfile, Mapping, logging): "
              "Logger._log for the logging bridge.",
    .tp_members = logfast_members,
    .tp_new = logfast_new,
};

static int add_logfast(PyObject *m)
{
    struct { PyObject **p; const char *s; } names[] = {
        {&s_filters, "filters"}, {&s_level, "level"}, {&s_name, "name"},
        {&s_last_resort, "lastResort"}, {&s_handlers, "handlers"},
        {&s_propagate, "propagate"}, {&s_parent, "parent"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!*names[i].p && !(*names[i].p = PyUnicode_InternFromString(names[i].s)))
            return -1;
    if (line_extra_index < 0)
        line_extra_index = ttpy_request_extra(free_linecache); /* -1: no cache */
    if (PyType_Ready(&LogFastType) < 0)
        return -1;
    return PyModule_AddObjectRef(m, "LogFast", (PyObject *)&LogFastType);
}

static int is_marker(PyObject *o) { return Py_IS_TYPE(o, &MarkerType); }

/* configure(call, ret, raise_, func_def, c_call, c_ret, includes, excludes,
 *           c_calls, disable) — the markers (Marker objects, "tid %d func %lu";
 * raise_ "tid %d func %lu exc %s"; func_def "func %lu line %d name %s file %s"),
 * glob tuples (bytes) and sys.monitoring.DISABLE (or None). */
static PyObject *tracer_configure(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *mk[6], *inc, *exc, *disable;
    int c_calls;
    if (!PyArg_ParseTuple(args, "OOOOOOO!O!pO:configure", &mk[0], &mk[1], &mk[2], &mk[3],
                          &mk[4], &mk[5], &PyTuple_Type, &inc, &PyTuple_Type, &exc, &c_calls,
                          &disable))
        return NULL;
    for (int i = 0; i < 6; i++)
        if (!is_marker(mk[i])) {
            PyErr_SetString(PyExc_TypeError, "configure(): markers must be Marker objects");
            return NULL;
        }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(inc); i++)
        if (!PyBytes_Check(PyTuple_GET_ITEM(inc, i)))
            return PyErr_Format(PyExc_TypeError, "configure(): patterns are bytes");
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(exc); i++)
        if (!PyBytes_Check(PyTuple_GET_ITEM(exc, i)))
            return PyErr_Format(PyExc_TypeError, "configure(): patterns are bytes");
    if (T.active) {
        PyErr_SetString(PyExc_RuntimeError, "function tracing is already configured");
        return NULL;
    }
    if (extra_index < 0) {
        extra_index = ttpy_request_extra(free_codeinfo);
        if (extra_index < 0) {
            PyErr_SetString(PyExc_RuntimeError, "no code-object extra slot left");
            return NULL;
        }
    }
    TMarker **slots[6] = {&T.call, &T.ret, &T.raise, &T.def, &T.c_call, &T.c_ret};
    for (int i = 0; i < 6; i++)
        *slots[i] = (TMarker *)Py_NewRef(mk[i]);
    T.includes = Py_NewRef(inc);
    T.excludes = Py_NewRef(exc);
    T.c_calls = c_calls;
    T.disable = disable == Py_None ? NULL : Py_NewRef(disable);
    T.cfuncs = PyDict_New();
    if (!T.cfuncs)
        return NULL;
    T.pid = (int)getpid();
    T.gen = 1;
    Py_RETURN_NONE;
}

/* start(): trace the calling thread (3.11) or switch the callbacks on (3.12+,
 * where tracetui.core.pytrace registers them with sys.monitoring). */
#if TTPY_EVALFRAME
static int use_evalframe;
#endif

/* start(evalframe=False): trace the calling thread (3.11 profile function),
 * or every thread (evalframe, 3.11 and 3.12), or switch the callbacks on (3.12+,
 * where tracetui.core.pytrace registers them with sys.monitoring). */
static PyObject *tracer_start(PyObject *mod, PyObject *args)
{
    (void)mod;
    int evalframe = 0;
    if (!PyArg_ParseTuple(args, "|p:start", &evalframe))
        return NULL;
    if (!T.call) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
#if TTPY_EVALFRAME
    if (evalframe) {
        PyInterpreterState *interp = PyThreadState_GetInterpreter(PyThreadState_Get());
        _PyFrameEvalFunction cur = _PyInterpreterState_GetEvalFrameFunc(interp);
        if (cur != _PyEval_EvalFrameDefault && cur != eval_hook) {
            PyErr_SetString(PyExc_RuntimeError,
                            "another frame evaluation function is installed (a debugger?)");
            return NULL;
        }
        use_evalframe = 1;
        T.active = 1;
        _PyInterpreterState_SetEvalFrameFunc(interp, eval_hook);
        Py_RETURN_NONE;
    }
#else
    if (evalframe) {
        PyErr_SetString(PyExc_ValueError, "the evalframe hook exists on CPython 3.11 and 3.12 only");
        return NULL;
    }
#endif
    T.active = 1;
#if !TTPY_MONITORING
    PyEval_SetProfile(profile_fn, NULL);
#endif
    Py_RETURN_NONE;
}

static PyObject *tracer_stop(PyObject *mod, PyObject *unused)
{
    (void)mod, (void)unused;
    T.active = 0;
#if TTPY_EVALFRAME
    if (use_evalframe) {
        PyInterpreterState *interp = PyThreadState_GetInterpreter(PyThreadState_Get());
        _PyInterpreterState_SetEvalFrameFunc(interp, _PyEval_EvalFrameDefault);
        use_evalframe = 0;
        Py_RETURN_NONE;
    }
#endif
#if !TTPY_MONITORING
    PyEval_SetProfile(NULL, NULL);
#endif
    Py_RETURN_NONE;
}

static PyObject *bump_definitions(PyObject *mod, PyObject *unused)
{
    (void)mod, (void)unused;
    T.gen++;
    Py_RETURN_NONE;
}

static PyObject *py_pause(PyObject *mod, PyObject *flag)
{
    (void)mod;
    int was = tl_paused;
    tl_paused = PyObject_IsTrue(flag) == 1;
    return PyBool_FromLong(was);
}

static PyObject *py_pause_after_fork(PyObject *mod, PyObject *flag)
{
    (void)mod;
    fork_pause = PyObject_IsTrue(flag) == 1;
    Py_RETURN_NONE;
}

static PyObject *py_gettid(PyObject *mod, PyObject *unused)
{
    (void)mod, (void)unused;
    return PyLong_FromLongLong(cur_tid());
}

/* init(emit_raw, emit_bytes, emit_i2s1, emit_i2s2): ttpr's entry points as
 * addresses (from the cffi module).  Only the first call counts. */
static PyObject *ttpy_init(PyObject *mod, PyObject *args)
{
    (void)mod;
    unsigned long long a[4];
    if (!PyArg_ParseTuple(args, "KKKK:init", &a[0], &a[1], &a[2], &a[3]))
        return NULL;
    for (int i = 0; i < 4; i++)
        if (!a[i]) {
            PyErr_SetString(PyExc_ValueError, "init(): a NULL emitter");
            return NULL;
        }
    if (!api.emit_raw) {
        api.emit_raw = (__typeof__(api.emit_raw))(uintptr_t)a[0];
        api.emit_bytes = (__typeof__(api.emit_bytes))(uintptr_t)a[1];
        api.emit_i2s1 = (__typeof__(api.emit_i2s1))(uintptr_t)a[2];
        api.emit_i2s2 = (__typeof__(api.emit_i2s2))(uintptr_t)a[3];
    }
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"init", ttpy_init, METH_VARARGS, "init(emit_raw, emit_bytes, emit_i2s1, emit_i2s2)"},
    {"configure", tracer_configure, METH_VARARGS, "Set the function-tracing markers and filters."},
    {"start", tracer_start, METH_VARARGS,
     "start(evalframe=False): start function tracing (this thread on 3.11 unless evalframe)."},
    {"stop", tracer_stop, METH_NOARGS, "Stop function tracing (this thread on 3.11)."},
    {"bump_definitions", bump_definitions, METH_NOARGS,
     "Targets changed: write each function's definition again before its next event."},
    {"pause", py_pause, METH_O,
     "pause(flag): stop (True) or resume recording calls in this thread; the old state."},
    {"pause_after_fork", py_pause_after_fork, METH_O,
     "pause_after_fork(flag): a forked child starts paused (before any at-fork hook runs); "
     "whoever sets this resumes it with pause(False)."},
    {"gettid", py_gettid, METH_NOARGS, "The calling thread's kernel thread id (cached)."},
#if !TTPY_MONITORING
    {"thread_hook", (PyCFunction)(void (*)(void))thread_hook, METH_FASTCALL,
     "For threading.setprofile(): installs the C profile function in a new thread."},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "tracetui.core._ttpy",
    "Vectorcall markers and the C function-tracing hook (see native/ttpy.c).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ttpy(void)
{
    if (PyType_Ready(&MarkerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m)
        return NULL;
    PyObject *bases = PyTuple_Pack(2, PyExc_OverflowError, PyExc_TypeError);
    if (!bases)
        return NULL;
    FieldRangeError = PyErr_NewExceptionWithDoc(
        "tracetui.core._ttpy.FieldRangeError",
        "An integer out of its field's range (an OverflowError and a TypeError).", bases, NULL);
    Py_DECREF(bases);
    if (!FieldRangeError || PyModule_AddObjectRef(m, "FieldRangeError", FieldRangeError) < 0 ||
        PyModule_AddObjectRef(m, "Marker", (PyObject *)&MarkerType) < 0 ||
        PyModule_AddStringConstant(m, "BACKEND", TTPY_MONITORING ? "monitoring" : "setprofile") <
            0 ||
        PyModule_AddIntConstant(m, "HAVE_EVALFRAME", TTPY_EVALFRAME) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (add_logfast(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#if TTPY_MONITORING
    if (add_callbacks(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    static int atfork_done;
    if (!atfork_done) {
        pthread_atfork(NULL, NULL, after_fork_child);
        atfork_done = 1;
    }
    return m;
}
