"""Build glue: setuptools cannot declare cffi_modules in pyproject.toml alone.

The native ring buffer (native/) is compiled by cffi in out-of-line API mode
as tracetui.core._ttrb whenever the package is built or installed.
"""

from setuptools import setup

setup(cffi_modules=["native/build.py:ffibuilder"])
