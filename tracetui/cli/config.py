"""``tracetui config``: what a C or C++ build needs to use tracetui's C API.

    cc prog.c $(tracetui config --cflags --libs)

prints the compiler and linker flags of the installed header (tracetui/probe.h) and library
(libtracetui-probe.so, with an rpath so the program runs without LD_LIBRARY_PATH), as
``pkg-config --cflags --libs tracetui-probe`` does once ``PKG_CONFIG_PATH`` holds
``tracetui config --pkg-config-path``.  Exit status: 0; 1 when the library is missing from
this installation (one sentence).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent.parent
INCLUDE_DIR = PACKAGE / "include"
LIB_DIR = PACKAGE / "lib"
LIBRARY = LIB_DIR / "libtracetui-probe.so"
PKG_CONFIG_DIR = LIB_DIR / "pkgconfig"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "config",
        help="compiler and linker flags for tracetui's C API (tracetui/probe.h)",
        description="Print what C and C++ builds pass to use tracetui/probe.h and "
        "libtracetui-probe.so, e.g. cc prog.c $(tracetui config --cflags --libs).",
    )
    p.add_argument("--cflags", action="store_true", help="the include flag of the header")
    p.add_argument("--libs", action="store_true", help="the library flags (with an rpath)")
    p.add_argument(
        "--pkg-config-path",
        action="store_true",
        help="the directory holding tracetui-probe.pc (for PKG_CONFIG_PATH)",
    )
    p.add_argument("--json", action="store_true", help="every path and flag as one JSON object")
    return p


def flags() -> dict[str, str]:
    lib = shlex.quote(str(LIB_DIR))
    return {
        "cflags": f"-I{shlex.quote(str(INCLUDE_DIR))}",
        "libs": f"-L{lib} -Wl,-rpath,{lib} -ltracetui-probe",
        "include_dir": str(INCLUDE_DIR),
        "library": str(LIBRARY),
        "pkg_config_path": str(PKG_CONFIG_DIR),
    }


def run(args: argparse.Namespace) -> int:
    if not LIBRARY.exists() or not (INCLUDE_DIR / "tracetui" / "probe.h").exists():
        print(
            f"tracetui: {LIBRARY} is missing: this installation was built without the C API; "
            "reinstall tracetui with a C compiler present",
            file=sys.stderr,
        )
        return 1
    f = flags()
    if args.json:
        print(json.dumps(f))
        return 0
    out = []
    if args.pkg_config_path:
        out.append(f["pkg_config_path"])
    if args.cflags:
        out.append(f["cflags"])
    if args.libs:
        out.append(f["libs"])
    if not out:
        out = [f["cflags"], f["libs"]]
    print(" ".join(out))
    return 0
