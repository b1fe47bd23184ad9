"""dpdkswitch: a software OpenFlow switch with a DPDK poll-mode datapath and a Python slow path."""
__version__ = "0.1.0"
