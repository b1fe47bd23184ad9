"""``reload``: read the YAML the switch was started with again and apply the difference
(reconfig.py), as SIGHUP does.  The handler runs on the control thread's loop; it awaits only
the OpenFlow listeners it starts or stops.  A refused file answers one line (FILE:LINE, or the
key that cannot change live) and changes nothing.
"""
from __future__ import annotations

from ..config import ConfigError
from ..reconfig import Reloader, ReloadFailed, ReloadRefused
from . import CommandError, Commands


def register(commands: Commands, reloader: Reloader) -> None:
    async def reload(args: list[str]) -> str:
        try:
            return await reloader.reload()
        except (ConfigError, ReloadRefused) as e:
            raise CommandError(f"{e}" if isinstance(e, ReloadRefused) else f"reload refused: {e}") from None
        except ReloadFailed as e:
            raise CommandError(f"reload applied in part: {e}") from None

    commands.register("reload", "", "read the config file again and apply what changed (as SIGHUP does)",
                      0, 0, reload)
