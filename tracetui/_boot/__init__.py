"""The directory `tracetui run` puts first on the traced program's PYTHONPATH.

Its sitecustomize.py is imported by the interpreter at startup; see tracetui.core.pyboot.
"""
