"""Device kinds as a registry, and devices of a user's own (yamls in $HWNAS_HOME/devices):
listed with where they come from, ``extends``, ``override``, ``hwnas devices add``, and every
bad yaml one line. The commands are run as a user runs them (tests/cli_harness.py)."""

from __future__ import annotations

import pytest
import yaml

from cli_harness import assert_one_line, invoke
from hwnas.device_configs import device_names, load_device
from hwnas.devices import DeviceKind, get_kind, load_kinds
from hwnas.errors import DeviceError


def test_every_builtin_kind_declares_what_it_can_do():
    kinds = load_kinds()
    assert {"onnxruntime", "tflite", "adb", "cuda", "ssh", "imported"} <= set(kinds)
    assert kinds["onnxruntime"].caps.kernel_runtime == "onnxruntime"
    assert kinds["adb"].caps.serials and "nn-meter" in kinds["adb"].caps.table_formats
    assert not kinds["imported"].live and kinds["cuda"].caps.torch_modules
    cpu = load_device("local-cpu")
    assert kinds["onnxruntime"].resources(cpu) == ["cpu"]
    assert get_kind("tflite").resources(load_device("local-tflite")) == ["cpu"]  # one core


def test_a_misspelt_key_names_the_file_and_the_key(hwnas_home):
    folder = hwnas_home / "devices"
    folder.mkdir(parents=True)
    (folder / "pi.yaml").write_text("kind: ssh\nhots: pi.local\n")
    line = assert_one_line(invoke(["devices"], hwnas_home), r"pi\.yaml")
    assert "'hots'" in line and "did you mean 'host'" in line


@pytest.mark.parametrize("text, what", [
    ("kind: [", "not valid yaml"),
    ("- a\n- b\n", "mapping"),
    ("kind: onnxruntime\nruns: many\n", "runs"),
    ("kind: onnxruntime\nthreads: 1.5\n", "threads"),
    ("extends: mine\n", "extends itself"),
    ("kind: quantum\n", "unknown device kind 'quantum'"),
    ("kind: ssh\nport: 22\n", "needs host"),
    ("kind: ssh\nhost: b\nruntime: tvm\n", "runtime 'tvm' unknown"),
    ("extends: pixel6\nkind: onnxruntime\n", "extends one of its kind"),
    ("kind: onnxruntime\nserial: ABC\n", "unknown key"),
])
def test_bad_yamls_are_one_line(hwnas_home, text, what):
    folder = hwnas_home / "devices"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text(text)
    assert what in assert_one_line(invoke(["measure", "--device", "mine", "--sample", 1],
                                          hwnas_home))


def test_a_user_yaml_is_a_device_like_the_builtins(hwnas_home):
    r = invoke(["devices", "add", "lab-pixel", "--extends", "pixel6", "serial=ABC123",
                "runs=20"], hwnas_home)
    assert r.exit_code == 0, r.stderr
    cfg = load_device("lab-pixel", hwnas_home)
    assert (cfg.kind, cfg.serial, cfg.runs, cfg.affinity) == ("adb", "ABC123", 20, "0x80")
    assert "lab-pixel" in device_names(hwnas_home)
    listed = invoke(["devices", "--json"], hwnas_home)
    rows = {r["device"]: r for r in yaml.safe_load(listed.stdout)}
    assert rows["lab-pixel"]["from"].endswith("lab-pixel.yaml")
    assert rows["local-cpu"]["from"] == "built-in"
    again = invoke(["devices", "add", "lab-pixel", "--kind", "adb"], hwnas_home)
    assert "already exists" in assert_one_line(again)


def test_a_builtin_name_needs_override(hwnas_home):
    assert "built-in" in assert_one_line(invoke(["devices", "add", "local-cpu", "--kind",
                                                 "onnxruntime"], hwnas_home))
    folder = hwnas_home / "devices"
    folder.mkdir(parents=True)
    (folder / "local-cpu.yaml").write_text("kind: onnxruntime\nruns: 7\n")
    assert "override: true" in assert_one_line(invoke(["devices"], hwnas_home))
    (folder / "local-cpu.yaml").write_text("kind: onnxruntime\nruns: 7\noverride: true\n")
    assert load_device("local-cpu", hwnas_home).runs == 7


def test_bad_adds_write_nothing(hwnas_home):
    for args in (["--kind", "ssh", "host=x", "port=99999"], ["--kind", "ssh"],
                 ["--kind", "onnxruntime", "nokey"], ["--extends", "nosuch"],
                 ["--kind", "onnxruntime", "warmpu=3"]):
        assert_one_line(invoke(["devices", "add", "b"] + args, hwnas_home))
    assert not (hwnas_home / "devices" / "b.yaml").exists()


def test_a_custom_profiler_user_yaml_measures(hwnas_home, tmp_path):
    """docs/devices.md's example: a local-cpu twin with two threads, measured for real."""
    r = invoke(["devices", "add", "cpu2", "--extends", "local-cpu", "threads=2", "runs=5",
                "warmup=1", "reference_batches=1"], hwnas_home)
    assert r.exit_code == 0, r.stderr
    arch = tmp_path / "a.json"
    arch.write_text('"|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"')
    m = invoke(["measure", "--device", "cpu2", "--arch", arch], hwnas_home)
    assert m.exit_code == 0, m.stderr
    assert (hwnas_home / "devices" / "cpu2" / "records.json").exists()


def test_a_plugin_kind_registers_and_bad_ones_are_refused():
    from hwnas.devices.kinds import register_kind

    with pytest.raises(DeviceError, match="redeclares common keys"):
        register_kind(DeviceKind("bad", "x", frozenset({"description"})))
    with pytest.raises(DeviceError, match="DeviceKind"):
        register_kind("not a kind")


def test_unreachable_kinds_say_why(hwnas_home):
    r = invoke(["devices", "add", "gone", "--kind", "ssh", "host=127.0.0.1", "port=1"],
               hwnas_home)
    assert r.exit_code == 0, r.stderr
    assert_one_line(invoke(["devices", "check", "gone"], hwnas_home), "cannot be reached")
    ok = invoke(["devices", "check", "xeon-gold-6130"], hwnas_home)
    assert ok.exit_code == 0 and "nothing to reach" in ok.stdout


def test_a_table_from_another_cpu_is_refused_unless_accepted(hwnas_home, tmp_path):
    """A home copied from another machine: its local-cpu table is not this CPU's latency."""
    from cli_harness import synthetic_table

    table = synthetic_table("local-cpu", resolutions=[128])
    table.meta["cpu"] = "Imaginary CPU 9000 @ 9 GHz"
    path = hwnas_home / "devices" / "local-cpu" / "table.pkl"
    path.parent.mkdir(parents=True)
    table.save(path)
    arch = tmp_path / "a.json"
    from hwnas.spaces import get_space

    import json

    arch.write_text(json.dumps(get_space("elasticvit", [128]).smallest(128).to_dict()))
    args = ["predict", "--device", "local-cpu", "--arch", arch, "--predictor", "lut"]
    line = assert_one_line(invoke(args, hwnas_home), "Imaginary CPU 9000")
    assert "--accept-host" in line and load_device("local-cpu").name in line
    ok = invoke(args + ["--accept-host"], hwnas_home)
    assert ok.exit_code == 0, ok.stderr
    assert "ms on local-cpu" in ok.stdout


def test_docs_devices_md_commands_and_yaml_work(hwnas_home):
    """docs/devices.md, run as written: its 'hwnas devices add' lines and its hand-written
    yaml load as devices (the board itself is not reached here; tests/test_ssh.py does)."""
    import re
    import shlex
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "devices.md").read_text()
    adds = re.findall(r"^\$ (hwnas devices add [^#\n]*)", doc, re.M)
    assert len(adds) >= 3
    for line in adds:
        r = invoke(shlex.split(line)[1:], hwnas_home)
        assert r.exit_code == 0, (line, r.stderr)
    block = re.search(r"```yaml\n# \$HWNAS_HOME/devices/(\S+)\.yaml\n(.*?)```", doc, re.S)
    name, text = block.group(1), block.group(2)
    (hwnas_home / "devices" / f"{name}-by-hand.yaml").write_text(text)
    cfg = load_device(f"{name}-by-hand", hwnas_home)
    assert (cfg.kind, cfg.runtime, cfg.affinity) == ("ssh", "tflite", "0x8")
    listed = invoke(["devices"], hwnas_home)
    assert listed.exit_code == 0 and f"{name}-by-hand" in listed.stdout
