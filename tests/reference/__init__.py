"""Open vSwitch as a reference model: run the same OpenFlow tables and input pcap through
OVS (DPDK datapath, net_pcap ports) and through dpdkswitch, and compare what comes out.

  ovs.py       Open vSwitch in a private run directory (context manager)
  ours.py      dpdkswitch in this process on the test session's EAL
  sets.py      the tables + input frames (``RefSet``) the comparison test runs
  compare.py   per-port multiset comparison with a readable diff
"""
