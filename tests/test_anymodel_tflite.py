"""Any model on TFLite: the converted model's operator list as kernels, single-op models, and
measuring a .tflite file on local-tflite and on a phone (the adb stand-in; NOT a phone)."""

import numpy as np
import pytest
import torch

from hwnas.anymodel import api
from hwnas.anymodel import model as mfile
from hwnas.anymodel.graph import Pack, components, export_tflite_bytes
from hwnas.anymodel.tflite import detect, read_flatbuffer
from hwnas.errors import ModelError
from hwnas.latency.records import Records
from hwnas.profilers.export import tflite_export_available

pytest.importorskip("ai_edge_litert", reason="TFLite tests need LiteRT (pip install "
                                             "'hwnas[tflite]')")
needs_export = pytest.mark.skipif(not tflite_export_available(),
                                  reason="litert-torch is not installed (pip install "
                                         "'hwnas[tflite-export]'); no .tflite to read")
FAST = dict(warmup=1, runs=3)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, 2, 1)
        self.dw = torch.nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        y = torch.relu(self.dw(torch.relu(self.conv(x))))
        return self.fc(y.mean((2, 3)))


@pytest.fixture(scope="module")
def net_tflite(tmp_path_factory):
    if not tflite_export_available():
        pytest.skip("litert-torch is not installed: no .tflite to read")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tfl") / "net.tflite"
    path.write_bytes(export_tflite_bytes(Net().eval(), [(1, 3, 32, 32)]))
    return path


@pytest.fixture(scope="module")
def tflite_runtime_files(tflite_cache):
    """The reference network's and the call-overhead model's .tflite, converted once for the
    module (litert-torch takes minutes for the reference on a busy machine)."""
    from hwnas.profilers.export import tflite_overhead_model
    from hwnas.profilers.reference import reference_tflite

    return [reference_tflite(tflite_cache), tflite_overhead_model(tflite_cache)]


@pytest.fixture
def home_with_runtime_files(hwnas_home, tflite_runtime_files):
    """This test's HWNAS_HOME, its export cache seeded with the converted runtime files."""
    import shutil

    dest = hwnas_home / "cache" / "tflite"
    dest.mkdir(parents=True, exist_ok=True)
    for f in tflite_runtime_files:
        shutil.copy(f, dest / f.name)
    return hwnas_home


def _interpreter(data, preserve=False):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=bytes(data), num_threads=1,
                     experimental_preserve_all_tensors=preserve)
    it.allocate_tensors()
    return it


@needs_export
def test_operator_list_is_the_kernels(net_tflite):
    g = detect(net_tflite.read_bytes(), "net.tflite")
    kinds = [k.kind for k in g.kernels]
    assert "CONV_2D" in kinds and "DEPTHWISE_CONV_2D" in kinds
    assert "FULLY_CONNECTED" in kinds and not [k for k in kinds if k in ("RELU", "ADD")]
    conv = next(k for k in g.kernels if k.kind == "CONV_2D")
    # NHWC, as the converter made it (which may pad explicitly: 34 x 34 into a VALID conv)
    assert conv.inputs[0].shape[0] == 1 and conv.inputs[0].shape[3] == 3
    assert conv.outputs[0].shape == (1, 16, 16, 16)
    assert conv.flops == 2 * 16 * 16 * 16 * 3 * 9
    f = conv.features()
    assert (f["kh"], f["stride"], f["cin"], f["cout"], f["act"]) == (3, 2, 3, 16, 1)


@needs_export
def test_each_operator_as_its_own_model_computes_what_it_did_in_the_network(net_tflite):
    data = net_tflite.read_bytes()
    g = detect(data, "net.tflite")
    full = _interpreter(data, preserve=True)
    x = np.random.default_rng(0).standard_normal((1, 32, 32, 3)).astype(np.float32)
    full.set_tensor(full.get_input_details()[0]["index"], x)
    full.invoke()
    for k in g.kernels:
        one = _interpreter(g.extract(k))
        ins = one.get_input_details()
        assert len(ins) == len(k.dynamic_inputs)
        for d, t in zip(ins, k.dynamic_inputs):
            one.set_tensor(d["index"], full.get_tensor(int(t.name)))
        one.invoke()
        got = one.get_tensor(one.get_output_details()[0]["index"])
        np.testing.assert_allclose(got, full.get_tensor(int(k.outputs[0].name)), rtol=1e-4,
                                   atol=1e-5)


@needs_export
def test_tflite_files_are_validated(net_tflite, tmp_path):
    data = net_tflite.read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[:len(data) // 3])
    with pytest.raises(ModelError, match="not a valid TFLite model"):
        mfile.load_model(cut, "tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        mfile.load_model(junk, "tflite")
    # a dynamic batch dimension: refused without --input-shape, fixed with it
    from ai_edge_litert.tools import flatbuffer_utils as fb

    m = read_flatbuffer(data)
    t = m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]]
    t.shapeSignature = [-1, 32, 32, 3]
    dyn = tmp_path / "dyn.tflite"
    dyn.write_bytes(bytes(fb.convert_object_to_bytearray(m)))
    with pytest.raises(ModelError, match=r"\[\?, 32, 32, 3\] is not fixed"):
        mfile.load_model(dyn, "tflite")
    fixed = mfile.load_model(dyn, "tflite", (1, 32, 32, 3))
    assert _interpreter(fixed.data).get_input_details()[0]["shape"].tolist() == [1, 32, 32, 3]


@needs_export
def test_measure_a_tflite_file_on_local_tflite(net_tflite, home_with_runtime_files):
    hwnas_home = home_with_runtime_files
    got = api.measure("local-tflite", tflite=net_tflite, **FAST)
    assert got.latency_ms > 0 and got.drift_free
    rec = Records.load(got.records_path, "local-tflite").find(got.model.record_arch())
    assert rec is not None and rec.arch["format"] == "tflite"
    # one kernel, timed the way the kernel profiler times it
    from hwnas.anymodel.profile import KernelTimer
    from hwnas.device_configs import load_device
    from hwnas.profilers import make_profiler

    g = detect(net_tflite.read_bytes())
    with make_profiler(load_device("local-tflite").with_overrides(**FAST),
                       hwnas_home / "cache") as prof:
        m = KernelTimer(prof, "tflite").kernel(g, g.kernels[0])
        # and in network context (weights evicted, a twin warms the code, inputs touched)
        net = KernelTimer(prof, "tflite", "network").kernel(g, g.kernels[0])
    assert m.stats.n == 3 and m.ratio.median > 0
    assert net.stats.n == 3 and net.ratio.median > 0


@needs_export
@pytest.mark.slow
def test_a_pack_converts_once_and_each_kernel_knows_its_block():
    blocks = [torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, 1, 1), torch.nn.ReLU()).eval(),
              torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU()).eval()]
    pack = Pack(blocks, [(1, 8, 16, 16), (1, 10, 32)])
    g = detect(export_tflite_bytes(pack.module, pack.shapes))
    owner = components(g.kernels, 2, [str(i) for i in g.model.subgraphs[0].inputs])
    by_block = {i: {k.kind for k, o in zip(g.kernels, owner) if o == i} for i in (0, 1)}
    assert "CONV_2D" in by_block[0] and "FULLY_CONNECTED" in by_block[1]
    assert "FULLY_CONNECTED" not in by_block[0] and "CONV_2D" not in by_block[1]


# --- a phone over adb (the stand-in) ---------------------------------------------------------
@pytest.fixture(scope="module")
def adb_phone(tmp_path_factory):
    pytest.importorskip("adbutils", reason="adb tests need adbutils (pip install 'hwnas[adb]')")
    from standin_harness import AdbServer, StandinPhone, standin_bin

    root = tmp_path_factory.mktemp("adb")
    server = AdbServer.start(root / "adb-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
    mp.delenv("ANDROID_SERIAL", raising=False)
    phone = StandinPhone(server, root / "phone").start()
    yield phone, standin_bin(root)
    phone.kill()
    mp.undo()
    server.stop()


@needs_export
def test_measure_a_tflite_file_on_a_phone_over_adb(net_tflite, adb_phone,
                                                  home_with_runtime_files):
    phone, binary = adb_phone
    got = api.measure("pixel6", tflite=net_tflite, benchmark_bin=str(binary), warmup=2, runs=5,
                      cool_poll_s=0.2, cool_max_s=20.0)
    assert got.latency_ms > 0 and got.drift_free and got.passes[0].timed.n == 5
    pushed = [p.name for p in (phone.root / "data/local/tmp/hwnas/models").iterdir()]
    assert any(got.model.sha256[:16] in p for p in pushed)  # the file went over adb sync
    rec = Records.load(got.records_path, "pixel6").find(got.model.record_arch())
    assert rec is not None


@needs_export
def test_the_converter_pads_a_strided_convolution_explicitly_and_the_pad_is_fused(net_tflite):
    """litert-torch writes PyTorch's symmetric padding of a strided conv as a PAD into a VALID
    CONV_2D: the form XNNPACK folds. If the converter stops writing it so, this says so."""
    from hwnas.anymodel.kernels import fused_mask

    ks = list(detect(net_tflite.read_bytes(), "net.tflite").kernels)
    mask = fused_mask(ks)
    fused = [k for k, m in zip(ks, mask) if m]
    assert [k.op for k in fused] == ["PAD"]
    nxt = ks[ks.index(fused[0]) + 1]
    assert nxt.op == "CONV_2D" and nxt.inputs[0].shape == (1, 34, 34, 3)
