"""What tracing costs a Python program: the probe's emit path.

    python benchmarks/bench_probe.py [--json] [--repeat N] [--count N]

Markers are defined with tracetui.probe exactly as a program does; their target (one
per-CPU flight channel, so nothing is ever dropped for lack of a consumer) is set the way
the probe's daemon link sets it.  Each figure is the median over N runs of (loop with the
call - the same bare loop) / count:

  py_disabled_ns   `if m.enabled: m(a, b, c)` with the marker disabled (no trace wants it)
  py_emit_ints_ns  `m(a, b, c)`, three integers (%d %d %lu)
  py_emit_str_ns   `m(a, b, s)`, two integers and a 16-character string

and, measured in the same run so ratios survive a noisy machine (the references):

  ref_capi_emit_ns         `f(a, b, c)`, a hand-written METH_FASTCALL C function converting
                           three integers and writing them with an rdtsc timestamp into the
                           same channel with ttrb_write_u64x3 (the same ring write as the
                           marker's, no marker state): the floor of any marker.
  ref_capi_toyring_ns      the same function writing a 48-byte record into a private array
                           ring (an atomic offset; no per-CPU buffer, no commit counting):
                           what the ring write itself costs on top.
Both are compiled by this script into a throwaway extension in a temporary directory.
  ref_logging_filtered_ns  `log.debug(...)` with the level above DEBUG
  ref_logging_file_ns      `log.info("... %d %d %s", a, b, s)` to a file under /tmp
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from types import ModuleType

os.environ.setdefault("TRACETUI_RUNTIME_DIR", f"/tmp/tracetui-bench-{os.getpid()}")

from tracetui import probe
from tracetui.core.ring import Channel, ttrb_write_u64x3_address


def _bare(count: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(count):
        pass
    return time.perf_counter_ns() - t0


def disabled(m, count: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter_ns()
    for i in range(count):
        if m.enabled:
            m(i, 2, 3)
    return time.perf_counter_ns() - t0


def emit_ints(m, count: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter_ns()
    for i in range(count):
        m(i, 2, 3)
    return time.perf_counter_ns() - t0


def emit_str(m, count: int) -> float:  # type: ignore[no-untyped-def]
    s = "sixteen-chars-ab"
    t0 = time.perf_counter_ns()
    for i in range(count):
        m(i, 2, s)
    return time.perf_counter_ns() - t0


_REF_C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <x86intrin.h>

#define RING (1u << 20)
static char ring[RING];
static _Atomic uint64_t head;

/* Three integer arguments, as a METH_FASTCALL marker would take them: 0, or -1 with an error. */
static int ints3(PyObject *const *args, Py_ssize_t nargs, int64_t v[3])
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "emit() takes 3 arguments");
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        v[i] = PyLong_AsLongLong(args[i]);
        if (v[i] == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static PyObject *emit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t v[3];
    if (ints3(args, nargs, v))
        return NULL;
    uint64_t off = atomic_fetch_add_explicit(&head, 48, memory_order_relaxed) & (RING - 1);
    char *p = ring + off;
    uint16_t id = 1;
    uint64_t ts = __rdtsc();
    memcpy(p, &id, 2);
    memcpy(p + 2, &ts, 8);
    memcpy(p + 10, v, 24);
    memset(p + 34, 0, 14);
    Py_RETURN_NONE;
}

typedef int (*write3_fn)(void *chan, uint16_t id, uint64_t a, uint64_t b, uint64_t c);
static write3_fn write3;
static void *chan;

static PyObject *setup(PyObject *self, PyObject *args)
{
    unsigned long long f, c;
    if (!PyArg_ParseTuple(args, "KK", &f, &c))
        return NULL;
    write3 = (write3_fn)(uintptr_t)f;
    chan = (void *)(uintptr_t)c;
    Py_RETURN_NONE;
}

static PyObject *emit_ttrb(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t v[3];
    if (ints3(args, nargs, v))
        return NULL;
    write3(chan, 3, (uint64_t)v[0], (uint64_t)v[1], (uint64_t)v[2]);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS, NULL},
    {"emit_ttrb", (PyCFunction)(void (*)(void))emit_ttrb, METH_FASTCALL, NULL},
    {"emit", (PyCFunction)(void (*)(void))emit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_tt_ref_capi", NULL, -1, methods};
PyMODINIT_FUNC PyInit__tt_ref_capi(void) { return PyModule_Create(&mod); }
"""


def build_ref_capi(tmp: Path) -> ModuleType:
    """Compile the reference C-API emitter into TMP and import it."""
    cc = shutil.which(str(sysconfig.get_config_var("CC") or "cc").split()[0]) or "cc"
    src = tmp / "ref.c"
    src.write_text(_REF_C)
    so = tmp / ("_tt_ref_capi" + str(sysconfig.get_config_var("EXT_SUFFIX")))
    inc = sysconfig.get_paths()["include"]
    subprocess.run([cc, "-O2", "-shared", "-fPIC", f"-I{inc}", str(src), "-o", str(so)],
                   check=True)  # fmt: skip
    spec = importlib.util.spec_from_file_location("_tt_ref_capi", so)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def logging_refs(count: int) -> tuple[float, float]:
    log = logging.getLogger("tracetui-bench")
    log.propagate = False
    with tempfile.NamedTemporaryFile(dir="/tmp", prefix="tracetui-bench-log-") as f:
        handler = logging.FileHandler(f.name)
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        s = "sixteen-chars-ab"
        t0 = time.perf_counter_ns()
        for i in range(count):
            log.debug("pid %d tid %d comm %s", i, 2, s)
        t1 = time.perf_counter_ns()
        n = max(1, count // 20)  # to a file is slow: fewer calls
        for i in range(n):
            log.info("pid %d tid %d comm %s", i, 2, s)
        t2 = time.perf_counter_ns()
        log.removeHandler(handler)
        handler.close()
    return (t1 - t0 - _bare(count)) / count, (t2 - t1) / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--count", type=int, default=200_000)
    args = ap.parse_args(argv)

    off = probe.marker("bench_off", "a %d b %d c %lu")
    ints = probe.marker("bench_ints", "a %d b %d c %lu")
    strs = probe.marker("bench_str", "pid %d tid %d comm %s")
    ch = Channel.create(f"/tracetui-bench-probe-{os.getpid()}", 1 << 20, 8, flight=True)
    tmp = tempfile.TemporaryDirectory(prefix="tracetui-bench-capi-")
    try:
        refmod = build_ref_capi(Path(tmp.name))
        refmod.setup(*ttrb_write_u64x3_address(ch))
        for m, mid in ((ints, 1), (strs, 2)):
            m.native.set_id(mid)
            m.native.set_targets([ch])
            m.enabled = True
        runs: dict[str, list[float]] = {
            "py_disabled_ns": [],
            "py_emit_ints_ns": [],
            "py_emit_str_ns": [],
            "ref_capi_emit_ns": [],
            "ref_capi_toyring_ns": [],
            "ref_logging_filtered_ns": [],
            "ref_logging_file_ns": [],
        }
        n = args.count
        for _ in range(args.repeat):
            base = _bare(n)
            runs["py_disabled_ns"].append((disabled(off, n) - base) / n)
            runs["py_emit_ints_ns"].append((emit_ints(ints, n) - base) / n)
            runs["py_emit_str_ns"].append((emit_str(strs, n) - base) / n)
            runs["ref_capi_emit_ns"].append((emit_ints(refmod.emit_ttrb, n) - base) / n)
            runs["ref_capi_toyring_ns"].append((emit_ints(refmod.emit, n) - base) / n)
            filtered, to_file = logging_refs(n)
            runs["ref_logging_filtered_ns"].append(filtered)
            runs["ref_logging_file_ns"].append(to_file)
        recorded = ch.stats().recorded
        assert recorded == 3 * n * args.repeat, "every emitted event must have been recorded"
    finally:
        for m in (ints, strs):
            m.native.set_targets([])
            m.enabled = False
        ch.unlink()
        ch.close()
        tmp.cleanup()
    out: dict[str, object] = {k: round(statistics.median(v), 1) for k, v in runs.items()}
    out["emit_ints_vs_capi"] = round(out["py_emit_ints_ns"] / max(out["ref_capi_emit_ns"], 0.1), 2)  # type: ignore[operator]
    out["count"] = args.count
    out["repeat"] = args.repeat
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:18} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
