"""Trace directories: TSDL metadata, the writer, the packet reader and the merging reader."""
