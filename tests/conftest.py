"""Shared test fixtures."""

import pytest


@pytest.fixture(scope="session")
def tflite_cache(tmp_path_factory):
    """One export cache (cache_dir/tflite/{key}.tflite) for the whole session: exporting a block
    with litert-torch costs 1-3 s, so the TFLite and adb tests share their exports. Everything
    in it is exported through ``export_seeded``, so a test can rebuild the same weights."""
    return tmp_path_factory.mktemp("tflite-export-cache")


@pytest.fixture(scope="session")
def export_seeded(tflite_cache):
    """op -> its cached .tflite, exported (once per session) from ``op.build()`` under
    ``torch.manual_seed(0)``; ``torch.manual_seed(0); op.build()`` gives the same weights."""
    import torch

    from hwnas.profilers.export import tflite_for_op

    def export(op):
        path = tflite_cache / "tflite" / f"{op.key}.tflite"
        if not path.exists():
            torch.manual_seed(0)
            tflite_for_op(op, tflite_cache)
        return path

    return export
