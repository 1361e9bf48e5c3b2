"""The wire: netlink framing, the control messages and their codec (docs/PROTOCOL.md)."""
