"""Pure parts of the adb path: phone facts, throttling decisions, device picking, configs."""

import pytest

from hwnas.device_configs import _builtin_sources, device_names, load_device, parse_config
from hwnas.errors import DeviceError
from hwnas.profilers import android
from hwnas.profilers.adb_conn import Attached, pick_serial, server_port

PHONES = ("pixel1", "pixel4", "pixel6", "pixel7", "xiaomi11", "android")

GETPROP = """[ro.product.model]: [Pixel 6]
[ro.product.manufacturer]: [Google]
[ro.soc.manufacturer]: [Google]
[ro.soc.model]: [Tensor]
[ro.build.version.release]: [14]
[ro.build.version.sdk]: [34]
[ro.product.cpu.abi]: [arm64-v8a]
[persist.empty]: []
"""
CPUS = """cpu0 schedutil 300000 1803000 1803000
cpu4 schedutil 400000 2253000 2253000
cpu6 schedutil 500000 2802000 2802000
cpu7 schedutil 500000 2802000 2802000
cpu8 - 0 0 0
"""
ZONES = """thermal_zone0 BIG 41000
thermal_zone1 MID 39500
thermal_zone2 battery 30000
thermal_zone3 skin therm 35
thermal_zone4 broken -
"""


def test_facts_from_getprop_cores_and_zones():
    cores, zones = android.parse_cores(CPUS), android.parse_zones(ZONES)
    facts = android.summarize(android.parse_getprop(GETPROP), cores, zones)
    assert facts["model"] == "Pixel 6" and facts["soc"] == "Google Tensor"
    assert facts["android"] == "14" and facts["sdk"] == "34" and facts["cores"] == 5
    assert facts["peak_khz"]["cpu7"] == 2802000 and facts["governors"]["cpu8"] == "-"
    assert facts["temps_c"] == {"BIG": 41.0, "MID": 39.5, "battery": 30.0, "skin therm": 35.0}
    assert android.parse_getprop(GETPROP)["persist.empty"] == ""


def test_affinity_on_the_phone():
    cores = android.parse_cores(CPUS)
    assert android.phone_cpus("auto", 1, cores) == [7]  # fastest peak, highest id
    assert android.phone_cpus("auto", 2, cores) == [6, 7]
    assert android.phone_cpus("0x80", 1, cores) == [7]
    assert android.phone_cpus("none", 1, cores) is None
    assert android.mask_hex([7]) == "80" and android.mask_hex([4, 5, 6]) == "70"
    with pytest.raises(DeviceError, match="names CPUs"):
        android.phone_cpus("0x200", 1, cores)


def test_throttle_reasons():
    cfg = load_device("pixel6")
    cores, zones = android.parse_cores(CPUS), android.parse_zones(ZONES)
    ref = {7: 2802000}
    # schedutil: a low current clock between runs is the governor idling, not heat
    assert android.throttle_reason(cores, zones, [7], ref, cfg) is None
    capped = android.parse_cores("cpu7 schedutil 1200000 1500000 2802000")
    assert "cpu7 capped at 1500 of 2802 MHz" in android.throttle_reason(capped, [], [7], ref, cfg)
    fixed = android.parse_cores("cpu7 performance 2000000 2802000 2802000")
    assert "cpu7 at 2000 of 2802 MHz" in android.throttle_reason(fixed, [], [7], ref, cfg)
    hot = android.parse_zones("thermal_zone0 BIG 61000\nthermal_zone1 battery 70000")
    reason = android.throttle_reason(cores, hot, [7], ref, cfg)
    assert reason == "BIG at 61.0 C (limit 50)"  # battery is not a watched zone
    assert android.throttle_reason(cores, hot, [7], ref,
                                   cfg.with_overrides(thermal_limit_c=0)) is None  # 0 = off


def test_pick_serial():
    one = [Attached("A", "device")]
    two = [Attached("A", "device"), Attached("B", "device")]
    assert pick_serial(one, env={}) == "A"
    assert pick_serial(two, "B", env={}) == "B"
    assert pick_serial(two, env={"ANDROID_SERIAL": "B"}) == "B"
    with pytest.raises(DeviceError, match="no Android device attached"):
        pick_serial([], env={})
    with pytest.raises(DeviceError, match=r"several devices attached \(A \(device\), B"):
        pick_serial(two, env={})
    with pytest.raises(DeviceError, match="C is not attached; attached: A"):
        pick_serial(two, "C", env={})
    with pytest.raises(DeviceError, match="unauthorized"):
        pick_serial([Attached("A", "unauthorized")], env={})
    with pytest.raises(DeviceError, match="offline"):
        pick_serial([Attached("A", "offline")], env={})
    assert server_port({}) == 5037 and server_port({"ANDROID_ADB_SERVER_PORT": "5099"}) == 5099


@pytest.mark.parametrize("name", PHONES)
def test_phone_configs(name):
    cfg = load_device(name)
    assert cfg.kind == "adb" and cfg.threads == 1 and cfg.use_xnnpack
    cores = {i: android.Core(i, "schedutil", 1, 1, 1) for i in range(8)}
    cpus = android.phone_cpus(cfg.affinity, cfg.threads, cores)
    assert cpus is not None and len(cpus) == cfg.threads
    if name != "android":
        text = _builtin_sources()[name].text
        assert "# " in text.split("affinity:")[0].splitlines()[-1]  # the mask's source is given


def test_imported_tables_still_named_and_local_tflite():
    for name in ("pixel1", "pixel4", "pixel6", "xiaomi11"):
        assert "nn-Meter" in load_device(name).source  # their tables can still be imported
    cfg = load_device("local-tflite")
    assert cfg.kind == "tflite" and "local-tflite" in device_names()


def test_new_config_fields_are_validated():
    with pytest.raises(DeviceError, match="use_xnnpack"):
        parse_config("x", "description: x\nprofiler: tflite\nuse_xnnpack: maybe\n")
    with pytest.raises(DeviceError, match="freq_drop"):
        parse_config("x", "description: x\nprofiler: adb\nfreq_drop: 1.5\n")
    with pytest.raises(DeviceError, match="unknown key"):
        parse_config("x", "description: x\nprofiler: adb\nbenchmark_binary: /x\n")
