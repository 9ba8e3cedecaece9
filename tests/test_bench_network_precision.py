"""benchmarks/network_precision.py: one subnet, two repeats, each way timed (nothing written)."""

from benchmarks.network_precision import main


def test_each_way_gets_a_noise_floor_against_hwnas_protocol(capsys):
    main(["--nets", "1", "--repeats", "2", "--no-write"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")
            and not line.startswith("| way")]
    ways = {r.split("|")[1].strip(): r for r in rows}
    assert set(ways) == {"one call a round (hwnas)", "settled rounds",
                         "settled rounds, 3 reference calls", "settled rounds, one batch"}
    assert "| +0.0% |" in ways["one call a round (hwnas)"]  # the baseline against itself
    for r in rows:
        assert float(r.split("|")[-2]) > 0  # seconds per measurement
