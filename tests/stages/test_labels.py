"""Label fusion: FLAIR and t1c masks into NETC / edema / ET."""

from __future__ import annotations

from brats_goat.stages.labels import fuse_labels, voxels_per_label
from tests.conftest import ball


def test_label_fusion_rim_core_edema() -> None:
    shape = (40, 40, 10)
    flair = ball(shape, (20, 20, 5), 12)
    rim = ball(shape, (20, 20, 5), 7) & ~ball(shape, (20, 20, 5), 4)
    labels = fuse_labels(flair & ~ball(shape, (20, 20, 5), 4), rim, et_dilation=3)
    assert labels[20, 20, 5] == 1  # enclosed core -> NETC
    assert labels[20, 26, 5] == 3  # rim -> ET
    assert labels[20, 30, 5] == 2  # outside the rim -> edema
    assert labels[0, 0, 0] == 0
    counts = voxels_per_label(labels)
    assert set(counts) == {"1", "2", "3"} and all(v > 0 for v in counts.values())


def test_et_far_from_flair_is_dropped() -> None:
    shape = (40, 40, 10)
    flair = ball(shape, (10, 10, 5), 5)
    far = ball(shape, (32, 32, 5), 3)
    labels = fuse_labels(flair, far, et_dilation=3)
    assert not (labels == 3).any()
    assert (fuse_labels(flair, far, et_dilation=0) == 3).any()
