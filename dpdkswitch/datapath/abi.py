"""numpy dtypes that view C memory in place, and their check against the compiled DWARF.

Python never writes a C struct layout twice by hand without checking it: each dtype here is
verified, field by field, against the DWARF of the built extension (``check``), by
tests/test_abi.py and on demand.  Pure Python; reads one ELF file.
"""
from __future__ import annotations

import numpy as np

from ..flowkey import KEY_DTYPE

# struct dps_pmd_stats (include/dpdkswitch.h): per-PMD counters, one writer each.
PMD_STATS_DTYPE = np.dtype([
    ("rx_packets", "<u8"),
    ("tx_packets", "<u8"),
    ("tx_dropped", "<u8"),
    ("busy_cycles", "<u8"),
    ("idle_cycles", "<u8"),
    ("iterations", "<u8"),
    ("emc_hits", "<u8"),
    ("megaflow_hits", "<u8"),
    ("subtable_lookups", "<u8"),
    ("misses", "<u8"),
    ("lost", "<u8"),
    ("dups", "<u8"),
    ("tx_batches", "<u8"),
    ("recirculations", "<u8"),
    ("meter_drops", "<u8"),
    ("action_drops", "<u8"),
    ("simple_hits", "<u8"),
    ("sampled_iterations", "<u8"),
    ("sampled_packets", "<u8"),
    ("sampled_cycles", "<u8"),
    ("stage_cycles", "<u8", (9,)),          # by DPS_STAGE_*: STAGES below
    ("sflow_samples", "<u8"),
    ("sflow_lost", "<u8"),
    ("lcore", "<u4"),
    ("active", "<u4"),
    ("n_rxq", "<u4"),
    ("pad", "<u4"),
    ("one_pass", "<u8"),
    ("pad2", "<u4", (12,)),
])

# struct dps_port_stats (include/dpdkswitch.h): one port's counters, as dps_port_stats_many
# fills an array of them.
PORT_STATS_DTYPE = np.dtype([(name, "<u8") for name in (
    "rx_packets", "rx_bytes", "rx_missed", "rx_errors", "rx_nombuf",
    "tx_packets", "tx_bytes", "tx_errors", "tx_dropped")])

# struct dps_ufid, struct dps_flow_stats, and struct dps_flow_delta made of them (include/
# dpdkswitch.h): what dps_flow_stats_changed fills, viewed in place (Datapath.flow_stats_changed).
UFID_DTYPE = np.dtype([("lo", "<u8"), ("hi", "<u8")])
FLOW_STATS_DTYPE = np.dtype([("packets", "<u8"), ("bytes", "<u8"), ("used_ns", "<u8"), ("tcp_flags", "<u2"),
                             ("pad", "<u2", (3,))])
FLOW_DELTA_DTYPE = np.dtype([("ufid", UFID_DTYPE), ("stats", FLOW_STATS_DTYPE), ("created_ns", "<u8")])

# DPS_STAGE_* in order: the names of stage_cycles' entries.
STAGES = ("upkeep", "rx", "simple", "parse", "emc", "masked", "actions", "tx", "recirc")


# Every dtype checked against the DWARF, by the C struct it views.
VIEWS = {"dps_pmd_stats": PMD_STATS_DTYPE, "dps_flow_key": KEY_DTYPE, "dps_port_stats": PORT_STATS_DTYPE,
         "dps_ufid": UFID_DTYPE, "dps_flow_stats": FLOW_STATS_DTYPE, "dps_flow_delta": FLOW_DELTA_DTYPE}


def dwarf_struct(path: str, name: str) -> tuple[int, dict[str, tuple[int, int]]]:
    """(size, {field: (offset, size)}) of ``struct NAME`` in an ELF file's DWARF."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        if not elf.has_dwarf_info():
            raise LookupError(f"{path} has no DWARF: build it with -g")
        dwarf = elf.get_dwarf_info()
        for cu in dwarf.iter_CUs():
            for die in cu.iter_DIEs():
                if die.tag != "DW_TAG_structure_type" or "DW_AT_name" not in die.attributes:
                    continue
                if die.attributes["DW_AT_name"].value.decode() != name or "DW_AT_byte_size" not in die.attributes:
                    continue
                fields = {}
                for m in die.iter_children():
                    if m.tag != "DW_TAG_member":
                        continue
                    fname = m.attributes["DW_AT_name"].value.decode()
                    off = m.attributes["DW_AT_data_member_location"].value
                    fields[fname] = (off, _type_size(m.get_DIE_from_attribute("DW_AT_type")))
                return die.attributes["DW_AT_byte_size"].value, fields
    raise LookupError(f"struct {name} not found in {path}")


def _type_size(die) -> int:
    while "DW_AT_byte_size" not in die.attributes:
        if die.tag == "DW_TAG_array_type":
            n = 1
            for sub in die.iter_children():
                if sub.tag == "DW_TAG_subrange_type":
                    if "DW_AT_count" in sub.attributes:
                        n *= sub.attributes["DW_AT_count"].value
                    else:
                        n *= sub.attributes["DW_AT_upper_bound"].value + 1
            return n * _type_size(die.get_DIE_from_attribute("DW_AT_type"))
        die = die.get_DIE_from_attribute("DW_AT_type")
    return die.attributes["DW_AT_byte_size"].value


def check(path: str, struct: str, dtype: np.dtype) -> list[str]:
    """Differences between a dtype and the C struct: empty when they agree exactly."""
    size, fields = dwarf_struct(path, struct)
    errors = []
    if dtype.itemsize != size:
        errors.append(f"struct {struct}: C size {size}, numpy itemsize {dtype.itemsize}")
    for name in dtype.names:
        if name not in fields:
            errors.append(f"struct {struct}: numpy field {name} is not in C")
            continue
        off, fsize = fields[name]
        np_off, np_size = dtype.fields[name][1], dtype.fields[name][0].itemsize
        if (off, fsize) != (np_off, np_size):
            errors.append(f"struct {struct}.{name}: C offset {off} size {fsize}, numpy offset {np_off} size {np_size}")
    for name in fields:
        if name not in dtype.names:
            errors.append(f"struct {struct}: C field {name} has no numpy field")
    return errors
