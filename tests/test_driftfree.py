"""The drift-free protocol: ratios to a reference timed beside each item, random order, and
tables and records that share one reference speed."""

import json

import numpy as np
import pytest

from hwnas.latency.records import Pass, Records
from hwnas.latency.sampling import stratified_sample
from hwnas.latency.stats import RatioStats, Stats
from hwnas.latency.table import LatencyTable
from hwnas.profilers.drift import ReferencePlan, interleave
from hwnas.spaces import get_space


class DriftingMachine:
    """A machine whose speed changes with every call (0.7x to 1.4x, a slow wave plus jitter
    shared by everything running in the same instant), and benches that cost a fixed amount of
    work on it. Not a runtime stand-in: it checks the arithmetic of ``interleave``."""

    def __init__(self, seed=0):
        self.t, self.rng = 0, np.random.default_rng(seed)

    def speed(self) -> float:
        self.t += 1
        return 1.0 + 0.3 * np.sin(self.t / 40.0) + 0.05 * self.rng.standard_normal()

    def bench(self, work_ms):
        machine = self

        class Bench:
            def time_calls(self, n):
                return np.array([work_ms * machine.speed() for _ in range(n)])

        return Bench()


def test_interleave_cancels_drift_that_raw_timing_keeps():
    machine = DriftingMachine()
    ref, item = machine.bench(2.0), machine.bench(5.0)
    raw, ratios = [], []
    for _ in range(12):  # twelve passes, far apart in the machine's wave
        t = interleave(item, ref, runs=30, warmup=2, plan=ReferencePlan(rounds=30,
                                                                        reference_runs=1))
        raw.append(t.stats().median_ms)
        ratios.append(t.ratio().median)
        machine.t += 97
    cv = lambda x: np.std(x) / np.mean(x)  # noqa: E731
    assert cv(raw) > 0.1  # what timing alone sees
    assert cv(ratios) < 0.02 and np.median(ratios) == pytest.approx(2.5, rel=0.02)


def test_table_entries_are_ratios_at_the_tables_reference_speed(tmp_path):
    key = "reference-v1-test"
    t = LatencyTable({"device": "local-cpu"})
    t.put("a", Stats.from_samples([10.0]), ratio=RatioStats.from_samples([2.0, 2.0]),
          reference=(key, 5.0))
    t.put("b", Stats.from_samples([33.0]), ratio=RatioStats.from_samples([3.0]),
          reference=(key, 11.0))  # measured in a slow minute: same machine, slower clock
    t.put("c", Stats.single(1.0))  # a number without a reference (kept as given)
    t.save(tmp_path / "t.pkl")
    back = LatencyTable.load(tmp_path / "t.pkl")
    ref = back.reference_ms
    assert ref == pytest.approx(8.0)  # the median reference ms over the table's runs
    assert back.entries["a"].median_ms == pytest.approx(2.0 * ref)
    assert back.entries["b"].median_ms == pytest.approx(3.0 * ref)
    assert back.entries["c"].median_ms == 1.0 and "c" not in back.ratios
    assert back.timed["b"].median_ms == 33.0  # what the clock said is kept beside
    with pytest.raises(Exception, match="ratios are to reference"):
        back.put("d", Stats.single(1.0), ratio=RatioStats.from_samples([1.0]),
                 reference=("another-reference", 5.0))


def test_records_share_the_tables_scale(tmp_path):
    recs = Records("local-cpu")
    arch = {"space": "x", "w": 1}
    r = RatioStats.from_samples([2.0])
    recs.add(arch, Pass(Stats.from_samples([8.0]), r, 4.0))
    recs.add(arch, Pass(Stats.from_samples([12.0]), r, 6.0))  # a slow minute, same ratio
    assert recs.find(arch).pass_ms() == [10.0, 10.0]  # at the file's own reference (5 ms)
    recs.save(tmp_path / "r.json")
    back = Records.load(tmp_path / "r.json", "local-cpu").rescale(7.0)  # the table's speed
    assert back.find(arch).pooled_ms == pytest.approx(14.0)
    old = json.loads((tmp_path / "r.json").read_text())
    old["records"].append({"arch": {"space": "x", "w": 2}, "passes": [[3, 3, 0, 3, 3, 30]]})
    (tmp_path / "r.json").write_text(json.dumps(old))  # a pass in the original format
    legacy = Records.load(tmp_path / "r.json", "local-cpu").rescale(7.0)
    assert legacy.find({"space": "x", "w": 2}).pooled_ms == 3.0  # as timed, not rescaled


def test_stratified_picks_come_in_random_order():
    space = get_space("elasticvit", [160])
    est = lambda archs: np.array([space.macs(a) for a in archs], float)  # noqa: E731
    picks = stratified_sample(space, 40, np.random.default_rng(0), est)
    macs = est(picks)
    assert len(picks) == 40
    assert not (np.all(np.diff(macs) >= 0) or np.all(np.diff(macs) <= 0))
    # and not merely unsorted: the order has no trend with size
    from scipy.stats import kendalltau

    assert abs(kendalltau(np.arange(40), macs).statistic) < 0.3


def test_a_reference_that_cannot_be_measured_is_one_clear_error(tmp_path):
    """A corrupt reference model in the export cache: the profiler says what is wrong and how
    to get out of it, and measures nothing."""
    from hwnas.device_configs import load_device
    from hwnas.errors import ProfileError
    from hwnas.profilers.onnxrt import OrtProfiler
    from hwnas.profilers.reference import REFERENCE_KEY

    import os

    bad = tmp_path / "onnx" / f"_{REFERENCE_KEY}.onnx"
    bad.parent.mkdir()
    bad.write_bytes(b"\x08\x07not an onnx model")
    before = os.sched_getaffinity(0)
    with pytest.raises(ProfileError, match=r"cannot measure the reference network .*delete "
                                           r"the cached reference.*reference: false"):
        with OrtProfiler(load_device("local-cpu"), tmp_path):
            pass
    assert os.sched_getaffinity(0) == before  # the failed entry left the process unpinned


def test_reference_off_measures_without_ratios(tmp_path):
    from hwnas.device_configs import load_device
    from hwnas.spaces.elasticvit.ops import FFN
    from hwnas.profilers.onnxrt import OrtProfiler

    cfg = load_device("local-cpu").with_overrides(reference=False, runs=5, warmup=1)
    with OrtProfiler(cfg, tmp_path) as prof:
        m = prof.measure_op_full(FFN(8, 64, 3))
        assert prof.protocol()["reference"] == "none"
    assert m.ratio is None and m.reference_ms is None and m.stats.median_ms > 0


class ColdAfterReference:
    """A network that runs slower on its first calls after anything else ran (caches, branch
    predictors and prefetchers the reference retrained), as small networks do on this
    machine: +30%, +10%, +4%, then its steady time. Checks the arithmetic of the rounds."""

    def __init__(self):
        self.since_other = 0

    def network(self, work_ms):
        machine = self

        class Bench:
            def time_calls(self, n):
                out = []
                for _ in range(n):
                    cold = (1.30, 1.10, 1.04)
                    f = cold[machine.since_other] if machine.since_other < 3 else 1.0
                    machine.since_other += 1
                    out.append(work_ms * f)
                return np.array(out)

        return Bench()

    def reference(self, work_ms):
        machine = self

        class Bench:
            def time_calls(self, n):
                machine.since_other = 0
                return np.full(n, work_ms)

        return Bench()


def test_settled_rounds_time_a_network_out_of_its_cold_start_after_the_reference():
    m = ColdAfterReference()
    net, ref = m.network(1.5), m.reference(3.5)
    bare = interleave(net, ref, runs=30, warmup=5, plan=ReferencePlan(reference_runs=1,
                                                                     rounds=30))
    assert bare.stats().median_ms == pytest.approx(1.5 * 1.30)  # the cold start, unsettled
    settled = interleave(net, ref, runs=30, warmup=5,
                         plan=ReferencePlan(reference_runs=1).settled(30, 1))
    assert len(settled.samples_ms) == 30
    assert settled.stats().median_ms == pytest.approx(1.5, rel=0.01)
    assert settled.ratio().median == pytest.approx(1.5 / 3.5, rel=0.01)


@pytest.mark.parametrize("work_ms, untimed", [(1.5, 5), (2.5, 3), (5.0, 1), (8.0, 0),
                                              (20.0, 0), (0.1, 8)])
def test_whole_networks_settle_by_their_own_time(work_ms, untimed):
    """hwnas's plan for networks: a small network is called untimed until 8 ms of it ran, so
    its timed call is out of the cold start; from 8 ms none, and never more than 8 calls."""
    from hwnas.profilers.drift import NETWORK_SETTLE_MS, settle_calls

    assert settle_calls(work_ms, NETWORK_SETTLE_MS) == untimed
    m = ColdAfterReference()
    calls = []
    net = m.network(work_ms)

    class Counted:  # the network, with each time_calls(n) it got
        def time_calls(self, n):
            calls.append(n)
            return net.time_calls(n)

    counted = Counted()
    got = interleave(counted, m.reference(3.5), runs=30, warmup=5,
                     plan=ReferencePlan(reference_runs=1).for_networks(30, 1))
    assert len(got.samples_ms) == 30
    assert calls[0] == 5 and calls[1:] == ([untimed, 1] if untimed else [1]) * 30
    # the timed call is out of the cold start once two calls ran before it
    cold = {0: 1.30, 1: 1.10, 2: 1.04}.get(untimed, 1.0)
    assert got.stats().median_ms == pytest.approx(work_ms * cold)


def test_settle_calls_refuse_nonsense():
    from hwnas.profilers.drift import settle_calls

    assert settle_calls(float("nan"), 8.0) == 0
    assert settle_calls(0.0, 8.0) == 0
    assert settle_calls(2.0, 0.0) == 0


def test_the_timing_runner_settles_networks_as_hwnas_would():
    """ssh_runner.py's port of the protocol (boards, and whole networks on local-cpu) reads the
    plan's settle calls from the wire."""
    from hwnas.profilers import ssh_runner
    from hwnas.profilers.drift import runner_plan

    m = ColdAfterReference()
    plan = ReferencePlan(reference_runs=1).settled(30, 1)
    got = ssh_runner.interleave(np, m.network(1.5), m.reference(3.5), 30, 5, runner_plan(plan))
    assert len(got["samples_ms"]) == 30
    assert np.median(got["samples_ms"]) == pytest.approx(1.5, rel=0.01)

    small = ssh_runner.interleave(np, m.network(1.5), m.reference(3.5), 30, 5,
                                  runner_plan(ReferencePlan(reference_runs=1).for_networks(30, 1)))
    assert np.median(small["samples_ms"]) == pytest.approx(1.5, rel=0.01)
    big = ssh_runner.interleave(np, m.network(20.0), m.reference(3.5), 30, 5,
                                runner_plan(ReferencePlan(reference_runs=1).for_networks(30, 1)))
    assert np.median(big["samples_ms"]) == pytest.approx(20.0 * 1.30)  # no untimed calls