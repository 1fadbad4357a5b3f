from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from waiting import CPU_THREADS

from styleprobe import paths
from styleprobe.engine.extraction import Aggregation
from styleprobe.engine.hooks import block_hooks
from styleprobe.engine.models import load_model
from styleprobe.engine.pipeline import Item, read_responses
from styleprobe.engine.store import WriteError
from styleprobe.formats import interop, mood_axis
from styleprobe.protocol.axes import AxesError, AxisSet
from styleprobe.protocol.spec import Protocol

STUDY_NPZ = Path(__file__).parent / "data/mood_axis/article/axis_stability/qwen_7b_set_A_axes.npz"
PROTOCOL = Protocol.load()


def _axes(hidden=32):
    rng = np.random.default_rng(0)
    names = ["warm_cold", "formal_casual"]
    vectors = rng.normal(size=(2, hidden))
    return AxisSet(
        names=names,
        poles=[PROTOCOL.axes[n].poles for n in names],
        vectors=vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
        centres=np.array([0.1, -0.2]),
        scales=np.array([2.5, 4.0]),
        model_id="some/model",
        hidden_size=hidden,
        layers=[4, 5, 6, 7],
        aggregation=Aggregation().to_dict(),
    )


def test_control_vector_round_trip_in_llama_cpp_layout(tmp_path):
    axes = _axes()
    path = interop.export_control_vector(axes, "formal_casual", tmp_path / "formal.gguf")
    reader = gguf.GGUFReader(str(path))  # the gguf package's own reader sees the llama.cpp layout
    assert bytes(reader.fields["general.architecture"].parts[-1]).decode() == "controlvector"
    assert sorted(t.name for t in reader.tensors) == [f"direction.{b + 1}" for b in (4, 5, 6, 7)]
    cv = interop.read_control_vector(path)
    assert (
        list(cv.directions) == [4, 5, 6, 7] and cv.model_hint == "some/model" and cv.axis == "formal_casual"
    )
    np.testing.assert_allclose(cv.directions[6], axes.vectors[1] * 4.0, rtol=1e-6)
    back = interop.control_vector_axis(cv, PROTOCOL)
    np.testing.assert_allclose(back.vectors[0], axes.vectors[1], atol=1e-6)
    assert back.scales[0] == pytest.approx(4.0) and back.names == ["formal_casual"]
    assert back.poles == [PROTOCOL.axes["formal_casual"].poles]
    with pytest.raises(AxesError, match="unknown axis 'nosuch'"):
        interop.control_vector_axis(cv, PROTOCOL, "nosuch")


def test_a_chosen_strength_and_layers(tmp_path):
    path = interop.export_control_vector(
        _axes(), "warm_cold", tmp_path / "w.gguf", layers=[0, 7], strength=0.5
    )
    cv = interop.read_control_vector(path)
    assert list(cv.directions) == [0, 7]  # the first and the last block of the axes' 8-block model
    assert np.linalg.norm(cv.directions[7]) == pytest.approx(0.5)
    with pytest.raises(AxesError, match="has 8 decoder blocks"):
        interop.export_control_vector(_axes(), "warm_cold", tmp_path / "x.gguf", layers=[8])
    assert not (tmp_path / "x.gguf").exists()


def test_malformed_control_vectors_give_one_line_errors(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(AxesError, match="not a readable GGUF"):
        interop.read_control_vector(junk)
    other = tmp_path / "other.gguf"
    writer = gguf.GGUFWriter(str(other), "llama")
    writer.add_tensor("direction.1", np.ones(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(AxesError, match="not a control vector"):
        interop.read_control_vector(other)


def test_the_study_axes_import_with_their_uncentred_scale():
    axes = interop.import_study_axes(STUDY_NPZ, PROTOCOL)
    assert axes.model_id == "Qwen/Qwen2.5-7B-Instruct" and axes.layers == [24, 25, 26, 27]
    assert axes.normalisation == "uncentred_iqr" and np.all(axes.centres == 0)
    np.testing.assert_allclose(np.linalg.norm(axes.vectors, axis=1), 1.0, atol=1e-6)
    with np.load(STUDY_NPZ) as z:
        scale = float(z["warm_cold_scale"])
        h = np.random.default_rng(1).normal(size=(3, axes.hidden_size)).astype(np.float32) * 50
        expected = np.clip(h @ (z["warm_cold"] / np.linalg.norm(z["warm_cold"])) / scale, -1, 1)
    np.testing.assert_allclose(axes.project(h)[:, axes.index("warm_cold")], expected, rtol=1e-4, atol=1e-6)
    assert "final norm" in axes.meta["convention"]
    with pytest.raises(AxesError, match="unknown study model"):
        interop.import_study_axes(STUDY_NPZ.with_name("other_set_A_axes.npz"), PROTOCOL)


def test_cli_imports_the_study_axes_and_exports_a_control_vector(tmp_path, capsys):
    from styleprobe.apps.cli import main

    out = tmp_path / "qwen-study.json"
    assert main(["axes", "import-study", str(STUDY_NPZ), "--out", str(out)]) == 0
    assert (
        main(["axes", "export-gguf", str(out), "--axis", "warm_cold", "--out", str(tmp_path / "w.gguf")]) == 0
    )
    cv = interop.read_control_vector(tmp_path / "w.gguf")
    assert list(cv.directions) == [24, 25, 26, 27] and cv.model_hint == "Qwen/Qwen2.5-7B-Instruct"
    assert main(["axes", "export-gguf", str(out), "--axis", "nope", "--out", str(tmp_path / "x.gguf")]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layers": [-5]}, "layers must be"),
        ({"layers": []}, "layers must be"),
        ({"strength": np.nan}, "finite"),
    ],
)
def test_a_bad_export_setting_is_refused_and_writes_nothing(tmp_path, options, message):
    with pytest.raises(AxesError, match=message):
        interop.export_control_vector(_axes(), "warm_cold", tmp_path / "v.gguf", **options)
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_fails_half_way_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken(self):
        raise OSError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", broken)
    with pytest.raises(WriteError, match=r"cannot write .*v\.gguf: disk full"):
        interop.export_control_vector(_axes(), "warm_cold", tmp_path / "v.gguf")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.realmodel
def test_the_study_reading_ranks_answers_like_ours_on_another_scale():
    """The README's claim about imported study axes, measured where it can be: the study read the last of its
    4 layers after the final norm, we read all 4 before it. The study's 7B models are not available offline,
    so the embedded SmolLM2 reads the study's own 30 baseline answers (qwen_7b, first 64 tokens of each)
    both ways, the study's by passing the last block's output through the final norm, and both readings are
    projected on the shipped axes with one scale (an imported axis keeps the study's scale the same way).
    The readings rank the answers alike, but ours spread about twice as widely: values are not the study's."""
    threads = torch.get_num_threads()
    torch.set_num_threads(CPU_THREADS)
    try:
        handle = load_model("smollm2-135m-instruct")
        study_file = paths.data_dir() / "mood_axis" / "baselines" / "qwen_7b_baseline.json"
        answers = mood_axis.load_baseline(study_file).responses
        items = [Item(f"q{i}", a["question"]) for i, a in enumerate(answers)]
        ids = handle.tokenizer([a["response"] for a in answers], add_special_tokens=False)["input_ids"]
        texts = [handle.tokenizer.decode(i[:64]) for i in ids]
        ours = read_responses(handle, items, texts, progress=False)
        with block_hooks(handle, {handle.n_layers - 1: handle.model.get_decoder().norm}):
            study = read_responses(handle, items, texts, progress=False)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(ours[:, :-1], study[:, :-1])  # the same blocks; only the last one differs
    axes = AxisSet.load(paths.REPO_ROOT / "axes" / "smollm2-135m-instruct")
    aggregation = Aggregation()
    mine, theirs = (aggregation.combine(x) @ axes.vectors.T.astype(np.float32) for x in (ours, study))
    r = np.array([np.corrcoef(mine[:, i], theirs[:, i])[0, 1] for i in range(len(axes.names))])
    spread = mine.std(axis=0) / theirs.std(axis=0)
    shift = np.abs(mine.mean(axis=0) - theirs.mean(axis=0)) / axes.scales
    print(dict(zip(axes.names, zip(r.round(3), spread.round(2), shift.round(2), strict=True), strict=True)))
    assert r.min() >= 0.9  # the same ranking of answers, axis by axis
    assert spread.min() >= 1.5 and spread.max() <= 3.0  # not the same values: about twice the spread
    assert shift.max() >= 0.5  # and means up to more than half a scale unit apart
