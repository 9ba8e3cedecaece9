import os
import pickle

import numpy as np
import pytest

from hwnas.errors import MissingKeysError, TableError, UnsafePickleError
from hwnas.latency.safeio import atomic_write_bytes, safe_load
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable
from hwnas.locks import LOCK_NAME


def _table():
    return LatencyTable({"device": "t"}, {"a": Stats.from_samples([1.0, 2.0, 3.0]),
                                          "b": Stats.single(0.5)})


def test_stats_from_samples():
    s = Stats.from_samples([1, 2, 3, 4, 100])
    assert s.median_ms == 3 and s.n == 5 and s.p10_ms < s.median_ms < s.p90_ms
    assert Stats.from_list(s.to_list()) == s


def test_round_trip_and_atomic_write(tmp_path):
    path = tmp_path / "dev" / "table.pkl"
    t = _table()
    t.save(path)
    back = LatencyTable.load(path)
    assert back.entries["a"] == t.entries["a"]
    assert back.entries["b"].median_ms == 0.5
    # no temp files left (the folder's lock file stays: deleting one is racy)
    assert [p.name for p in path.parent.iterdir() if p.name != LOCK_NAME] == ["table.pkl"]


def test_missing_keys_raise_and_list_every_key():
    t = _table()
    np.testing.assert_allclose(t.lookup(["a", "b"]), [2.0, 0.5])
    with pytest.raises(MissingKeysError) as e:
        t.lookup(["a", "zz", "yy"])
    assert e.value.missing == ["yy", "zz"]
    assert "0 ms" not in str(e.value)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "table.pkl"
    path.write_bytes(pickle.dumps({"format": "hwnas-latency-table", "x": _Evil()}))
    with pytest.raises(UnsafePickleError, match="refusing to load posix.system"):
        LatencyTable.load(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "not-a-table", "empty"])
def test_corrupt_tables_are_clear_errors(tmp_path, damage):
    path = tmp_path / "table.pkl"
    _table().save(path)
    data = path.read_bytes()
    bad = {"truncate": data[: len(data) // 2], "garbage": b"\x00hello",
           "not-a-table": pickle.dumps({"some": "dict"}), "empty": b""}[damage]
    path.write_bytes(bad)
    with pytest.raises(TableError):
        LatencyTable.load(path)


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(path, object())  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_safe_load_missing_file(tmp_path):
    with pytest.raises(TableError, match="no such file"):
        safe_load(tmp_path / "nope.pkl")
