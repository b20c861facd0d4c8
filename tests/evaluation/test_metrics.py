"""Lesion-wise BraTS scores on hand-built label maps whose values are known exactly.

Geometry used throughout: a cube of side 10 shifted by 2 voxels along x against itself.
  Dice = 2 * (8 * 10 * 10) / (1000 + 1000) = 0.8.
  HD95: 6-connected border of a 10-cube = 1000 - 8**3 = 488 voxels. Distances from the borders
  of A = [0,10)^3 to those of B = A + 2x: 288 voxels on the y/z faces with x in 2..9 lie on B's
  border (0); x = 1 on those faces (36) and the 28 voxels of A's x = 9 face next to B's y/z faces
  are at 1; the rest (x = 0 face: 36 + 64, x = 9 face interior: 36) at 2. B -> A mirrors it.
  Pooled: 576 zeros, 128 ones, 272 twos, so the 95th percentile (index 926.25 of 976) is 2.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from brats_goat.evaluation.metrics import (
    COHORTS,
    DEFAULT_RULES,
    Cohort,
    ScoringRules,
    dice,
    get_cohort,
    hd95,
    lesionwise_region,
    region_mask,
    score_case,
)

SHAPE = (40, 40, 40)
PENALTY = 374.0


def cube(lo: tuple[int, int, int], side: int | tuple[int, int, int] = 10) -> np.ndarray:
    sides = (side,) * 3 if isinstance(side, int) else side
    mask = np.zeros(SHAPE, dtype=bool)
    mask[tuple(slice(a, a + s) for a, s in zip(lo, sides, strict=True))] = True
    return mask


def brute_hd95(a: np.ndarray, b: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> float:
    """Independent HD95: all pairwise distances between 6-connected border voxels."""
    six = ndimage.generate_binary_structure(3, 1)
    pa = np.argwhere(a & ~ndimage.binary_erosion(a, six)) * np.asarray(spacing)
    pb = np.argwhere(b & ~ndimage.binary_erosion(b, six)) * np.asarray(spacing)
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    return float(np.percentile(np.concatenate([d.min(1), d.min(0)]), 95))


def test_cohort_table_matches_brats_2023() -> None:
    # get_challenge_parameters of the 2023 code: (dilation, volume threshold)
    expected = {
        "gli": (3, 50),
        "ssa": (3, 50),
        "ped": (3, 50),
        "men": (1, 50),
        "met": (1, 2),
        "goat": (3, 50),
    }
    assert {k: (c.dilation, c.min_lesion_voxels) for k, c in COHORTS.items()} == expected
    assert get_cohort("MET") is COHORTS["met"]
    with pytest.raises(ValueError, match="unknown cohort"):
        get_cohort("xyz")
    with pytest.raises(AttributeError):
        COHORTS["gli"].dilation = 1  # type: ignore[misc]


def test_perfect_prediction() -> None:
    ref = cube((5, 5, 5))
    s = lesionwise_region(ref, ref)
    assert (s.lesionwise_dice, s.lesionwise_hd95, s.dice, s.hd95) == (1.0, 0.0, 1.0, 0.0)
    assert (s.n_ref_lesions, s.n_fp, s.lesions_detected, s.case_detected) == (1, 0, 1, True)


def test_shifted_prediction() -> None:
    ref, pred = cube((5, 5, 5)), cube((7, 5, 5))  # see module docstring
    s = lesionwise_region(pred, ref)
    assert s.dice == pytest.approx(0.8) and s.lesionwise_dice == pytest.approx(0.8)
    assert s.hd95 == pytest.approx(2.0) and s.lesionwise_hd95 == pytest.approx(2.0)
    assert brute_hd95(pred, ref) == pytest.approx(2.0)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 0.5)])
def test_hd95_matches_brute_force(spacing: tuple[float, float, float]) -> None:
    x, y, z = np.indices(SHAPE)
    ball = (x - 20) ** 2 + (y - 20) ** 2 + (z - 20) ** 2 <= 7**2
    blob = (x - 22) ** 2 / 36 + (y - 18) ** 2 / 64 + (z - 21) ** 2 / 49 <= 1  # an ellipsoid
    assert hd95(blob, ball, spacing) == pytest.approx(brute_hd95(blob, ball, spacing), abs=1e-9)


def test_missed_lesion() -> None:
    # Two reference cubes far apart; only the first is found, shifted by 2 (d = 0.8, h = 2).
    ref = cube((2, 2, 2)) | cube((25, 25, 25))
    pred = cube((4, 2, 2))
    s = lesionwise_region(pred, ref)
    assert s.n_ref_lesions == 2 and s.lesions_detected == 1 and s.n_fp == 0
    assert s.lesionwise_dice == pytest.approx(0.8 / 2)  # (0.8 + 0) / 2
    assert s.lesionwise_hd95 == pytest.approx((2 + PENALTY) / 2)  # 188
    assert s.detection_rate == 0.5
    # global: 2 * 800 / (1000 + 2000)
    assert s.dice == pytest.approx(1600 / 3000)


def test_false_positive_component() -> None:
    ref = cube((2, 2, 2))
    pred = ref | cube((30, 30, 30), 4)  # exact lesion + a 64-voxel component far away
    s = lesionwise_region(pred, ref)
    assert (s.n_ref_lesions, s.n_fp) == (1, 1)
    assert s.lesionwise_dice == pytest.approx(1.0 / (1 + 1))
    assert s.lesionwise_hd95 == pytest.approx((0 + PENALTY) / (1 + 1))
    assert s.dice == pytest.approx(2000 / 2064)


def test_empty_reference() -> None:
    empty = np.zeros(SHAPE, dtype=bool)
    s = lesionwise_region(empty, empty)
    assert (s.lesionwise_dice, s.lesionwise_hd95, s.dice, s.hd95) == (1.0, 0.0, 1.0, 0.0)
    assert s.case_detected and s.n_ref_lesions == 0 and np.isnan(s.detection_rate)
    s = lesionwise_region(cube((5, 5, 5), 3) | cube((20, 20, 20), 3), empty)
    assert (s.lesionwise_dice, s.lesionwise_hd95, s.dice, s.hd95) == (0.0, PENALTY, 0.0, PENALTY)
    assert s.n_fp == 2 and not s.case_detected
    # Empty prediction on a real lesion: a miss everywhere.
    s = lesionwise_region(empty, cube((5, 5, 5)))
    assert (s.lesionwise_dice, s.lesionwise_hd95, s.dice, s.hd95) == (0.0, PENALTY, 0.0, PENALTY)
    assert not s.case_detected


def test_small_reference_lesions_ignored() -> None:
    big, small = cube((2, 2, 2)), cube((30, 30, 30), 3)  # 1000 and 27 voxels
    s = lesionwise_region(big, big | small, "gli")  # 27 <= 50: dropped, not a miss
    assert (s.n_ref_lesions, s.lesionwise_dice, s.lesionwise_hd95) == (1, 1.0, 0.0)
    # A prediction of the small lesion hits it, so it is not a false positive either.
    s = lesionwise_region(big | small, big | small, "gli")
    assert (s.n_ref_lesions, s.n_fp, s.lesionwise_dice) == (1, 0, 1.0)
    # MET keeps lesions > 2 voxels: the missed 27-voxel lesion now counts.
    s = lesionwise_region(big, big | small, "met")
    assert s.n_ref_lesions == 2 and s.lesionwise_dice == pytest.approx(0.5)
    # The threshold is "<=": exactly 50 voxels is dropped, 51 kept (custom cube shapes).
    fifty = cube((30, 30, 30), (5, 5, 2))
    assert lesionwise_region(big, big | fifty).n_ref_lesions == 1
    fifty_one = fifty | cube((30, 30, 32), (1, 1, 1))
    assert lesionwise_region(big, big | fifty_one).n_ref_lesions == 2
    # Only small lesions and no prediction: nothing to score -> 1 / 0.
    s = lesionwise_region(np.zeros(SHAPE, bool), small, "gli")
    assert (s.lesionwise_dice, s.lesionwise_hd95, s.dice) == (1.0, 0.0, 0.0)


def test_dilation_groups_nearby_components() -> None:
    # Gap of 4 empty voxels along x: 3 dilations (GLI) bridge it, 1 (MET) does not.
    a, b = cube((5, 5, 5)), cube((19, 5, 5))  # a: x 5..14, b: x 19..28
    ref = a | b
    gli = lesionwise_region(a, ref, "gli")
    assert gli.n_ref_lesions == 1 and gli.n_fp == 0
    assert gli.lesionwise_dice == pytest.approx(2 * 1000 / (1000 + 2000))  # one grouped lesion
    met = lesionwise_region(a, ref, "met")
    assert met.n_ref_lesions == 2 and met.lesions_detected == 1
    assert met.lesionwise_dice == pytest.approx((1.0 + 0.0) / 2)
    assert met.lesionwise_hd95 == pytest.approx((0.0 + PENALTY) / 2)


def test_hits_are_whole_components_in_dilated_zone() -> None:
    ref = cube((5, 5, 5))
    near = cube((17, 5, 5), 3)  # 2 empty voxels from the lesion: inside GLI's 3-voxel zone
    s = lesionwise_region(ref | near, ref, "gli")
    assert s.n_fp == 0  # a hit, and its voxels count against the lesion's Dice
    assert s.lesionwise_dice == pytest.approx(2000 / (2000 + 27))
    s = lesionwise_region(ref | near, ref, "met")  # outside the 1-voxel zone: a false positive
    assert s.n_fp == 1 and s.lesionwise_dice == pytest.approx(0.5)


def test_region_mapping() -> None:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[5:25, 5:25, 5:25] = 2  # SNFH
    labels[10:20, 10:20, 10:20] = 1  # NETC
    labels[12:18, 12:18, 12:18] = 3  # ET
    assert region_mask(labels, "WT").sum() == 20**3
    assert region_mask(labels, "TC").sum() == 10**3
    assert region_mask(labels, "ET").sum() == 6**3
    # ET relabelled as NETC: WT and TC untouched, ET missed completely.
    pred = np.where(labels == 3, 1, labels).astype(np.uint8)
    s = score_case(pred, labels)
    assert list(s) == ["WT", "TC", "ET"]
    assert s["WT"].dice == 1.0 and s["TC"].dice == 1.0
    assert (s["ET"].dice, s["ET"].lesionwise_dice, s["ET"].hd95) == (0.0, 0.0, PENALTY)
    # Label 4 (e.g. resection cavity) belongs to no region.
    with_rc = labels.copy()
    with_rc[30:35, 30:35, 30:35] = 4
    assert all(v.dice == 1.0 for v in score_case(with_rc, labels).values())


def test_penalty_is_a_rule() -> None:
    rules = ScoringRules(hd95_penalty=373.0)
    s = lesionwise_region(np.zeros(SHAPE, bool), cube((5, 5, 5)), rules=rules)
    assert s.hd95 == 373.0 and s.lesionwise_hd95 == 373.0
    assert DEFAULT_RULES.hd95_penalty == PENALTY


def test_dice_helper_and_custom_cohort() -> None:
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    assert dice(np.ones(3, bool), np.zeros(3, bool)) == 0.0
    no_dilation = Cohort("plain", dilation=0, min_lesion_voxels=0)
    a, b = cube((5, 5, 5)), cube((16, 5, 5))  # one empty voxel between them
    s = lesionwise_region(a | b, a | b, no_dilation)
    assert s.n_ref_lesions == 2 and s.lesionwise_dice == 1.0


@pytest.mark.parametrize("shift", list(itertools.product([0, 1], repeat=3)))
def test_lesionwise_equals_global_for_single_lesion(shift: tuple[int, int, int]) -> None:
    ref = cube((10, 10, 10))
    pred = cube(tuple(10 + s for s in shift))  # type: ignore[arg-type]
    s = lesionwise_region(pred, ref)
    assert s.lesionwise_dice == pytest.approx(s.dice)
    assert s.lesionwise_hd95 == pytest.approx(s.hd95)
    assert s.hd95 == pytest.approx(brute_hd95(pred, ref))
