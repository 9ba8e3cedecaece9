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
    latency.py      latency callables (table sum, FLOPs stand-in) and their factory types
    workflows.py    search a checkpoint, given a latency function and a measurer
    multidevice.py  one supernet searched for many devices through one accuracy cache

What a device gives (its predictor, its profiler) arrives as callables: hwnas.api.supernet
builds them from a device's name. This package never imports hwnas.api or hwnas.cli, not even
inside a function (tested); only __main__.py, the ``python -m hwnas.supernet`` program that runs
the CLI's supernet commands, does, and nothing imports it.

A family's own elastic blocks and supernet class live in its package (for example
hwnas/spaces/elasticvit/elastic.py and supernet.py; hwnas/spaces/vit/elastic.py, supernet.py
and pools.py); ``SearchSpace.make_supernet`` builds it.

torch is imported by the submodules, not here, so ``import hwnas.supernet`` stays cheap.
"""
