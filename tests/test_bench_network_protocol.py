"""benchmarks/network_protocol.py: one subnet, two rounds, each way timed (nothing written)."""

from benchmarks.network_protocol import main


def test_each_way_is_timed_against_back_to_back(capsys):
    main(["--nets", "1", "--rounds", "2", "--runtimes", "onnxruntime", "--no-write"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| onnxruntime | subnet 0"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[3]) > 0  # back to back, ms
    for cell in cells[4:]:  # each way over back to back, with its SD over rounds
        pct = float(cell.split("%")[0])
        assert -50 < pct < 100, cell
