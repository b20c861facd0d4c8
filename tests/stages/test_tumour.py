"""The whole tumour from every sequence (``brats_goat.stages.tumour``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from brats_goat.conventions import LABEL_ET, LABEL_NETC, LABEL_SNFH
from brats_goat.stages.labels import enclosed_by
from brats_goat.stages.tumour import (
    TumourConfig,
    choose_seed,
    fill_tumour,
    grow,
    non_enhancing_core,
    tumour_record,
    whole_tumour,
)


def two_blobs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A large, faint candidate and a smaller, much more abnormal one (the tumour)."""
    shape = (40, 40, 20)
    flair = np.zeros(shape, dtype=np.float32)
    big = np.zeros(shape, dtype=bool)
    big[2:14, 2:14, 2:12] = True  # 1440 voxels, 0.2 over the threshold
    small = np.zeros(shape, dtype=bool)
    small[24:32, 24:32, 4:12] = True  # 512 voxels, 3 over the threshold
    flair[big] = 1.2
    flair[small] = 4.0
    return flair, big, small


def test_the_most_abnormal_candidate_wins_over_the_largest() -> None:
    flair, big, small = two_blobs()
    cfg = TumourConfig(support_t2w_median=None)
    seed = choose_seed(big | small, flair, 1.0, None, 50, cfg)
    assert np.array_equal(seed, small)
    size = dataclasses.replace(cfg, choose="size")
    by_size = choose_seed(big | small, flair, 1.0, None, 50, size)
    assert np.array_equal(by_size, big)


def test_a_candidate_that_t2w_does_not_support_is_not_the_tumour() -> None:
    flair, big, small = two_blobs()
    t2w = np.zeros(flair.shape, dtype=np.float32)
    t2w[big] = 1.0  # T2-bright like oedema
    t2w[small] = -1.0  # darker than healthy tissue: a FLAIR artefact, not a tumour
    cfg = TumourConfig(support_t2w_median=-0.2)
    seed = choose_seed(big | small, flair, 1.0, t2w, 50, cfg)
    assert np.array_equal(seed, big)
    # No candidate supported: no tumour rather than the least bad one.
    t2w[big] = -1.0
    assert not choose_seed(big | small, flair, 1.0, t2w, 50, cfg).any()


def test_candidates_under_the_minimum_size_are_never_chosen() -> None:
    flair, big, small = two_blobs()
    cfg = TumourConfig(support_t2w_median=None)
    assert np.array_equal(choose_seed(big | small, flair, 1.0, None, 600, cfg), big)
    assert not choose_seed(np.zeros_like(big), flair, 1.0, None, 50, cfg).any()


def test_growth_stays_inside_allowed_tissue_and_within_its_reach() -> None:
    seed = np.zeros((30, 5, 5), dtype=bool)
    seed[0, 2, 2] = True
    allowed = np.zeros_like(seed)
    allowed[:, 2, 2] = True
    allowed[20, 2, 2] = False  # a gap: nothing beyond it is reached
    grown = grow(seed, allowed, 5)
    assert grown[:6, 2, 2].all() and not grown[6:].any()
    assert grow(seed, allowed, 100)[:20, 2, 2].all() and not grow(seed, allowed, 100)[21:].any()
    assert np.array_equal(grow(seed, allowed, 0), seed)


def test_what_the_tumour_encloses_is_filled() -> None:
    shell = np.zeros((20, 20, 20), dtype=bool)
    shell[4:16, 4:16, 4:16] = True
    shell[6:14, 6:14, 6:14] = False  # a necrotic core, dark on FLAIR
    filled = enclosed_by(shell, 0)
    assert filled[4:16, 4:16, 4:16].all() and filled.sum() == 12**3
    # Open in 3D but closed in one axial slice: that slice's hole is filled.
    ring = np.zeros((20, 20, 3), dtype=bool)
    ring[5:15, 5:15, 1] = True
    ring[7:13, 7:13, 1] = False
    assert enclosed_by(ring, 0)[5:15, 5:15, 1].all()


def test_whole_tumour_is_the_chosen_candidate_and_its_core_is_filled() -> None:
    flair, _, small = two_blobs()
    core = np.zeros(flair.shape, dtype=bool)
    core[26:30, 26:30, 6:10] = True
    flair[core] = 0.0  # the core: not FLAIR-bright
    mask = np.ones(flair.shape, dtype=bool)
    cfg = TumourConfig(support_t2w_median=None)
    wt = whole_tumour(flair > 1.0, flair, 1.0, None, mask, 50, cfg)
    assert np.array_equal(wt, small & ~core)
    labels = wt.astype(np.uint8) * LABEL_SNFH
    # Without ET the enclosed centre is the core (necrosis or a cyst) ...
    filled = fill_tumour(labels, cfg)
    assert (filled[core] == LABEL_NETC).all() and np.array_equal(filled > 0, small)
    # ... with ET the core is what ET encloses; other enclosed tissue is oedema.
    labels[26:30, 24:26, 6:10] = LABEL_ET
    assert (fill_tumour(labels, cfg)[core] == LABEL_SNFH).all()
    assert np.array_equal(fill_tumour(labels, dataclasses.replace(cfg, fill=False)), labels)


def test_the_healthy_record_says_how_it_was_measured() -> None:
    record = tumour_record()
    assert record["thresholds"]["t2w_z_p50"] < 0.5 and record["thresholds"]["t1c_z_p10"] < 0
    assert record["provenance"]["command"] and record["provenance"]["data"]
    with pytest.raises(ValueError, match="choose"):
        TumourConfig(choose="biggest")


def test_a_tumour_without_et_keeps_its_t1c_dark_part_as_core() -> None:
    labels = np.zeros((30, 30, 10), dtype=np.uint8)
    labels[5:25, 5:25, 2:8] = LABEL_SNFH
    t1c_z = np.zeros(labels.shape, dtype=np.float32)
    t1c_z[10:20, 10:20, 3:7] = -1.5  # takes up no contrast: non-enhancing core
    t1c_z[0:3, 0:3, 0:3] = -3.0  # dark, but outside the tumour
    t1c_z[22:24, 22:24, 3:5] = -1.5  # a smaller dark part: not the core
    cfg = TumourConfig(netc_t1c_z=-0.95)
    out = non_enhancing_core(labels, t1c_z, cfg)
    assert (out[10:20, 10:20, 3:7] == LABEL_NETC).all()
    assert (out == LABEL_NETC).sum() == 400 and (out[22:24, 22:24, 3:5] == LABEL_SNFH).all()
    # With ET the core is what ET encloses: nothing changes; likewise with the rule off.
    labels[12, 12, 4] = LABEL_ET
    assert np.array_equal(non_enhancing_core(labels, t1c_z, cfg), labels)
    off = dataclasses.replace(cfg, netc_t1c_z=None)
    assert np.array_equal(
        non_enhancing_core(labels * 0 + (labels > 0) * 2, t1c_z, off) > 0, labels > 0
    )
