"""The daemon room: the server loop (server.py), the control namespace (namespace.py), event
filters (filters.py), the marker registry (markers.py) and the recorder (recorder.py: probes,
consumer, outputs, live fan-out).  ``python -m tracetui daemon`` runs ``server.main``."""
