"""The one key of an architecture: its JSON with sorted keys.

Records, the landing, evolution's de-duplication and the export cache all look subnets up by
it; one definition keeps them agreeing (a key spelled differently in one place would measure
a subnet twice, or pool the passes of two)."""

from __future__ import annotations

import json


def arch_key(arch) -> str:
    """``arch``: an architecture (anything with ``to_dict()``) or its dict."""
    return json.dumps(arch if isinstance(arch, dict) else arch.to_dict(), sort_keys=True)
