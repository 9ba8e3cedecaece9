"""Supernets (ElasticViT's stages; the single-stage ``vit`` spaces): weight-sharing training
with latency-aware sampling, and search by the supernet's own accuracy under a latency target.

    elastic.py      elastic layers (weight slicing): conv, depthwise (centre crop), BN, linear, LN
    blocks.py       elastic versions of hwnas.blocks, configured per call by the op's OpSpec
    model.py        Supernet (set_active, extract), ElasticViTSupernet, make_supernet,
                    recalibrate_bn
    blocks_vit.py   elastic ViT token blocks (patch embedding, attention, MLP, head)
    model_vit.py    ViTSupernet over a ViTSpace (identity blocks for depth)
    pools_vit.py    the ViT family's sized sampling and depth-vs-width comparison
    spec.py         SpaceSpec: the (narrowed) space a pools file or a checkpoint belongs to
    pools.py        offline architecture pools per latency / FLOPs level
    sampling.py     complexity- and performance-aware sampler; uniform sandwich baseline
    train.py        the training loop (ElasticViT step, distillation, AdamW + cosine, AMP, resume)
    distributed.py  torchrun data parallelism (one gradient all-reduce per step)
    evaluate.py     checkpoints, BN-recalibrated evaluation
    search.py       accuracy objective for hwnas.search.evolution, result files
    latency.py      latency callables (device LUT predictor, table sum, FLOPs stand-in)
    workflows.py    build pools for a device, search a checkpoint (what the CLI calls)

torch is imported by the submodules, not here, so ``import hwnas.supernet`` stays cheap.
"""
