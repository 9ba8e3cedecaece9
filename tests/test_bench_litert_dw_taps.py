"""benchmarks/litert_dw_taps.py: one round, every kernel size timed (nothing written)."""

import pytest

from benchmarks.litert_dw_taps import KERNELS, main


@pytest.mark.slow
def test_every_kernel_size_gets_a_speed(capsys):
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    main(["--rounds", "1", "--no-write"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 64 x")]
    cells = rows[0].strip("|").split("|")[1:]
    assert len(cells) == len(KERNELS)
    assert all(float(c.split("(")[1].rstrip(") ")) > 0 for c in cells)  # GMAC/s
