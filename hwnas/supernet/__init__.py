"""Supernets (ElasticViT's stages; the single-stage ``vit`` spaces): weight-sharing training
with latency-aware sampling, and search by the supernet's own accuracy under a latency target.

    elastic.py      elastic layers (weight slicing): conv, depthwise (centre crop), BN, linear, LN
    model.py        Supernet (set_active, extract), make_supernet (asks the space), recalibrate_bn
    spec.py         SpaceSpec: the (narrowed) space a pools file or a checkpoint belongs to
    pools.py        offline architecture pools per latency / FLOPs level
    sampling.py     complexity- and performance-aware sampler; uniform sandwich baseline
    train.py        the training loop (ElasticViT step, distillation, AdamW + cosine, AMP, resume)
    distributed.py  torchrun data parallelism (one gradient all-reduce per step)
    evaluate.py     checkpoints, BN-recalibrated evaluation
    search.py       accuracy objective for hwnas.search.evolution, result files
    latency.py      latency callables (device LUT predictor, table sum, FLOPs stand-in)
    workflows.py    build pools for a device, search a checkpoint (what the CLI calls)

A family's own elastic blocks and supernet class live in its package (for example
hwnas/spaces/elasticvit/elastic.py and supernet.py; hwnas/spaces/vit/elastic.py, supernet.py
and pools.py); ``SearchSpace.make_supernet`` builds it.

torch is imported by the submodules, not here, so ``import hwnas.supernet`` stays cheap.
"""
