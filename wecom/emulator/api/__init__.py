"""WeCom's server API as the emulator answers it (wecom-api.md §0–§13), one module per area.

Each handler takes a `Ctx` and returns the success fields (errcode/errmsg are added), or raises
`ApiError(errcode, errmsg)`. API-initiated changes never emit callbacks (§3, §11). Importing this
package fills `ROUTES` (path → method, auth, handler) from every area module.
"""

from __future__ import annotations

from . import contact_ways, customers, groupchats, handover, media, members, messages, oauth, tags  # noqa: F401
from .base import ERRMSG, ROUTES, TOKEN_TTL, ApiError, Ctx

__all__ = ["ERRMSG", "ROUTES", "TOKEN_TTL", "ApiError", "Ctx"]
