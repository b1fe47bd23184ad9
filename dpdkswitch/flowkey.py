"""The flow key's layout: ``struct dps_flow_key`` (csrc/include/dpdkswitch.h), member by member.

The one description of the key's bytes on the Python side.  The datapath binding sizes and
views keys by it (``datapath/``); the match fields say where each field lives in it
(``ofproto/fields.py``, the one table of fields, built on this).  tests/test_abi.py checks
``KEY_DTYPE`` against the compiled struct's DWARF.

A leaf: it imports nothing of dpdkswitch.  Pure data; any thread.
"""
from __future__ import annotations

import numpy as np

# struct dps_flow_key, member by member (all multi-byte members in network byte order except
# the metadata ones, which are host order).
KEY_DTYPE = np.dtype([
    ("in_port", "<u4"), ("recirc_id", "<u4"), ("dp_hash", "<u4"), ("pad0", "<u4"),
    ("eth_dst", "u1", (6,)), ("eth_src", "u1", (6,)), ("eth_type", ">u2"),
    ("vlan_tci", ">u2", (2,)), ("vlan_tpid", ">u2", (2,)), ("pad1", "<u2"),
    ("nw_src", "u1", (16,)), ("nw_dst", "u1", (16,)), ("ipv6_label", ">u4"),
    ("nw_proto", "u1"), ("nw_tos", "u1"), ("nw_ttl", "u1"), ("nw_frag", "u1"),
    ("arp_sha", "u1", (6,)), ("arp_tha", "u1", (6,)),
    ("tp_src", ">u2"), ("tp_dst", ">u2"), ("tcp_flags", ">u2"), ("pad2", "<u2"),
    ("nd_target", "u1", (16,)), ("mpls_lse", ">u4"),
])
KEY_SIZE = KEY_DTYPE.itemsize
