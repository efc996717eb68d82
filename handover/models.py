"""Tables of the handover package."""

from __future__ import annotations
