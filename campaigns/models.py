"""Tables of the campaigns package."""

from __future__ import annotations
