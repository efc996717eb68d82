"""A local stand-in for WeCom's server API (written from wecom-api.md, not from our client).

    from wecom.emulator import Emulator
    emu = Emulator(corp_id=..., contact_secret=..., agent_id=..., agent_secret=..., token=...,
                   encoding_aes_key=..., callback_url=None, seed=None).start()
    emu.url  # use as WECOM_API_BASE

`emu.act.*` simulates people in the WeCom client (with callbacks), `emu.faults` makes it
misbehave, `emu.clock` moves time, `emu.state` is the in-memory corp. Control over HTTP lives
under `/emulator/`. Run it alone with `python -m wecom.emulator` or `flask wecom emulator`.
"""

from __future__ import annotations

from .actions import ActionError
from .server import Emulator

__all__ = ["ActionError", "Emulator"]
