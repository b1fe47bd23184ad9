"""The OpenFlow switch side of every bridge: what it answers to controllers and ``ovs-ofctl``.

Above ``switch`` (the bridges it serves) and the ``openflow`` wire codec and connections; below
``control`` and ``app``.  See ``channel.py`` for the contract.
"""
from .channel import OFSwitch, OpenFlowService

__all__ = ["OFSwitch", "OpenFlowService"]
