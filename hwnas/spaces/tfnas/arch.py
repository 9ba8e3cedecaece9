"""TF-NAS architectures: six stages of MBInvertedResBlocks, with a codec for TF-NAS's own
``model.config`` (what its ``parsing_model.py`` writes and ``NetworkCfg`` reads)."""

from __future__ import annotations

from dataclasses import dataclass

from hwnas.arch import ARCH_TYPES
from hwnas.arch_base import FlatArch, int_value
from hwnas.errors import ArchError


@dataclass(frozen=True)
class TFNASStage:
    cin: int
    cout: int
    stride: int
    act: str
    max_depth: int

    def block_io(self, j: int) -> tuple[int, int]:
        """(cin, stride) of the stage's j-th block."""
        return (self.cin, self.stride) if j == 0 else (self.cout, 1)


# TF-NAS's models/model_search.py: stage1 .. stage6 (the stem and second stem are in 'base')
TFNAS_STAGES: tuple[TFNASStage, ...] = (
    TFNASStage(16, 24, 2, "relu", 2),
    TFNASStage(24, 40, 2, "swish", 3),
    TFNASStage(40, 80, 2, "swish", 4),
    TFNASStage(80, 112, 1, "swish", 4),
    TFNASStage(112, 192, 2, "swish", 4),
    TFNASStage(192, 320, 1, "swish", 1),
)


def se_width(cin: int, expand: int, se: int) -> int:
    """TF-NAS's SE widths: cin for the e3 ops, 2 * cin for the e6 ops, 0 without SE."""
    return cin * expand // 3 if se else 0


@dataclass(frozen=True)
class TFNASArch(FlatArch):
    """Per stage its depth; per block (in network order) its depthwise kernel, expansion (3 or
    6: it fixes the SE width and the range of mid widths), SE flag and mid width."""

    space = "tfnas"
    resolution: int
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]
    se: tuple[int, ...]
    mids: tuple[int, ...]

    def __post_init__(self) -> None:
        self._normalise()
        if len(self.depths) != len(TFNAS_STAGES):
            raise ArchError(f"depths needs {len(TFNAS_STAGES)} entries (one per stage)")
        self._check_lengths(sum(self.depths), ("kernels", "expands", "se", "mids"), "the depths")

    def stage_slice(self, stage: int) -> slice:
        start = sum(self.depths[:stage])
        return slice(start, start + self.depths[stage])

    def blocks(self):
        """(stage, j, kernel, expand, se, mid) for every block in network order."""
        i = 0
        for s, depth in enumerate(self.depths):
            for j in range(depth):
                yield s, j, self.kernels[i], self.expands[i], self.se[i], self.mids[i]
                i += 1

    # --- TF-NAS's model.config --------------------------------------------------------
    @classmethod
    def from_tfnas_config(cls, cfg: dict, resolution: int = 224) -> "TFNASArch":
        if not isinstance(cfg, dict):
            raise ArchError("a TF-NAS model.config is a JSON object with stage1 .. stage6")
        depths, kernels, expands, se, mids = [], [], [], [], []
        for s, st in enumerate(TFNAS_STAGES):
            blocks = cfg.get(f"stage{s + 1}")
            if not isinstance(blocks, list):
                raise ArchError(f"TF-NAS config has no list 'stage{s + 1}'")
            depths.append(len(blocks))
            for j, b in enumerate(blocks):
                k, e, has_se, mid = _parse_block(b, st, j, f"stage{s + 1}[{j}]")
                kernels.append(k)
                expands.append(e)
                se.append(has_se)
                mids.append(mid)
        return cls(resolution, tuple(depths), tuple(kernels), tuple(expands), tuple(se),
                   tuple(mids))

    def to_tfnas_config(self) -> dict:
        """TF-NAS's NetworkCfg config (its classifier's out_features is set at build time)."""
        cfg: dict = {"first_stem": _conv_cfg(3, 32, 3, 2, "relu"),
                     "second_stem": _block_cfg(32, 32, 8, 16, 3, 1, "relu")}
        for s, st in enumerate(TFNAS_STAGES):
            cfg[f"stage{s + 1}"] = []
        for s, j, k, e, has_se, mid in self.blocks():
            st = TFNAS_STAGES[s]
            cin, stride = st.block_io(j)
            cfg[f"stage{s + 1}"].append(
                _block_cfg(cin, mid, se_width(cin, e, has_se), st.cout, k, stride, st.act))
        cfg["feature_mix_layer"] = _conv_cfg(320, 1280, 1, 1, "swish")
        cfg["classifier"] = {"name": "LinearLayer", "in_features": 1280, "out_features": 1000,
                             "bias": True, "use_bn": False, "affine": False, "act_func": None,
                             "ops_order": "weight_bn_act"}
        return cfg


def _parse_block(b, st: TFNASStage, j: int, where: str) -> tuple[int, int, int, int]:
    if not isinstance(b, dict) or b.get("name", "MBInvertedResBlock") != "MBInvertedResBlock":
        raise ArchError(f"{where} must be an MBInvertedResBlock config")
    cin, stride = st.block_io(j)
    expect = {"in_channels": cin, "out_channels": st.cout, "stride": stride, "act_func": st.act}
    for name, want in expect.items():
        if b.get(name) != want:
            raise ArchError(f"{where}.{name}={b.get(name)!r} not allowed; allowed: {{{want}}}")
    k = int_value(f"{where}.kernel_size", b.get("kernel_size"))
    mid = int_value(f"{where}.mid_channels", b.get("mid_channels"))
    se_ch = int_value(f"{where}.se_channels", b.get("se_channels", 0))
    if se_ch:
        if se_ch not in (cin, 2 * cin):
            raise ArchError(f"{where}.se_channels={se_ch} not allowed; allowed: "
                            f"{{0, {cin}, {2 * cin}}}")
        return k, 3 if se_ch == cin else 6, 1, mid
    # without SE the e3 and e6 ops are the same block; the wider range decides
    return k, 6 if mid > 4 * cin else 3, 0, mid


def _block_cfg(cin, mid, se, cout, k, stride, act) -> dict:
    return {"name": "MBInvertedResBlock", "in_channels": cin, "mid_channels": mid,
            "se_channels": se, "out_channels": cout, "kernel_size": k, "stride": stride,
            "groups": 1, "has_shuffle": False, "bias": False, "use_bn": True, "affine": True,
            "act_func": act}


def _conv_cfg(cin, cout, k, stride, act) -> dict:
    return {"name": "ConvLayer", "kernel_size": k, "stride": stride, "groups": 1,
            "has_shuffle": False, "bias": False, "in_channels": cin, "out_channels": cout,
            "use_bn": True, "affine": True, "act_func": act, "ops_order": "weight_bn_act"}


ARCH_TYPES[TFNASArch.space] = TFNASArch
