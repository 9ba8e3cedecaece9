"""Ratios to one reference network are in its unit: files timed against another (v1, before
the reference became the 224 px subnet) never share a scale with this hwnas's measurements."""

import pytest

from cli_harness import assert_one_line, assert_untouched, invoke, snapshot
from hwnas.latency.records import Pass, Records
from hwnas.latency.stats import RatioStats, Stats
from hwnas.latency.table import LatencyTable
from hwnas.profilers.reference import LEGACY_REFERENCE_KEY, REFERENCE_KEY

ARCH = {"space": "x", "w": 1}


def _records(meta=None, drift_free=True) -> Records:
    recs = Records("local-cpu", meta=dict(meta or {}))
    ratio = RatioStats.from_samples([2.0]) if drift_free else None
    recs.add(ARCH, Pass(Stats.from_samples([8.0]), ratio, 4.0 if drift_free else None))
    return recs


def test_records_name_their_reference():
    assert _records({"protocol": {"reference": REFERENCE_KEY}}).reference_key == REFERENCE_KEY
    # drift-free passes with no key were written by measure_archs before v2: all v1
    assert _records().reference_key == LEGACY_REFERENCE_KEY
    assert _records(drift_free=False).reference_key is None  # plain ms: any table's scale


def _table(key: str, ms: float) -> LatencyTable:
    t = LatencyTable({"device": "local-cpu"})
    t.put("a", Stats.from_samples([ms]), ratio=RatioStats.from_samples([1.0]),
          reference=(key, ms))
    return t


def test_a_table_scales_only_ratios_to_its_own_reference(tmp_path, caplog):
    from hwnas import api

    ctx = api.context("local-cpu", home=tmp_path)
    assert api.reference_scale_ms(ctx, _table(REFERENCE_KEY, 9.0)) == 9.0
    # a v1 table (5 ms) would put v2 ratios at little over half their ms: no scale, and say so
    assert api.reference_scale_ms(ctx, _table(LEGACY_REFERENCE_KEY, 5.0)) is None
    assert "re-profile the table" in caplog.text
    assert api.reference_scale_ms(ctx, _table(LEGACY_REFERENCE_KEY, 5.0),
                                  key=LEGACY_REFERENCE_KEY) == 5.0


def test_v1_records_read_at_their_own_speed_beside_a_v2_table(tmp_path):
    from hwnas import api

    ctx = api.context("local-cpu", home=tmp_path)
    ctx.paths.root.mkdir(parents=True)
    _table(REFERENCE_KEY, 9.0).save(ctx.paths.table)
    _records().save(ctx.paths.records)  # v1: ratio 2 at its own 4 ms reference
    assert api.load_records(ctx).find(ARCH).pooled_ms == pytest.approx(8.0)  # not 2 x 9 ms
    _records({"protocol": {"reference": REFERENCE_KEY}}).save(tmp_path / "v2.json")
    v2 = api.load_records(ctx, tmp_path / "v2.json")
    assert v2.find(ARCH).pooled_ms == pytest.approx(18.0)  # at the table's speed


@pytest.mark.parametrize("args", [["--sample", "1"], ["--model", "elastic_T1"]],
                         ids=["subnets", "any-model"])
def test_measuring_into_v1_records_is_one_clear_error_and_touches_nothing(tmp_path, args):
    from hwnas.home import device_paths

    paths = device_paths("local-cpu", tmp_path)
    paths.root.mkdir(parents=True)
    _records().save(paths.records)
    before = snapshot(tmp_path)
    res = invoke(["measure", "--device", "local-cpu", *args, "--runs", "3", "--warmup", "1"],
                 tmp_path)
    assert_one_line(res, r"timed against reference .*v1.*move the file aside")
    assert_untouched(before, tmp_path)
