"""The adb profiler end to end, with no phone: real adb, a stand-in phone.

THE PHONE HERE IS A STAND-IN. ``adbd_standin.py`` is a small adbd on loopback that speaks the adb
wire protocol; the real adb server (adbutils' bundled adb, on a private port) connects to it with
``adb connect``, and every push and shell command of the profiler goes through the real adbutils
client, the real server and the protocol. On it, ``benchmark_model_standin.py`` stands in for
TFLite's benchmark_model: it really runs the pushed .tflite with LiteRT (on this machine's CPU)
and prints benchmark_model's output. Numbers measured here say nothing about a phone.

Tests against a real phone are marked ``device`` and skip when none is attached.
"""

import os
import threading
import time
from pathlib import Path

import pytest
import torch

adbutils = pytest.importorskip("adbutils", reason="adb tests need adbutils (pip install "
                                                  "'hwnas[adb]')")
pytest.importorskip("ai_edge_litert", reason="the benchmark stand-in runs models with LiteRT")

from adbd_standin import set_cpu, set_zone  # noqa: E402
from standin_harness import PIXEL6, AdbServer, StandinPhone, standin_bin  # noqa: E402

from hwnas.cli.adb import devices_adb, format_devices_adb  # noqa: E402
from hwnas.device_configs import load_device  # noqa: E402
from hwnas.errors import DeviceError, ProfileError  # noqa: E402
from hwnas.latency.table import LatencyTable  # noqa: E402
from hwnas.spaces.elasticvit.ops import Attention, FFN, MBConv, TransDS  # noqa: E402
from hwnas.profilers import make_profiler  # noqa: E402
from hwnas.profilers.adb_conn import connect  # noqa: E402
from hwnas.profilers.export import tflite_export_available  # noqa: E402
from hwnas.profilers.run import profile_ops  # noqa: E402

needs_export = pytest.mark.skipif(not tflite_export_available(),
                                  reason="litert-torch is not installed: no .tflite to push")
# the blocks test_tflite.py exports and checks against torch (shared export cache)
OPS = [MBConv(16, 24, 24, 4, 1, 3, 1), TransDS(16, 32, 48, 2), Attention(8, 64, 2),
       FFN(8, 64, 3), MBConv(15, 16, 24, 4, 2, 5, 1)]


@pytest.fixture(scope="module")
def adb_server(tmp_path_factory):
    """A private adb server (its own port and HOME), killed at the end."""
    server = AdbServer.start(tmp_path_factory.mktemp("adb-home"))
    mp = pytest.MonkeyPatch()
    mp.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))  # what hwnas's adb client reads
    mp.delenv("ANDROID_SERIAL", raising=False)
    yield server
    mp.undo()
    server.stop()


@pytest.fixture
def exported(export_seeded):
    """Export the test blocks before a test, through the shared, seeded cache."""
    if tflite_export_available():
        for op in OPS:
            export_seeded(op)


@pytest.fixture
def phones(adb_server, tmp_path, exported):
    made = []

    def make(spec=PIXEL6):
        made.append(StandinPhone(adb_server, tmp_path / f"phone{len(made)}", spec).start())
        return made[-1]

    yield make
    for p in made:
        p.kill()


def pixel6(tmp_path: Path, generation: str = "new", **changes):
    """The pixel6 config on the stand-in. The reference is off unless a test turns it on: the
    tests that count benchmark runs count the blocks' own."""
    changes = dict(dict(warmup=2, runs=5, cool_poll_s=0.2, cool_max_s=20.0, reference=False),
                   **changes)
    return load_device("pixel6").with_overrides(
        benchmark_bin=str(standin_bin(tmp_path, generation)), **changes)


@needs_export
def test_profile_a_table_over_adb(phones, tflite_cache, tmp_path):
    phone = phones()
    path = tmp_path / "pixel6.pkl"
    with make_profiler(pixel6(tmp_path, reference=True), tflite_cache) as prof:
        assert len(profile_ops(prof, OPS[:3], path, progress=False)) == 3
        runs = phone.runs()
        chain = torch.nn.Sequential(OPS[0].module(), OPS[0].module()).eval()
        whole = prof.measure_model_full(chain, OPS[0].input_shape())
        # the network, the reference after it, and the one before it unless the reference after
        # the last block is still fresh (the export in between may take longer on a busy box)
        assert phone.runs() - runs in (2, 3)
    assert whole.stats.n == 5 and whole.stats.median_ms > 0
    assert whole.ratio.median == pytest.approx(whole.stats.median_ms / whole.reference_ms)
    saved = LatencyTable.load(path)
    assert set(saved.entries) == {op.key for op in OPS[:3]}
    assert all(s.n == 5 and s.median_ms > 0 for s in saved.entries.values())
    # drift-free: every block beside the reference, its ms the ratio at the table's reference
    ref = saved.meta["reference"]
    assert set(saved.ratios) == set(saved.entries) and ref["key"].startswith("reference-v2")
    assert len(ref["observations_ms"]) == 3  # one per block stored (the sentinel is not)
    for k, r in saved.ratios.items():
        assert saved.entries[k].median_ms == pytest.approx(r.median * ref["ms"])
    assert saved.meta["protocol"]["reference"] == ref["key"]
    m = saved.meta
    assert m["serial"] == phone.serial and m["affinity"] == [7] and m["affinity_mask"] == "80"
    assert m["phone"]["model"] == "Pixel 6" and m["phone"]["soc"] == "Google Tensor"
    assert m["phone"]["android"] == "14" and m["phone"]["cores"] == 8
    assert m["phone"]["governors"]["cpu7"] == "schedutil"
    assert m["phone"]["cur_khz"]["cpu7"] == 2802000
    assert m["median_source"] == "printed median" and "new output" in m["runtime_version"]
    assert m["protocol"]["phone_model"] == "Pixel 6" and m["use_xnnpack"] is True
    assert m.get("thermal_events", []) == []
    assert set((phone.root / "taskset.log").read_text().split()) == {"80"}  # pinned every run
    pushed = {p.name.rsplit("-", 1)[0] for p in (phone.root / "data/local/tmp/hwnas/models")
              .iterdir()}
    assert {op.key for op in OPS[:3]} <= pushed  # the models really went over adb sync
    assert not any("model-" in p.name for p in (phone.root / "data/local/tmp/hwnas/models")
                   .iterdir())  # measure_model cleans up after itself


@needs_export
def test_older_benchmark_model_output(phones, tflite_cache, tmp_path):
    phones()
    with make_profiler(pixel6(tmp_path, "old"), tflite_cache) as prof:
        s = prof.measure_op(OPS[0])
        assert prof.meta()["median_source"].startswith("mean")
    assert s.n == 5 and s.median_ms == s.mean_ms  # the old tool prints no median


def test_missing_benchmark_binary_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HWNAS_HOME", str(tmp_path))
    with pytest.raises(DeviceError, match=r"needs TFLite's benchmark_model binary.*"
                                          r"--benchmark-bin PATH.*android_aarch64_benchmark"):
        make_profiler(load_device("pixel6"), tmp_path)
    cfg = load_device("pixel6").with_overrides(benchmark_bin=str(tmp_path / "nope"))
    with pytest.raises(DeviceError, match="benchmark_bin .*nope does not exist"):
        make_profiler(cfg, tmp_path)
    default = tmp_path / "bin" / "android_aarch64_benchmark_model"  # the documented default
    default.parent.mkdir()
    default.write_text("#!/bin/sh\n")
    assert make_profiler(load_device("pixel6"), tmp_path).bin == default


def test_none_or_several_phones(adb_server, phones):
    with pytest.raises(DeviceError, match="no Android device attached"):
        connect()
    a, b = phones(), phones()
    with pytest.raises(DeviceError, match=f"several devices attached.*{a.serial}.*--serial"):
        connect()
    assert connect(b.serial).serial == b.serial
    with pytest.raises(DeviceError, match="127.0.0.1:1 is not attached"):
        connect("127.0.0.1:1")
    rows = devices_adb()  # hwnas devices --adb
    assert {r["serial"] for r in rows} == {a.serial, b.serial}
    assert rows[0]["model"] == "Pixel 6" and rows[0]["fastest"] == "cpu6,cpu7"
    assert rows[0]["core_mhz"] == "1803/2253/2802" and rows[0]["max_temp_c"] == 38.0
    assert a.serial in format_devices_adb(rows)


@needs_export
def test_unplugged_mid_profile_loses_nothing_and_resumes(phones, tflite_cache, tmp_path):
    phone, path, cfg = phones(), tmp_path / "t.pkl", pixel6(tmp_path)
    # probe, 4 sentinel runs (a discarded cold one + 3 for the baseline), 2 ops measured,
    # pulled during the 3rd
    watcher = phone.kill_when(runs=8)
    with pytest.raises(ProfileError, match="stopped answering"):
        with make_profiler(cfg, tflite_cache) as prof:
            profile_ops(prof, OPS, path, progress=False)
    watcher.join()
    first = LatencyTable.load(path)  # saved on the way out
    assert set(first.entries) == {op.key for op in OPS[:2]}
    phone.start()  # plugged back in
    before = phone.runs()
    with make_profiler(cfg, tflite_cache) as prof:
        table = profile_ops(prof, OPS, path, progress=False)
    assert set(table.entries) == {op.key for op in OPS}
    assert table.entries[OPS[0].key].to_list()[:3] == first.entries[OPS[0].key].to_list()[:3]
    assert phone.runs() - before == 5 + len(OPS) - 2  # probe + sentinel + the 3 missing ops


@needs_export
def test_hot_phone_waits_to_cool_and_records_it(phones, tflite_cache, tmp_path):
    phone, path = phones(), tmp_path / "hot.pkl"
    with make_profiler(pixel6(tmp_path, cool_max_s=0.5), tflite_cache) as prof:
        set_cpu(phone.root, 7, "schedutil", 1200000, 1200000, 2802000)  # throttled cap
        m = prof.measure_op_full(OPS[0])  # never cools within 0.5 s: measured, and flagged
        assert m.flag == "measured while throttling: cpu7 capped at 1200 of 2802 MHz"
        (event,) = prof.drain_events()
        assert event["cooled"] is False and "cpu7 capped at 1200 of 2802 MHz" in event["still"]
    set_cpu(phone.root, 7, "schedutil", 2802000, 2802000, 2802000)
    with make_profiler(pixel6(tmp_path), tflite_cache) as prof:
        set_zone(phone.root, 0, 65000)  # the BIG cluster at 65 C, its cap down
        set_cpu(phone.root, 7, "schedutil", 1200000, 1500000, 2802000)
        threading.Timer(1.5, lambda: (set_zone(phone.root, 0, 40000), set_cpu(
            phone.root, 7, "schedutil", 2802000, 2802000, 2802000))).start()
        t0 = time.monotonic()
        table = profile_ops(prof, OPS[:1], path, progress=False)
    assert time.monotonic() - t0 >= 1.4
    (event,) = table.meta["thermal_events"]
    assert "BIG at 65.0 C (limit 50)" in event["reason"] and "capped" in event["reason"]
    assert event["cooled"] is True and event["waited_s"] >= 1.0 and event["serial"] == phone.serial
    assert event["cur_khz"] == {"cpu7": 1200000}
    assert "cpu7 capped at 1500 of 2802 MHz" in event["reason"]


@needs_export
def test_two_phones_share_the_op_list_and_survive_a_dropout(phones, tflite_cache, tmp_path):
    a, b = phones(), phones()
    path = tmp_path / "fleet.pkl"
    with make_profiler(pixel6(tmp_path), tflite_cache, serials=(a.serial, b.serial)) as fleet:
        b.kill_when(runs=7)  # probe, 4 sentinel runs, one op done; pulled during its second op
        table = profile_ops(fleet, OPS, path, progress=False)
    assert set(table.entries) == {op.key for op in OPS}  # a finished b's share
    by = table.meta["measured_by"]
    assert by[b.serial] == 1 and by[a.serial] == len(OPS) - 1
    assert [d["serial"] for d in table.meta["phone_dropouts"]] == [b.serial]
    assert set(table.meta["phone"]) == {a.serial, b.serial}
    assert LatencyTable.load(path).meta["serials"] == [a.serial, b.serial]


@needs_export
def test_phones_of_two_models_cannot_share_a_table(phones, tflite_cache, tmp_path):
    pixel7 = dict(PIXEL6, props=dict(PIXEL6["props"], **{"ro.product.model": "Pixel 7"}))
    a, b = phones(), phones(pixel7)
    with pytest.raises(ProfileError, match="cannot share a table.*Pixel 7"):
        with make_profiler(pixel6(tmp_path), tflite_cache, serials=(a.serial, b.serial)):
            pass


@pytest.mark.device
def test_real_phone_if_attached(tmp_path):
    """On a real phone: set HWNAS_TEST_PHONE=SERIAL and HWNAS_BENCHMARK_BIN=PATH."""
    serial, binary = os.environ.get("HWNAS_TEST_PHONE"), os.environ.get("HWNAS_BENCHMARK_BIN")
    if not serial or not binary:
        pytest.skip("no phone: set HWNAS_TEST_PHONE=SERIAL and HWNAS_BENCHMARK_BIN=PATH "
                    "(TFLite's android_aarch64_benchmark_model) to run on a real phone")
    cfg = load_device("android").with_overrides(benchmark_bin=binary, runs=10)
    with make_profiler(cfg, tmp_path, serials=(serial,)) as prof:
        s = prof.measure_op(OPS[0])
    assert s.n == 10 and s.median_ms > 0
