"""The numpy views of C memory agree with the compiled structs, field by field (DWARF)."""
import numpy as np
import pytest

from dpdkswitch.datapath import abi, extension_path


@pytest.mark.parametrize("struct", sorted(abi.VIEWS))
def test_view_matches_dwarf(struct):
    assert abi.check(extension_path(), struct, abi.VIEWS[struct]) == []


def test_check_catches_a_wrong_layout():
    # A dtype with two fields swapped in size must be reported: the check is not vacuous.
    wrong = np.dtype([(n, "<u4" if n == "tx_packets" else abi.PMD_STATS_DTYPE.fields[n][0])
                      for n in abi.PMD_STATS_DTYPE.names])
    errors = abi.check(extension_path(), "dps_pmd_stats", wrong)
    assert any("tx_packets" in e for e in errors) and any("size" in e for e in errors)


def test_stage_names_follow_the_c_stage_numbers():
    from dpdkswitch.datapath import lib
    assert lib.DPS_STAGES == len(abi.STAGES) == abi.PMD_STATS_DTYPE["stage_cycles"].shape[0]
    for i, name in enumerate(abi.STAGES):
        assert getattr(lib, f"DPS_STAGE_{name.upper()}") == i, name


def test_the_config_allows_the_sflow_collectors_the_datapath_holds():
    from dpdkswitch.config import SFLOW_MAX_TARGETS
    from dpdkswitch.datapath import SFLOW_TARGETS
    assert SFLOW_MAX_TARGETS == SFLOW_TARGETS
