import json

import numpy as np
import pytest

from styleprobe.protocol.axes import (
    AxesError,
    AxisSet,
    axis_direction,
    centre_and_scale,
    fit_axes,
    folds,
    out_of_fold,
)


def _planted(rng, direction, n=40, dim=32, shift=3.0):
    noise = lambda: rng.normal(size=(n, dim))  # noqa: E731
    return noise() + shift * direction, noise() - shift * direction


def _axis_set(rng, dim=32, model_id="org/model", normalisation="crossfit"):
    dirs = np.linalg.qr(rng.normal(size=(dim, 2)))[0].T
    states = {"warm_cold": _planted(rng, dirs[0], dim=dim), "formal_casual": _planted(rng, dirs[1], dim=dim)}
    poles = {"warm_cold": ("warm", "cold"), "formal_casual": ("formal", "casual")}
    axes = fit_axes(
        states,
        poles,
        normalisation=normalisation,
        model_id=model_id,
        layers=[1, 2],
        aggregation={"decay": 0.9},
    )
    return axes, dirs, states


def test_planted_direction_is_recovered():
    rng = np.random.default_rng(0)
    direction = np.zeros(64)
    direction[5] = 1.0
    pos, neg = _planted(rng, direction, n=200, dim=64)
    pos[:5] += 100.0  # outliers are trimmed away
    axis = axis_direction(pos, neg, trim=0.1)
    assert np.isclose(np.linalg.norm(axis), 1.0, atol=1e-6)
    assert axis @ direction > 0.98


def test_identical_poles_have_no_axis():
    x = np.ones((5, 3))
    with pytest.raises(AxesError, match="undefined"):
        axis_direction(x, x)


def test_normalisation_median_iqr_and_clip():
    pos, neg = np.array([3.0, 4.0]), np.array([0.0, 1.0, 2.0])
    assert centre_and_scale(pos, neg, "median_iqr") == (2.0, 2.0)  # median 2, IQR 3 - 1
    assert centre_and_scale(pos, neg, "uncentred_iqr") == (0.0, 2.0)
    assert centre_and_scale(pos / 100, neg / 100, "uncentred_iqr") == (0.0, 0.1)  # the original's floor
    rng = np.random.default_rng(1)
    axes, _, states = _axis_set(rng, normalisation="median_iqr")
    pooled = np.concatenate(states["warm_cold"]) @ axes.vectors[0]
    z = axes.normalise(np.c_[pooled, np.zeros_like(pooled)], clip=False)[:, 0]
    assert abs(np.median(z)) < 1e-9
    assert np.isclose(np.subtract(*np.percentile(z, [75, 25])), 1.0)
    far = 10 * np.concatenate(states["warm_cold"])
    clipped = axes.project(far)  # the IQR normalisations clip by default, crossfit does not
    assert axes.clips and not _axis_set(rng)[0].clips
    assert clipped.min() == -1 and clipped.max() == 1
    np.testing.assert_allclose(clipped, np.clip(axes.project(far, clip=False), -1, 1))


def test_axes_save_load_roundtrip(tmp_path):
    axes, _, states = _axis_set(np.random.default_rng(2))
    path = axes.save(tmp_path / "model")
    assert path.suffix == ".json" and path.with_suffix(".safetensors").exists()
    back = AxisSet.load(tmp_path / "model.json")
    assert back.names == axes.names and back.poles == axes.poles and back.layers == [1, 2]
    np.testing.assert_array_equal(back.vectors, axes.vectors)
    x = np.concatenate(states["formal_casual"])
    np.testing.assert_allclose(back.project(x), axes.project(x))


def test_projecting_another_models_states_fails(tmp_path):
    axes, _, _ = _axis_set(np.random.default_rng(3))
    with pytest.raises(AxesError, match="hidden size 16"):
        axes.project(np.zeros((2, 16)))
    with pytest.raises(AxesError, match="calibrated on 'org/model', not on 'other/model'"):
        axes.project(np.zeros((2, 32)), model_id="other/model")
    with pytest.raises(AxesError, match="NaN"):
        axes.project(np.full((2, 32), np.nan))


@pytest.mark.parametrize(
    "damage", ["truncate_tensors", "bad_json", "missing_key", "missing_file", "json_list"]
)
def test_corrupt_axes_files_fail_in_one_line(tmp_path, damage):
    axes, _, _ = _axis_set(np.random.default_rng(4))
    js = axes.save(tmp_path / "m")
    st = js.with_suffix(".safetensors")
    if damage == "truncate_tensors":
        st.write_bytes(st.read_bytes()[:100])
    elif damage == "bad_json":
        js.write_text(js.read_text()[:50])
    elif damage == "missing_key":
        meta = json.loads(js.read_text())
        del meta["scales"]
        js.write_text(json.dumps(meta))
    elif damage == "json_list":
        js.write_text("[1, 2]")
    else:
        st.unlink()
    with pytest.raises(AxesError) as err:
        AxisSet.load(js)
    assert "\n" not in str(err.value)


def test_every_preset_name_round_trips_to_its_own_file(tmp_path):
    from styleprobe.engine.models import load_presets

    names = list(dict.fromkeys([*load_presets(), "tiny-v1.5", "tiny-v1.6", "qwen2.5-7b", "llama-3.1-8b"]))
    base, _, _ = _axis_set(np.random.default_rng(5))
    folder = tmp_path / "axes"
    for i, name in enumerate(names):
        axes = AxisSet(**{**base._fields(), "model_id": name, "vectors": base.vectors * (1 if i % 2 else -1)})
        assert axes.save(folder / f"{name}.json") == folder / f"{name}.json"
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(f"{n}.json" for n in names)
    assert sorted(p.name for p in folder.glob("*.safetensors")) == sorted(f"{n}.safetensors" for n in names)
    for i, name in enumerate(names):
        for given in (f"{name}.json", f"{name}.safetensors", name):  # either file, or the bare name
            back = AxisSet.load(folder / given)
            assert back.model_id == name
            np.testing.assert_array_equal(back.vectors, base.vectors * (1 if i % 2 else -1))


def test_a_bare_name_gets_both_suffixes_appended(tmp_path):
    axes, _, _ = _axis_set(np.random.default_rng(6))
    assert axes.save(tmp_path / "yi-1.5-9b-chat") == tmp_path / "yi-1.5-9b-chat.json"
    assert axes.save(tmp_path / "yi-1.5-9b-chat.safetensors") == tmp_path / "yi-1.5-9b-chat.json"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock") == [
        "yi-1.5-9b-chat.json",
        "yi-1.5-9b-chat.safetensors",
    ]


def test_identical_axes_give_identical_bytes(tmp_path):
    axes, _, _ = _axis_set(np.random.default_rng(7))
    blobs = set()
    for i in range(20):  # safetensors orders its metadata differently from one call to the next
        js = axes.save(tmp_path / f"run{i}.json")
        blobs.add((js.read_bytes(), js.with_suffix(".safetensors").read_bytes()))
    assert len(blobs) == 1


def test_a_pair_mixed_from_two_saves_is_refused_in_one_line(tmp_path):
    rng = np.random.default_rng(8)
    first, _, _ = _axis_set(rng)
    second, _, _ = _axis_set(rng)
    js = first.save(tmp_path / "m.json")
    other = second.save(tmp_path / "other.json")
    js.with_suffix(".safetensors").write_bytes(other.with_suffix(".safetensors").read_bytes())
    with pytest.raises(AxesError, match="do not belong together") as err:
        AxisSet.load(js)
    assert "\n" not in str(err.value)


def test_axes_files_written_before_the_checksum_still_load(tmp_path):
    axes, _, _ = _axis_set(np.random.default_rng(9))
    js = axes.save(tmp_path / "old.json")
    meta = json.loads(js.read_text())
    del meta["tensors_sha256"]
    js.write_text(json.dumps(meta))
    np.testing.assert_array_equal(AxisSet.load(js).vectors, axes.vectors)


def _weak_poles(rng, n, dim, shift, spread=1.0, centre=0.0):
    """n answers per pole in `dim` dimensions whose poles differ by 2 * shift along e_0 (noise sd `spread`);
    the default (uninstructed) answers sit at `centre` along e_0."""
    pos = rng.normal(scale=spread, size=(n, dim))
    neg = rng.normal(scale=spread, size=(n, dim))
    pos[:, 0] += centre + shift
    neg[:, 0] += centre - shift
    return pos, neg


def test_crossfit_puts_fresh_held_out_pole_means_at_plus_and_minus_one():
    """With 15 answers per pole in 576 dimensions the in-sample projections overfit: fitted on the same
    answers, the pole means sit far apart; on fresh answers they shrink. The crossfit centre and scale come
    from answers the direction was not fitted on, so fresh answers' pole means land near ±1; the in-sample
    median/IQR puts the calibration pole means near ±0.5 and fresh ones much closer to 0."""
    rng = np.random.default_rng(3)
    fresh_means = {"crossfit": [], "median_iqr": []}
    for _ in range(20):
        pos, neg = _weak_poles(rng, 15, 576, shift=3.0)
        fresh_pos, fresh_neg = _weak_poles(rng, 200, 576, shift=3.0)
        for normalisation, means in fresh_means.items():
            axes = fit_axes(
                {"a_b": (pos, neg)},
                {"a_b": ("a", "b")},
                normalisation=normalisation,
                model_id="m",
                layers=[0],
                aggregation={},
            )
            means.append(
                [axes.project(fresh_pos, clip=False).mean(), axes.project(fresh_neg, clip=False).mean()]
            )
    crossfit, in_sample = np.median(fresh_means["crossfit"], 0), np.median(fresh_means["median_iqr"], 0)
    assert crossfit == pytest.approx([1.0, -1.0], abs=0.2)
    assert abs(in_sample[0] - in_sample[1]) < 0.5  # far below the 1.0 between its calibration pole means


def test_the_within_pole_spread_is_measured_on_held_out_answers():
    rng = np.random.default_rng(4)
    pos, neg = _weak_poles(rng, 30, 64, shift=3.0, spread=2.0)
    axes = fit_axes({"a_b": (pos, neg)}, {"a_b": ("a", "b")}, model_id="m", layers=[0], aggregation={})
    assert axes.spreads[0] == pytest.approx(2.0, rel=0.25)  # the noise sd along any fixed direction
    far = np.zeros((1, 64))
    far[0, 0] = axes.centres[0] / axes.vectors[0, 0] + 4.0  # 4 raw units from the centre along e_0
    assert axes.in_spreads(axes.project_raw(far))[0, 0] == pytest.approx(
        4.0 * axes.vectors[0, 0] / axes.spreads[0]
    )


def test_out_of_fold_projections_never_use_their_own_fold():
    rng = np.random.default_rng(5)
    pos, neg = _weak_poles(rng, 10, 8, shift=1.0)
    fp, fn = folds(np.arange(10), np.arange(10))
    before = out_of_fold(pos, neg, fp, fn)
    changed = pos.copy()
    changed[fp == 0] += 50.0  # fold 0's own answers move; the axis it is projected on must not
    after = out_of_fold(changed, neg, fp, fn)
    direction_0 = axis_direction(pos[fp != 0], neg[fn != 0]).astype(np.float64)
    np.testing.assert_allclose(after[0][fp == 0], changed[fp == 0] @ direction_0, rtol=1e-6)
    np.testing.assert_allclose(after[1][fn == 0], before[1][fn == 0], rtol=1e-6)
