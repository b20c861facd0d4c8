"""Label fusion: FLAIR and t1c masks into NETC / edema / ET."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from brats_goat.stages.labels import (
    LabelsConfig,
    enhancement_grow_threshold,
    enhancement_near,
    enhancement_threshold,
    fuse_labels,
    voxels_per_label,
)
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


def test_core_inside_an_enhancing_rim_is_netc_even_where_flair_is_bright() -> None:
    """Necrosis inside the rim is core whether FLAIR flags it or not (3D and in-plane)."""
    shape = (40, 40, 30)
    shell = ball(shape, (20, 20, 15), 8) & ~ball(shape, (20, 20, 15), 5)
    flair = ball(shape, (20, 20, 15), 12)  # the whole tumour, core included
    labels = fuse_labels(flair, shell, et_dilation=0)
    assert labels[20, 20, 15] == 1 and labels[20, 20, 11] == 1
    assert (labels[ball(shape, (20, 20, 15), 4)] == 1).all()
    assert labels[20, 27, 15] == 3 and labels[20, 31, 15] == 2


def test_without_et_only_holes_of_the_whole_tumour_are_core() -> None:
    shape = (40, 40, 10)
    flair = ball(shape, (20, 20, 5), 10) & ~ball(shape, (20, 20, 5), 3)
    labels = fuse_labels(flair, np.zeros(shape, dtype=bool), et_dilation=3)
    assert labels[20, 20, 5] == 1 and labels[20, 26, 5] == 2
    assert not (labels == 3).any()


def test_enhancement_is_searched_near_the_whole_tumour_only() -> None:
    """Every bright component in or around the WT is ET; one far away, however large, and
    one smaller than the minimum are not."""
    shape = (60, 60, 20)
    wt = ball(shape, (20, 20, 10), 8)
    t1c = np.zeros(shape, dtype=np.float32)
    near_a = ball(shape, (20, 14, 10), 3)  # inside the WT
    near_b = ball(shape, (20, 29, 10), 3)  # just outside it, within the search rim
    far = ball(shape, (48, 48, 10), 7)  # larger than both, far from the WT
    tiny = np.zeros(shape, dtype=bool)
    tiny[20, 20, 10] = True
    for part in (near_a, near_b, far, tiny):
        t1c[part] = 5.0
    cfg = LabelsConfig(et_threshold_z=2.0, et_search_dilation=3, et_min_voxels=20)
    et = enhancement_near(t1c, wt, np.ones(shape, dtype=bool), cfg)
    assert et[near_a].all() and et[near_b].mean() > 0.8  # cut at the edge of the rim
    grown = ndimage.binary_dilation(wt, iterations=3)
    assert not (et & ~grown).any()
    assert not et[far].any() and not et[tiny].any()
    assert not enhancement_near(t1c, np.zeros(shape, dtype=bool), wt | ~wt, cfg).any()
    lower = LabelsConfig(et_threshold_z=6.0, et_search_dilation=3, et_min_voxels=20)
    assert not enhancement_near(t1c, wt, np.ones(shape, dtype=bool), lower).any()


def test_labels_config_is_checked_and_reads_the_measured_threshold() -> None:
    assert LabelsConfig().et_threshold_z == enhancement_threshold()
    assert 1.0 < enhancement_threshold() < 4.0
    grow = enhancement_grow_threshold()
    assert grow is not None and LabelsConfig().et_grow_z == grow < enhancement_threshold()
    with pytest.raises(ValueError, match="et_rule"):
        LabelsConfig(et_rule="largest")
    with pytest.raises(ValueError, match="et_min_voxels"):
        LabelsConfig(et_min_voxels=0)


def test_weak_enhancement_grows_from_a_clear_part_only() -> None:
    """Hysteresis: a weak arc joined to a clearly enhancing one is ET; a weak arc with no
    clear part, and weak tissue of a tumour with no enhancement at all, are not."""
    shape = (60, 60, 20)
    wt = ball(shape, (30, 30, 10), 12)
    t1c = np.zeros(shape, dtype=np.float32)
    clear = ball(shape, (30, 22, 10), 3)
    weak = ball(shape, (30, 27, 10), 3) & ~clear  # touches the clear part
    lone = ball(shape, (30, 40, 10), 3)  # weak, not connected to anything clear
    t1c[clear], t1c[weak], t1c[lone] = 5.0, 1.5, 1.5
    mask = np.ones(shape, dtype=bool)
    base = dict(et_threshold_z=2.0, et_search_dilation=3, et_min_voxels=20)
    plain = enhancement_near(t1c, wt, mask, LabelsConfig(**base, et_grow_z=None))
    assert plain[clear].all() and not plain[weak].any()
    grown = enhancement_near(t1c, wt, mask, LabelsConfig(**base, et_grow_z=1.0))
    assert grown[clear].all() and grown[weak].all() and not grown[lone].any()
    assert not enhancement_near(np.where(clear, 0, t1c), wt, mask, LabelsConfig(**base)).any()
    with pytest.raises(ValueError, match="et_grow_z"):
        LabelsConfig(**base, et_grow_z=3.0)


def test_a_rim_with_a_gap_encloses_its_core_after_closing() -> None:
    """A ring open on one side encloses nothing; closing the gap makes its inside core,
    while the edema outside the ring stays edema."""
    shape = (50, 50, 30)
    centre = (25, 25, 15)
    shell = ball(shape, centre, 9) & ~ball(shape, centre, 6)
    shell[25:, 24:27, :] = False  # a slit 3 voxels wide, pole to pole
    flair = ball(shape, centre, 13)
    assert not (fuse_labels(flair, shell, et_dilation=0) == 1).any()
    closed = fuse_labels(flair, shell, et_dilation=0, core_closing=3)
    assert closed[centre] == 1 and (closed[ball(shape, centre, 4)] == 1).all()
    assert closed[25, 36, 15] == 2 and closed[25, 16, 15] == 3
    with pytest.raises(ValueError, match="core_closing"):
        LabelsConfig(core_closing=-1)


def test_enhancing_islands_away_from_the_core_are_dropped() -> None:
    from brats_goat.stages.labels import near_largest

    et = np.zeros((40, 20, 20), dtype=bool)
    et[2:12, 5:15, 5:15] = True  # the enhancing core
    et[14:16, 8:10, 8:10] = True  # 2 voxels away from it: part of the same core
    et[30:33, 8:11, 8:11] = True  # an island 18 voxels away: a vessel or a false lesion
    kept = near_largest(et, 3)
    assert kept[2:16].sum() == et[2:16].sum() and not kept[20:].any()
    assert np.array_equal(near_largest(et, None), et)
    assert near_largest(et, 20).sum() == et.sum()
    assert not near_largest(np.zeros_like(et), 3).any()
    with pytest.raises(ValueError, match="et_core_gap"):
        LabelsConfig(et_core_gap=-1)
