"""Thresholding and component selection on tiny hand-built arrays whose answer is known."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.stages.threshold import (
    drop_up_to,
    healthy_peak,
    largest_component_voxels,
    open_close,
    otsu_threshold,
    select_components,
    select_with_peaks,
    threshold_slices,
)
from tests.conftest import ball


def test_otsu_splits_two_modes() -> None:
    values = np.concatenate([np.full(500, 0.0), np.full(100, 4.0)])
    assert 0 < otsu_threshold(values) < 4


def test_threshold_otsu_only_raises_fixed() -> None:
    res = np.zeros((20, 15, 2), np.float32)
    res[:, :5, 0] = 1.0  # normal tissue
    res[:, 5:10, 0] = 2.0  # faint halo: above the fixed threshold
    res[:, 10:, 0] = 6.0  # lesion
    res[:, :, 1] = 0.2  # flat slice: Otsu must not lower the fixed threshold
    mask = np.ones_like(res, bool)
    fixed_only = threshold_slices(res, mask, 1.5, use_otsu=False)
    with_otsu = threshold_slices(res, mask, 1.5, use_otsu=True)
    assert fixed_only[..., 0].sum() == 200
    assert with_otsu[..., 0].sum() == 100 and with_otsu[:, 10:, 0].all()
    assert not with_otsu[..., 1].any()


def test_open_close_removes_specks() -> None:
    mask = np.zeros((20, 20, 1), bool)
    mask[5:12, 5:12] = True
    mask[16, 16] = True
    out = open_close(mask, 1)
    assert not out[16, 16, 0] and out[8, 8, 0]


def test_select_components_largest_and_min_size() -> None:
    mask = ball((30, 30, 30), (8, 8, 8), 5) | ball((30, 30, 30), (22, 22, 22), 3)
    mask[0, 29, 0] = True
    largest = select_components(mask, min_voxels=10, keep_largest=True)
    assert largest[8, 8, 8] and not largest[22, 22, 22] and not largest[0, 29, 0]
    both = select_components(mask, min_voxels=10, keep_largest=False)
    assert both[22, 22, 22] and not both[0, 29, 0]
    assert not select_components(mask, min_voxels=10_000, keep_largest=True).any()


def test_et_minimum_drops_components_up_to_the_healthy_size() -> None:
    mask = np.zeros((30, 30, 10), bool)
    mask[2:5, 2:5, 2:5] = True  # 27 voxels
    mask[10:20, 10:20, 2:6] = True  # 400 voxels
    assert largest_component_voxels(mask) == 400
    assert largest_component_voxels(np.zeros_like(mask)) == 0
    kept = drop_up_to(mask, 27)  # "no larger than the healthy component" goes
    assert kept.sum() == 400 and not kept[3, 3, 3]
    assert not drop_up_to(mask, 400).any()
    np.testing.assert_array_equal(drop_up_to(mask, 0), mask)


def test_peak_rule_keeps_largest_and_only_components_above_the_healthy_peak() -> None:
    shape = (40, 40, 40)
    big, hot, faint = (
        ball(shape, (10, 10, 10), 6),
        ball(shape, (30, 30, 30), 3),
        ball(shape, (10, 30, 30), 3),
    )
    values = np.where(big, 2.0, 0.0) + np.where(hot, 5.0, 0.0) + np.where(faint, 2.5, 0.0)
    mask = big | hot | faint
    kept = select_with_peaks(mask, values, min_voxels=10, peak=3.0)
    assert kept[10, 10, 10], "the largest is kept whatever its peak"
    assert kept[30, 30, 30], "a small component hotter than the healthy peak is kept"
    assert not kept[10, 30, 30], "a small component within the healthy range is dropped"
    assert not select_with_peaks(mask, values, min_voxels=10_000, peak=0.0).any()


def test_healthy_peak_is_the_highest_surviving_component_value() -> None:
    shape = (40, 40, 8)
    residual = np.zeros(shape, np.float32)
    residual[5:15, 5:15, 2:6] = 2.0
    residual[8, 8, 3] = 2.6  # inside that component
    residual[30, 30, 4] = 9.0  # a lone voxel: removed by the opening, not a component
    mask = np.ones(shape, bool)
    post = dataclasses.replace(PostprocessConfig(), use_otsu=False, min_component_voxels=20)
    assert healthy_peak(residual, mask, 1.5, post) == pytest.approx(2.6)
    assert healthy_peak(np.zeros(shape, np.float32), mask, 1.5, post) == 1.5
