"""Device selection."""

from __future__ import annotations

import pytest
import torch

from brats_goat.device import pick_device


def test_cuda_request_without_gpu_is_clear() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA"):
        pick_device("cuda")
    assert pick_device("auto").type == "cpu"
