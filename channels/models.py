"""Tables of the channels package."""

from __future__ import annotations
