"""benchmarks/process_protocol.py: one round on one subnet, each way timed (nothing written)."""

from benchmarks.process_protocol import main


def test_one_round_times_each_way(capsys):
    main(["--subnets", "1", "--rounds", "2", "--no-write"])
    out = capsys.readouterr().out
    assert "| 0 |" in out and "fresh process: vs fresh process" in out
    assert "+0.0% (" in out  # the fresh process against itself
