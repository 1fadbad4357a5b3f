"""Hand-checked values for styleprobe.stats."""

from __future__ import annotations

import math

import numpy as np
import pytest

from styleprobe import stats

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float
)


def anova_iccs(x: np.ndarray) -> dict[str, float]:
    """Textbook ICCs from the two-way ANOVA mean squares of an n x k matrix.

    MS_R = k Σ_i (row_i - grand)² / (n - 1)            (between subjects)
    MS_C = n Σ_j (col_j - grand)² / (k - 1)            (between raters)
    MS_E = Σ_ij (x_ij - row_i - col_j + grand)² / ((n - 1)(k - 1))
    MS_W = (SS_C + SS_E) / (n (k - 1))                 (within subjects)
    ICC(1,1) = (MS_R - MS_W) / (MS_R + (k - 1) MS_W)
    ICC(2,1) = (MS_R - MS_E) / (MS_R + (k - 1) MS_E + k (MS_C - MS_E) / n)
    ICC(3,1) = (MS_R - MS_E) / (MS_R + (k - 1) MS_E)
    """
    n, k = x.shape
    grand = x.mean()
    rows, cols = x.mean(axis=1), x.mean(axis=0)
    ss_r = k * np.sum((rows - grand) ** 2)
    ss_c = n * np.sum((cols - grand) ** 2)
    ss_e = np.sum((x - rows[:, None] - cols[None, :] + grand) ** 2)
    ms_r, ms_c = ss_r / (n - 1), ss_c / (k - 1)
    ms_e = ss_e / ((n - 1) * (k - 1))
    ms_w = (ss_c + ss_e) / (n * (k - 1))
    return {
        "ICC1": (ms_r - ms_w) / (ms_r + (k - 1) * ms_w),
        "ICC2": (ms_r - ms_e) / (ms_r + (k - 1) * ms_e + k * (ms_c - ms_e) / n),
        "ICC3": (ms_r - ms_e) / (ms_r + (k - 1) * ms_e),
    }


def test_pairwise_accuracy_with_ties():
    # pairs (1,0)=1 (1,2)=0 (2,0)=1 (2,2)=0.5 (3,0)=1 (3,2)=1 -> 4.5 / 6
    assert stats.pairwise_accuracy([1, 2, 3], [0, 2]) == pytest.approx(0.75)
    assert stats.pairwise_accuracy([5, 6], [1, 2, 3]) == 1.0
    assert stats.pairwise_accuracy([1, 1], [1, 1, 1]) == 0.5


def test_sign_accuracy():
    # pos above 0: 1, 2 (not -1); neg below 0: -1 (not 0.5) -> 3 / 5
    assert stats.sign_accuracy([1, -1, 2], [-1, 0.5]) == pytest.approx(0.6)
    # a value exactly at the centre counts as wrong
    assert stats.sign_accuracy([0.0, 1.0], [-1.0, 0.0]) == pytest.approx(0.5)
    assert stats.sign_accuracy([3, 4], [1, 2], centre=2.5) == 1.0


def test_dprime_by_hand():
    # pos mean 2 var 1; neg mean 1 var ((-1)² + (-1)² + 2²) / 2 = 3; d' = 1 / sqrt((1 + 3) / 2)
    assert stats.dprime([1, 2, 3], [0, 0, 3]) == pytest.approx(1 / math.sqrt(2))
    assert math.isnan(stats.dprime([1, 1], [1, 1]))
    assert stats.dprime([2, 2], [1, 1]) == math.inf
    assert stats.dprime([1, 1], [2, 2]) == -math.inf


def test_cohens_d_by_hand():
    # a: mean 2 var 1 (n 3); b: mean 3 var 20/3 (n 4); pooled var = (2*1 + 3*20/3) / 5 = 4.4
    assert stats.cohens_d([1, 2, 3], [0, 2, 4, 6]) == pytest.approx(-1 / math.sqrt(4.4))
    # with equal n, the pooled sd equals dprime's denominator
    a, b = [1.0, 4.0, 2.0, 7.0], [0.0, 1.0, 5.0, 1.5]
    assert stats.cohens_d(a, b) == pytest.approx(stats.dprime(a, b))


@pytest.mark.parametrize("form", ["ICC1", "ICC2", "ICC3"])
def test_icc_matches_anova_formula(form):
    assert stats.icc(SHROUT_FLEISS, form) == pytest.approx(anova_iccs(SHROUT_FLEISS)[form], abs=1e-12)


def test_icc_shrout_fleiss_published_values():
    assert stats.icc(SHROUT_FLEISS) == pytest.approx(0.29, abs=0.005)  # ICC(2,1) in the paper
    assert stats.icc(SHROUT_FLEISS, "ICC3") == pytest.approx(0.71, abs=0.005)
    assert stats.icc(SHROUT_FLEISS, "ICC1") == pytest.approx(0.17, abs=0.005)
    assert stats.icc(SHROUT_FLEISS, "ICC(A,1)") == stats.icc(SHROUT_FLEISS, "ICC2")


def test_icc_rejects_bad_input():
    bad = SHROUT_FLEISS.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        stats.icc(bad)
    with pytest.raises(ValueError, match="subjects x raters"):
        stats.icc(np.arange(5.0))
    with pytest.raises(ValueError, match="unknown ICC form"):
        stats.icc(SHROUT_FLEISS, "ICC4")


def test_bootstrap_ci_brackets_and_reproduces():
    x = np.random.default_rng(1).normal(1.0, 1.0, 200)
    lo, hi = stats.bootstrap_ci(np.mean, x, seed=3)
    assert lo < x.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 / math.sqrt(200), rel=0.2)
    assert stats.bootstrap_ci(np.mean, x, seed=3) == (lo, hi)
    assert stats.bootstrap_ci(np.mean, x, seed=4) != (lo, hi)


def test_bootstrap_ci_is_paired():
    rng = np.random.default_rng(2)
    x = rng.normal(size=100)
    y = x + rng.normal(scale=0.01, size=100)
    # resampling rows jointly keeps x and y aligned, so the correlation stays ~1 in every replicate
    lo, hi = stats.bootstrap_ci(lambda a, b: np.corrcoef(a, b)[0, 1], x, y, n_boot=200)
    assert lo > 0.99
    with pytest.raises(ValueError, match="same length"):
        stats.bootstrap_ci(lambda a, b: 0.0, x, y[:50])
    # axis=1 resamples columns of a 2-D array
    m = np.vstack([x, 2 * x])
    lo, hi = stats.bootstrap_ci(lambda a: a[1].mean() - 2 * a[0].mean(), m, n_boot=100, axis=1)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.0, abs=1e-12)


def test_pc1_share_rank_one():
    t = np.random.default_rng(0).normal(size=50)
    m = np.outer(t, [1.0, 2.0, -3.0]) + 5.0
    assert stats.pc1_share(m) == pytest.approx(1.0)
    assert stats.participation_ratio(m) == pytest.approx(1.0)


def test_spectrum_of_independent_columns():
    m = np.random.default_rng(0).normal(size=(20000, 5)) * [1.0, 3.0, 0.1, 10.0, 1.0]
    assert stats.participation_ratio(m) == pytest.approx(5.0, abs=0.05)
    assert stats.pc1_share(m) == pytest.approx(0.2, abs=0.01)


def test_spectrum_rejects_bad_columns():
    m = np.random.default_rng(0).normal(size=(10, 3))
    m[:, 1] = 0.4
    with pytest.raises(ValueError, match=r"columns \[1\] have zero variance"):
        stats.pc1_share(m)
    m[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        stats.participation_ratio(m)


def test_small_wrappers():
    assert stats.trimmed_mean([1, 2, 3, 4, 100], 0.2) == pytest.approx(3.0)
    np.testing.assert_allclose(stats.trimmed_mean([[1, 10], [2, 20], [3, 30]], 0.0), [2.0, 20.0])
    assert stats.iqr([1, 2, 3, 4, 5]) == pytest.approx(2.0)
    rho, p = stats.spearman([1, 2, 3, 4, 5], [1, 4, 9, 16, 100])
    assert rho == pytest.approx(1.0) and p < 0.05


def test_nan_inputs_raise():
    with pytest.raises(ValueError, match="NaN"):
        stats.pairwise_accuracy([1.0, np.nan], [0.0])
    with pytest.raises(ValueError, match="NaN"):
        stats.dprime([1.0, 2.0], [np.nan, 0.0])
    with pytest.raises(ValueError, match="at least 2"):
        stats.cohens_d([1.0], [0.0, 1.0])


def test_batched_icc2_equals_pingouin_and_its_ci_brackets_the_estimate():
    rng = np.random.default_rng(3)
    subjects = rng.normal(size=(12, 1))
    ratings = subjects + 0.5 * rng.normal(size=(12, 4)) + rng.normal(size=(1, 4)) * 0.3
    stack = np.stack([ratings, ratings[::-1] * 2 + 1, rng.normal(size=(12, 4))])
    expected = [stats.icc(m, "ICC2") for m in stack]
    np.testing.assert_allclose(stats.icc2_batch(stack), expected, atol=1e-10)
    point, lo, hi = stats.icc_with_ci(ratings, n_boot=300)
    assert point == pytest.approx(expected[0]) and lo < point < hi
