"""The main job's pick measured again, independently of the search that chose it.

``python benchmarks/_pick_check.py HOME PICK_JSON PASSES`` (run by benchmarks/mainjob.py in the
run's own HWNAS_HOME, after the search exits): PASSES fresh drift-free passes of the pick, at the
same reference scale as the search's figure (the home's table), recorded nowhere. Prints JSON:
``{"median_ms": ..., "passes_ms": [...]}``.

The search's own figure pools the passes its landing chose the pick by; this one is made after
the choice, so the choice cannot have favoured its noise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    import numpy as np

    from hwnas.api.device import context, session
    from hwnas.api.measuring import measure_passes

    home, pick, passes = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), \
        int(sys.argv[3])
    with session(context(pick["device"], pick["space"], home=home)) as ctx:
        arch = ctx.space.arch_from_obj(pick["arch"])
        ms = measure_passes(ctx, [arch], passes=passes, record=False)[0]
    print(json.dumps({"median_ms": float(np.median(ms)), "passes_ms": ms}))


if __name__ == "__main__":
    main()
