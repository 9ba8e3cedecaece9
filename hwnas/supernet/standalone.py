"""Supernet quality: train subnets alone and rank-correlate with their inherited accuracy.

A supernet is good for search when the order of its subnets' inherited accuracies matches the
order they reach when each is trained alone; Kendall's tau between the two is the usual
measure (NAS-Bench style). ``train_alone`` trains the static model the profilers measure
(``space.build_model(arch)``), from scratch, with the supernet's own recipe (AdamW, cosine with
warm-up, label smoothing, channels-last batches) on the same training split, and reports its
top-1 on the same test split the inherited accuracy is measured on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.data import DataSplits, iterate_batches, resize_batch
from hwnas.supernet.evaluate import channels_last


@dataclass(frozen=True)
class AloneConfig:
    steps: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 15
    min_lr_ratio: float = 0.01
    label_smoothing: float = 0.1
    seed: int = 0
    eval_batch_size: int = 128


@dataclass(frozen=True)
class AloneResult:
    arch: object
    top1: float
    steps: int
    seconds: float


def _lr(step: int, cfg: AloneConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + np.cos(np.pi * t)))


def train_alone(space, arch, data: DataSplits, cfg: AloneConfig = AloneConfig(), *,
                max_eval_images: int | None = None) -> AloneResult:
    """Train ``space.build_model(arch)`` alone for ``cfg.steps``; its top-1 on ``data.test``."""
    from hwnas.supernet.train import param_groups

    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = space.build_model(arch)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    step, epoch = 0, 0
    model.train()
    while step < cfg.steps:
        for x, y in iterate_batches(data.train, cfg.batch_size, seed=cfg.seed, epoch=epoch):
            for g in opt.param_groups:
                g["lr"] = _lr(step, cfg)
            logits = model(channels_last(resize_batch(x, arch.resolution)))
            F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if step >= cfg.steps:
                break
        epoch += 1
    model.eval()
    correct = total = 0
    limit = None if max_eval_images is None else -(-max_eval_images // cfg.eval_batch_size)
    with torch.no_grad():
        for x, y in iterate_batches(data.test, cfg.eval_batch_size, shuffle=False,
                                    drop_last=False, limit=limit):
            pred = model(channels_last(resize_batch(x, arch.resolution))).argmax(1)
            correct += int((pred == y).sum())
            total += len(y)
    return AloneResult(arch, correct / total, step, time.perf_counter() - t0)


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b between two score lists (ties handled as scipy does)."""
    from scipy.stats import kendalltau

    return float(kendalltau(np.asarray(a), np.asarray(b)).statistic)


__all__ = ["AloneConfig", "AloneResult", "kendall_tau", "train_alone"]
