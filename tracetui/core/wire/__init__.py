"""The wire: netlink framing and the control messages (protocol.py), the recording messages
(recording.py): one attribute space, docs/PROTOCOL.md."""
