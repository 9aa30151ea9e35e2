"""How node ids and parameter names are written in the textual IR.

Names made only of ``[A-Za-z0-9_.:/-]`` are printed bare (``%lif1``, ``%S/lif``,
``@fc.weight``); any other non-empty name is printed as a JSON string (``%"my node"``), so
every name a frontend can produce round-trips through the text.
"""

from __future__ import annotations

import json
import re

BARE_NAME = re.compile(r"[A-Za-z0-9_.:/\-]+")


def format_name(name: str) -> str:
    """The printed form of a node id or parameter name (without the ``%``/``@`` sigil)."""
    if BARE_NAME.fullmatch(name):
        return name
    return json.dumps(name, ensure_ascii=False)
