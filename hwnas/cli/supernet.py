"""Click commands for the supernet: ``train-supernet`` and ``build-pools``, and the
supernet half of ``hwnas search`` (``search_route`` / ``search_many``).

The main CLI registers them (``for c in COMMANDS: main.add_command(c)``). Every command only
parses its options and calls the library; torch is imported inside the commands so that
``hwnas --help`` stays fast. ``hwnas search --supernet CKPT`` lives in the main CLI: one device
and one target call ``hwnas.api.supernet.search_from_checkpoint``; lists of devices or
targets, or ``--pareto``, call ``search_many`` here (``hwnas.api.supernet.search_devices``).
Device names become latency functions and measurers in hwnas.api.supernet, never in
hwnas.supernet, which sits below the API.
"""

from __future__ import annotations

import click

from hwnas.cli.types import POSITIVE_MS, SEED, Finite, FloatList, OutputPath, to_stdout

# hwnas.supernet.spec.PRESETS, repeated so that --help does not import the spaces (tested)
PRESETS = ("full", "tiny", "vit", "vit-tiny")


def _data(spec: str) -> str:
    """--data as given, refused when empty: '' would otherwise be read as the current folder."""
    if not spec.strip():
        raise click.BadParameter(f"{spec!r} names no dataset; give digits, shapes[:...] or an "
                                 f"ImageFolder directory (./ for the current one)")
    return spec


def _ints(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}",
                                 param_hint="'--resolutions'") from None
    if any(not 1 <= v <= 4096 for v in values):
        raise click.BadParameter(f"resolutions are 1..4096 pixels, got {text!r}",
                                 param_hint="'--resolutions'")
    return values


def space_options(f):
    """--preset/--resolutions/--max-depth: which (narrowed) space, elasticvit or vit."""
    f = click.option("--max-depth", type=click.IntRange(1, 64), default=None,
                     help="Cap the depth choices, of every stage or of a ViT's "
                          "blocks (CPU-sized supernets).")(f)
    f = click.option("--resolutions", default=None,
                     help="Comma-separated input resolutions (default: the preset's).")(f)
    f = click.option("--preset", type=click.Choice(PRESETS), default=None,
                     help="'full' ElasticViT stages (default), 'tiny' (tests, demos), 'vit' "
                          "(single-stage AutoFormer/ViTAS-style space) or 'vit-tiny'.")(f)
    return f


def _spec(preset, resolutions, max_depth, classes):
    from hwnas.supernet.spec import SpaceSpec

    return SpaceSpec(preset or "full", _ints(resolutions), classes, max_depth)


@click.command("build-pools")
@click.option("--device", default=None, help="Named device whose latency predictor is used.")
@click.option("--levels", required=True, type=FloatList(POSITIVE_MS),
              help="Comma-separated levels, ascending: ms, or MMACs for flops.")
@click.option("--metric", type=click.Choice(["latency", "flops"]), default="latency",
              show_default=True)
@click.option("--bound", type=POSITIVE_MS, default=None,
              help="Accept archs within +/- bound of a level (default: a quarter of the "
                   "closest level spacing).")
@click.option("--per-level", type=click.IntRange(1, 100_000), default=64, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--classes", type=click.IntRange(2, 1_000_000), default=1000, show_default=True,
              help="Classifier width counted in FLOPs levels (latency tables use 1000).")
@click.option("--out", required=True, type=OutputPath(), help="Pools JSON to write.")
@click.option("--predictor", "predictor_kind", type=click.Choice(["auto", "lut", "kernel", "e2e"]),
              default="auto", show_default=True,
              help="The device's latency predictor (see 'hwnas search --help').")
@space_options
def build_pools(device, levels, metric, bound, per_level, seed, classes, out, predictor_kind,
                preset, resolutions, max_depth):
    """Sample offline pools of architectures per latency (or FLOPs) level."""
    from hwnas.api.supernet import build_pools_for

    spec = _spec(preset, resolutions, max_depth, classes)
    pools = build_pools_for(spec, metric=metric, levels=levels, out=out, device=device,
                            bound=bound, per_level=per_level, seed=seed,
                            predictor=predictor_kind)
    err = to_stdout(out)  # the pools JSON is on stdout: the report goes to stderr
    for lv, members in zip(pools.levels, pools.members):
        costs = [c for _, c in members]
        click.echo(f"level {lv:g} {pools.unit}: {len(members)} archs, "
                   f"{min(costs):.3g}..{max(costs):.3g} {pools.unit}", err=err)
    click.echo(f"wrote {out}", err=err)


@click.command("train-supernet")
@click.option("--data", default="digits", show_default=True, callback=lambda c, p, v: _data(v),
              help="'digits' or 'shapes[:classes=24,per_class=400,size=64,seed=0]' (built in, "
                   "no download) or an ImageFolder root (train/ and optional val/).")
@click.option("--out", "out_dir", required=True, type=OutputPath(folder=True),
              help="Run folder; checkpoint.pt is written there after every epoch.")
@click.option("--pools", "pools_path", type=click.Path(dir_okay=False), default=None,
              help="Pools JSON from build-pools (latency- or FLOPs-aware sampling).")
@click.option("--sampling", type=click.Choice(["pools", "sandwich"]), default="pools",
              show_default=True, help="'sandwich' = uniform sampling with the sandwich rule.")
@click.option("--epochs", type=click.IntRange(1, 100_000), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(2, 65536), default=64, show_default=True,
              help="Per process.")
@click.option("--lr", type=Finite(min=0, max=10, min_open=True), default=1e-3, show_default=True)
@click.option("--warmup-epochs", type=Finite(min=0, max=10_000), default=1.0, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(1, 10_000_000), default=None)
@click.option("--subnets-per-step", type=click.IntRange(1, 1000), default=3, show_default=True)
@click.option("--bank-size", type=click.IntRange(2, 1_000_000), default=16, show_default=True)
@click.option("--distill/--no-distill", default=True, show_default=True)
@click.option("--amp/--no-amp", default=True, show_default=True, help="fp16 autocast on CUDA.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--image-size", type=click.IntRange(8, 4096), default=None,
              help="ImageFolder decoding size (default: the largest resolution).")
@click.option("--workers", type=click.IntRange(0, 256), default=0, show_default=True)
@click.option("--run-on", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--teacher", type=click.Choice(["labels", "level", "supernet"]), default="labels",
              show_default=True,
              help="Pools: who teaches a level's subnets. 'labels': all learn from the labels, "
                   "the level's min subnet from their mean (ElasticViT); 'level': the level's "
                   "dearest subnet; 'supernet': the supernet's largest (sandwich rule).")
@click.option("--largest", is_flag=True,
              help="Pools: the supernet's largest subnet also trains at every step, from the "
                   "labels, in place of one drawn subnet (the sandwich rule's anchor).")
@click.option("--walk", type=click.Choice(["adjacent", "uniform"]), default=None,
              help="Pools: step to an adjacent latency level (ElasticViT's walk) or draw a "
                   "level uniformly.  [default: adjacent]")
@click.option("--min-subnet/--no-min-subnet", default=None,
              help="Pools: train the level's min subnet at every step (ElasticViT; with "
                   "--banks, ElasticViT's full recipe).  [default: off; the benchmark's "
                   "ablation found it costs accuracy]")
@click.option("--banks/--no-banks", default=None,
              help="Pools: performance-aware sampling from banks of good subnets (ElasticViT); "
                   "off: uniform within the level's pool.  [default: off]")
@click.option("--device", default=None,
              help="With --pools: the device they must have been built for (a check).")
@space_options
def train_supernet(data, out_dir, pools_path, sampling, epochs, batch_size, lr, warmup_epochs,
                   steps_per_epoch, subnets_per_step, bank_size, distill, amp, seed, image_size,
                   workers, run_on, resume, teacher, largest, walk, min_subnet, banks, device,
                   preset, resolutions, max_depth):
    """Train an elasticvit or vit supernet (works under torchrun for data parallelism)."""
    from dataclasses import replace

    from hwnas.data import count_classes
    from hwnas.supernet.pools import Pools
    from hwnas.supernet.sampling import SamplerConfig
    from hwnas.supernet.train import DataSpec, TrainConfig, train_supernet as train

    classes = count_classes(data)
    pools = Pools.load(pools_path) if pools_path else None
    spec = _spec(preset, resolutions, max_depth, classes)
    if pools is not None:  # the pools' space, where no option says otherwise (then: checked)
        base = pools.space
        spec = replace(base, classes=classes, preset=preset or base.preset,
                       resolutions=_ints(resolutions) or base.resolutions,
                       max_depth=base.max_depth if max_depth is None else max_depth)
        pools.check_matches(spec, device, source=pools_path)
    elif device is not None:
        raise click.UsageError("--device only checks --pools; give --pools too")
    space_res = spec.build().resolutions
    data_spec = DataSpec(data, image_size or max(space_res), seed)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, warmup_epochs=warmup_epochs,
                      distill=distill, amp=amp, seed=seed, steps_per_epoch=steps_per_epoch,
                      workers=workers)
    # the recipe switches the user left alone keep SamplerConfig's defaults (one place)
    recipe = {k: v for k, v in (("walk", walk), ("min_subnet", min_subnet), ("banks", banks))
              if v is not None}
    if recipe and sampling != "pools":
        raise click.UsageError("--walk, --min-subnet and --banks apply to --sampling pools "
                               "only")
    scfg = SamplerConfig(method=sampling, subnets_per_step=subnets_per_step, bank_size=bank_size,
                         teacher=teacher, largest=largest, **recipe)
    result = train(spec, data_spec, cfg, scfg, out_dir, pools=pools, resume=resume,
                   device=None if run_on == "auto" else run_on)
    if result.history:
        last = result.history[-1]
        click.echo(f"epoch {last['epoch']}: {last['images_per_s']:.1f} images/s, "
                   f"loss(largest) {last['loss_largest']:.3f}")
    click.echo(f"checkpoint: {result.checkpoint}")


def _explicit(ctx: click.Context, name: str) -> bool:
    from click.core import ParameterSource

    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


def search_route(ctx: click.Context, device: str, target: str, pareto: bool,
                 supernet: str | None) -> str:
    """"many" (lists, or --pareto, with --supernet) or "one"; bad combinations are one clear
    error. A checkpoint searched with an explicit --space / -r it was not trained on is one."""
    from hwnas.errors import HwnasError

    many = "," in device or "," in target or "/" in target
    if pareto and not supernet:
        raise HwnasError("--pareto needs an accuracy source: give --supernet CKPT (a trained "
                         "supernet scores every candidate)")
    if many and not supernet:
        raise HwnasError("lists of devices or targets need --supernet CKPT (one supernet, many "
                         "devices); without one, search one device at one target")
    if not (many or pareto):  # one target: the same finite, bounded type as every latency option
        param = next(p for p in ctx.command.params if p.name == "target")
        POSITIVE_MS.convert(target, param, ctx)
    if supernet:
        from hwnas.supernet.evaluate import load_checkpoint
        from hwnas.supernet.multidevice import check_checkpoint

        check_checkpoint(load_checkpoint(supernet), supernet,
                         ctx.params["space"] if _explicit(ctx, "space") else None,
                         ctx.params["resolutions"] if _explicit(ctx, "resolutions") else ())
    if many or pareto:
        return "many"
    return "one"


def search_many(ctx, device, target, seed, out, supernet, data, population, generations,
                calib_batches, max_eval_images, eval_batch_size, run_on, pareto, budget,
                as_json) -> None:
    """``hwnas search --supernet CKPT --device a,b --target-latency 10,15 --out DIR``."""
    import json

    from hwnas.api.supernet import search_devices
    from hwnas.errors import HwnasError
    from hwnas.search.evolution import EvolutionConfig
    from hwnas.search.nsga import NSGAConfig, require_pymoo
    from hwnas.supernet.multidevice import parse_pairs
    from hwnas.supernet.search import AccuracySearchConfig

    pairs = parse_pairs(device, target)
    if not out:
        raise HwnasError("--out DIR is needed with lists of devices or targets, or --pareto "
                         "(one arch file per pair goes there)")
    if pareto:
        require_pymoo()
    cfg = AccuracySearchConfig(
        EvolutionConfig(population=population, generations=generations,
                        parents=max(2, population // 4)),
        batch_size=eval_batch_size, calib_batches=calib_batches,
        max_eval_images=max_eval_images, seed=seed)
    nsga = NSGAConfig(budget=budget, population=population, offspring=population,
                      seed=seed) if pareto else None
    res = search_devices(supernet, pairs, out, data=data, cfg=cfg, pareto=nsga,
                         space_name=ctx.params["space"] if _explicit(ctx, "space") else None,
                         resolutions=(ctx.params["resolutions"]
                                      if _explicit(ctx, "resolutions") else ()),
                         run_on=None if run_on == "auto" else run_on)
    if as_json:
        click.echo(json.dumps(json.loads((res.summary_path.parent / "summary.json")
                                         .read_text()), indent=2))
        return
    click.echo((res.summary_path.parent / "summary.md").read_text().rstrip())
    click.echo(f"wrote {len(res.pairs)} arch files, {res.summary_path.name}, summary.md, "
               f"summary.json and {res.plot_path.name} to {res.summary_path.parent}")


COMMANDS = [train_supernet, build_pools]
