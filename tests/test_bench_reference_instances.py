"""benchmarks/reference_instances.py: two processes, two instances each (nothing written)."""

from benchmarks.reference_instances import main


def test_the_reference_is_timed_per_process_and_instance(capsys):
    main(["--processes", "2", "--instances", "2", "--rounds", "3", "--runtimes",
          "onnxruntime", "--zoo", "", "--no-write"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| onnxruntime |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[1]) > 0  # the reference's ms
    for cell in cells[2:5]:  # spreads, as a share of the mean
        assert 0 <= float(cell.rstrip("%")) < 100, cell
