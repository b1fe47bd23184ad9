"""Every bridge's OpenFlow side, for ``dpdkswitch run``: one ``OFSwitch`` per bridge with its
listeners (``openflow.listen`` plus ``<control socket dir>/<bridge>.mgmt`` for local tools) and
active controllers (``openflow.controllers``), and the periodic look for flow-removed (timeouts
expire in the revalidator), port-status and link changes.

Contract: the control thread's asyncio loop.  Cost: every 200 ms, each bridge's pending
flow-removed and port changes; every 2 s, each port's link.
"""
from __future__ import annotations

import asyncio
import os

from ..openflow.connection import log
from .channel import OFSwitch


class OpenFlowService:
    """Every bridge's OpenFlow side, for ``dpdkswitch run``."""

    def __init__(self, switch, control_socket: str, probe_interval: float = 5.0):
        ctl_dir = os.path.dirname(os.path.abspath(control_socket))
        self.switches = {name: OFSwitch(br, ctl_dir, probe_interval) for name, br in switch.bridges.items()}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        for s in self.switches.values():
            await s.start()
        self._task = asyncio.get_running_loop().create_task(self._events())

    async def _events(self) -> None:
        """Flow-removed (timeouts expire in the revalidator) and port-status, a few times a second."""
        n = 0
        while True:
            await asyncio.sleep(0.2)
            n += 1
            for s in self.switches.values():
                try:
                    s.poll_events()
                    if n % 10 == 0:
                        s.poll_links()
                except Exception as e:             # never let one bad event stop the others
                    log(f"{s.name}: event polling failed: {type(e).__name__}: {e}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for s in self.switches.values():
            await s.stop()
