"""benchmarks/kernel_context.py: one small hwnas network, hot and one eviction read (nothing
written)."""

import pytest

from benchmarks.kernel_context import main, parse_variants


def test_variants_are_hot_or_reads_in_megabytes():
    assert parse_variants("hot, 0,2.5") == ["hot", "0", "2.5"]
    for bad in ("cold", "-1", "nan", ""):
        with pytest.raises(ValueError, match="--variants"):
            parse_variants(bad)


def test_each_kernel_is_timed_alone_beside_its_in_network_profile(capsys):
    main(["--models", "mobilenetv2", "--variants", "hot,4", "--runs", "3", "--no-write"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| mobilenetv2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    net = float(cells[1])
    assert net > 0
    for cell in cells[2:]:  # in-network profile, then hot and read 4 MB: "ms (+x%)"
        ms = float(cell.split()[0])
        assert 0.2 * net < ms < 5 * net, (cell, net)
    assert "| nchwc.Conv " in out or "| Conv " in out  # the per-kind table
