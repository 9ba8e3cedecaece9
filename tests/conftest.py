"""Shared test fixtures."""

import pytest


@pytest.fixture(scope="session")
def tflite_cache(tmp_path_factory):
    """One export cache (cache_dir/tflite/{key}.tflite) for the whole session: exporting a block
    with litert-torch takes 1-3 s, so tests that only need *some* .tflite share the exports."""
    return tmp_path_factory.mktemp("tflite-export-cache")
