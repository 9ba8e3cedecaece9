"""Checkpoints and subnet evaluation (BN recalibration first, always)."""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from hwnas import __version__
from hwnas.data import Dataset, ImageFolder, iterate_batches, resize_batch
from hwnas.errors import HwnasError
from hwnas.latency.safeio import atomic_write_bytes
from hwnas.supernet.model import Supernet, make_supernet, recalibrate_bn
from hwnas.supernet.spec import SpaceSpec

CHECKPOINT_FORMAT = "hwnas-supernet-checkpoint"
CHECKPOINT_SCHEMA = 1


# --- checkpoints -------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, state: dict) -> None:
    """torch.save into memory, then an atomic write: a crash never leaves half a checkpoint."""
    state = {"format": CHECKPOINT_FORMAT, "schema": CHECKPOINT_SCHEMA,
             "hwnas_version": __version__, **state}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load with ``weights_only=True``: tensors and plain containers only, never code."""
    import os
    import stat

    from hwnas.latency.safeio import file_kind

    path = Path(path)
    try:
        mode = os.stat(path).st_mode  # stat never blocks (a FIFO would, opened)
    except FileNotFoundError:
        raise HwnasError(f"supernet checkpoint not found: {path}") from None
    except OSError as e:  # a symlink loop, a folder without permission
        raise HwnasError(f"cannot read supernet checkpoint {path}: "
                         f"{(e.strerror or str(e)).lower()}") from None
    if not stat.S_ISREG(mode):
        raise HwnasError(f"{path} is {file_kind(mode)}, not a regular file; a supernet "
                         f"checkpoint is the file train-supernet wrote")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for corrupt/unsafe files; all are user input
        raise HwnasError(f"{path} is not a loadable supernet checkpoint "
                         f"({type(e).__name__}: {_gist(str(e))})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise HwnasError(f"{path} is not an hwnas supernet checkpoint")
    if state.get("schema") != CHECKPOINT_SCHEMA:
        raise HwnasError(f"{path} has checkpoint schema {state.get('schema')!r}; this hwnas "
                         f"reads schema {CHECKPOINT_SCHEMA}")
    return state


def _gist(message: str) -> str:
    """One line of torch's many-line load error: what the weights-only unpickler refused."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if ln.endswith("WeightsUnpickler error:") and i + 1 < len(lines):
            return f"refused by torch's weights-only loader: {lines[i + 1][:120]}"
        if "WeightsUnpickler error:" in ln:
            return f"refused by torch's weights-only loader: {ln.split('error:', 1)[1][:120]}"
    return lines[0][:160] if lines else "unreadable"


def load_supernet(path: str | Path, map_location="cpu") -> tuple[Supernet, dict]:
    """The trained supernet (eval mode) and its checkpoint dict."""
    state = load_checkpoint(path, map_location)
    try:
        space = SpaceSpec.from_dict(state["space"]).build()
        model = make_supernet(space)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
        raise HwnasError(f"{path} is a corrupt supernet checkpoint ({type(e).__name__}: "
                         f"{first[:160]})") from None
    return model.to(map_location).eval(), state


# --- evaluation ----------------------------------------------------------------------------------
def channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC memory layout: depthwise convolutions run (and train) ~3x faster so on CPU."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def without_augment(ds: Dataset) -> Dataset:
    if isinstance(ds, ImageFolder):
        return ds.subset(range(len(ds)), augment=False)
    return replace(ds, augment=False)


def calibrate(model: Supernet, arch, calib: Dataset, *, batch_size: int, batches: int,
              seed: int, device) -> None:
    """Select ``arch`` and re-estimate its BN statistics on un-augmented training batches."""
    model.set_active(arch)
    batches = iterate_batches(without_augment(calib), batch_size, seed=seed, limit=batches)
    recalibrate_bn(model, (channels_last(resize_batch(x.to(device), arch.resolution))
                           for x, _ in batches))


@torch.no_grad()
def top1(model, arch, ds: Dataset, *, batch_size: int, device,
         max_images: int | None = None) -> float:
    """Top-1 accuracy (0..1) of the active subnet on (the first ``max_images`` of) ``ds``."""
    model.eval()
    limit = None if max_images is None else max(1, math.ceil(max_images / batch_size))
    correct = total = 0
    for x, y in iterate_batches(ds, batch_size, shuffle=False, drop_last=False, limit=limit):
        logits = model(channels_last(resize_batch(x.to(device), arch.resolution)))
        correct += int((logits.argmax(1).cpu() == y).sum())
        total += len(y)
    if total == 0:
        raise HwnasError("the evaluation split is empty")
    return correct / total


def evaluate_subnet(model, arch, calib: Dataset, ds: Dataset, *, batch_size: int = 64,
                    calib_batches: int = 8, max_images: int | None = None, seed: int = 0,
                    device="cpu") -> float:
    """Recalibrate BN for ``arch`` on ``calib``, then its top-1 on ``ds``."""
    calibrate(model, arch, calib, batch_size=batch_size, batches=calib_batches, seed=seed,
              device=device)
    return top1(model, arch, ds, batch_size=batch_size, device=device, max_images=max_images)


@torch.no_grad()
def batch_losses(model, archs, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Cross-entropy of each arch on one batch, with batch-statistics BN (as in training)."""
    was_training = model.training
    model.train()
    out = []
    for arch in archs:
        model.set_active(arch)
        out.append(float(F.cross_entropy(model(channels_last(resize_batch(x, arch.resolution))),
                                         y)))
    model.train(was_training)
    return out
