"""The OpenFlow switch side of every bridge: what it answers to controllers and ``ovs-ofctl``.

``OpenFlowService`` (service.py) runs one ``OFSwitch`` (channel.py: connections and dispatch)
per bridge; each hands the messages to one manager per concept: ``flows``, ``groups``,
``meters``, ``ports``, ``packets`` (packet-in, packet-out) and ``tables``.  ``actions`` checks
the action lists messages carry; ``duration`` states times as OpenFlow does.

Layering: above ``switch`` (the bridges it serves), the ``openflow`` wire codec and connections,
and ``ofproto``; below ``control`` and ``app``.  Contract: the control thread's asyncio loop.
"""
from .channel import OFSwitch
from .service import OpenFlowService

__all__ = ["OFSwitch", "OpenFlowService"]
