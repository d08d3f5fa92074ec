"""`python -m trainer eval` and its n-gram baseline, on three real POP909 songs and a micro model."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import hold_out
from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.grammar import RemiGrammar
from engine.model import RWKV7, config_for_size
from engine.music import Note, Phrase
from engine.tokenizer import RemiTokenizer
from trainer.__main__ import main
from trainer.evaluate import (EvalConfig, Window, continuation_metrics, eval_files, evaluate,
                              model_scores, ngram_training_data, repeat_samples)
from trainer.ngram import NGramModel
from trainer.prepare import PrepareConfig, prepare

SONGS = Path(__file__).parent / "data" / "pop909"


@pytest.fixture(scope="module")
def remi() -> RemiTokenizer:
    return RemiTokenizer()


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("midi")
    for f in sorted(SONGS.glob("*.mid")):
        shutil.copy(f, d / f.name)
    return d


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, midi_dir) -> Path:
    """The three songs prepared, 001 and 002 as train, 003 as val."""
    out = tmp_path_factory.mktemp("data")
    prepare(PrepareConfig(midi_dir, out, workers=1))
    hold_out(out, "003.mid")
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, remi, data_dir) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "micro.pt"
    save_checkpoint(path, RWKV7(config_for_size("micro", remi.vocab_size)), remi.settings,
                    {"train_config": {"data_dir": str(data_dir)}})
    return path


def test_eval_prints_one_json_object_with_every_metric_in_range(checkpoint, midi_dir, capsys):
    assert main(["eval", "--checkpoint", str(checkpoint), "--midi", str(midi_dir), "--windows", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["windows"] == 3 and out["window_files"] == 3 and out["target_tokens"] > 0
    assert out["ngram"]["train_tokens"] > 0 and out["ngram"]["order"] == 6
    for name in ("model", "ngram", "repeat_last_2_bars"):
        m = out["metrics"][name]
        assert 0 <= m["pitch_class_overlap"] <= 1
        assert m["note_density_ratio_mean"] >= 0 and m["note_density_ratio_of_totals"] >= 0
        assert m["exactly_2_bars"] == 1.0  # grammar-masked samplers and the repeat always close bar 2
    for name in ("model", "ngram"):
        m = out["metrics"][name]
        assert 0 < m["nll"] < 20 and 0 <= m["accuracy"] <= 1
        assert set(m["nll_by_kind"]) >= {"Bar", "Pitch", "Velocity", "Duration"}
    assert out["metrics"]["repeat_last_2_bars"]["nll"] is None


def test_eval_of_a_model_without_training_data_here_reports_the_model_and_the_repeat_baseline(
        tmp_path, remi, midi_dir, capsys, caplog):
    torch.manual_seed(0)
    bare = tmp_path / "shipped.pt"                      # like the bundled model: its training data is elsewhere
    save_checkpoint(bare, RWKV7(config_for_size("micro", remi.vocab_size)), remi.settings,
                    {"train_config": {"data_dir": str(tmp_path / "not-here")}})
    with caplog.at_level("INFO", logger="trainer.evaluate"):
        assert main(["eval", "--checkpoint", str(bare), "--midi", str(midi_dir), "--windows", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["metrics"]) == {"model", "repeat_last_2_bars"} and out["ngram"] is None
    assert 0 < out["metrics"]["model"]["nll"] < 20
    assert any("--train-data" in r.getMessage() for r in caplog.records)


def test_batched_model_scores_equal_feeding_each_window_token_by_token(checkpoint, data_dir, remi):
    model = load_checkpoint(checkpoint).model
    tokens = np.load(data_dir / "tokens.npy").astype(np.int64).tolist()
    windows = [Window("a", 0, tokens[:40], tokens[40:60], (4, 4)),
               Window("b", 0, tokens[100:125], tokens[125:170], (4, 4))]
    logp, _ = model_scores(model, windows, batch_size=2, pad_id=0)[0.0]  # one padded batch
    expected = []
    with torch.no_grad():
        for w in windows:
            _, state = model(torch.tensor([w.context[:-1]]))
            for prev, target in zip([w.context[-1]] + w.completion[:-1], w.completion):
                logits, state = model(torch.tensor([[prev]]), state)
                expected.append(float(logits[0, -1].log_softmax(-1)[target]))
    np.testing.assert_allclose(logp, expected, atol=1e-4)


def test_ngram_probabilities_sum_to_one_over_the_vocabulary(data_dir, remi):
    tokens = np.load(data_dir / "tokens.npy").astype(np.int64)
    ngram = NGramModel(remi.vocab_size, 6).fit([tokens[:5000], tokens[5000:]])
    rng = np.random.default_rng(0)
    seen = np.stack([tokens[i - 5:i] for i in rng.integers(5, len(tokens), 20)])
    unseen = rng.integers(0, remi.vocab_size, (20, 5))
    mixed = seen.copy()
    mixed[:, 0] = unseen[:, 0]  # a novel long history over a seen short one: the back-off path
    for histories in (seen, unseen, mixed, seen[:, 3:], np.zeros((3, 0), dtype=np.int64)):
        p = ngram.probabilities(histories)
        assert p.shape == (len(histories), remi.vocab_size)
        assert (p > 0).all()
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)


def test_ngram_fitted_on_a_repetitive_sequence_predicts_it_with_low_nll():
    phrase = np.array([3, 7, 1, 4, 4, 9, 2, 7, 5])
    ngram = NGramModel(vocab_size=16, order=4).fit([np.tile(phrase, 200)])
    test = np.tile(phrase, 3)
    histories = np.stack([test[i - 3:i] for i in range(3, len(test))])
    nll = -ngram.log_prob(histories, test[3:]).mean()
    assert nll < 0.05
    assert -np.log(1 / 16) > 50 * nll  # far below the uniform model


def test_repeat_baseline_reproduces_a_phrase_whose_bars_repeat(remi):
    grammar = RemiGrammar(remi)
    bar = 4 * 480
    two_bars = [Note(60, 80, 0, 240), Note(64, 80, 480, 960), Note(67, 90, bar + 240, bar + 720)]
    notes = [Note(n.pitch, n.velocity, n.start + k * 2 * bar, n.end + k * 2 * bar) for k in range(4) for n in two_bars]
    tokens = remi.encode(Phrase(notes, 480, (4, 4), 120.0))
    bars = [i for i, t in enumerate(tokens) if t == remi.bar_id]
    context, completion = tokens[bars[0]:bars[4]], tokens[bars[4]:bars[6]] + [remi.bar_id]
    window = Window("song.mid", 0, context, completion, grammar.meter_after(context))
    metrics = continuation_metrics(repeat_samples([window], remi), [window], remi)
    assert metrics == {"pitch_class_overlap": 1.0, "note_density_ratio_mean": 1.0,
                       "note_density_ratio_of_totals": 1.0, "exactly_2_bars": 1.0}


def test_data_and_split_restrict_the_files_to_that_split(checkpoint, midi_dir, data_dir):
    cfg = EvalConfig(str(checkpoint), midi_dir, data=str(data_dir), split="val")
    assert [rel for rel, _, _ in eval_files(cfg)] == ["003.mid"]
    assert {rel for rel, _, _ in eval_files(EvalConfig(str(checkpoint), midi_dir))} == {"001.mid", "002.mid", "003.mid"}


def test_ngram_without_named_training_data_fits_the_other_splits_of_data(checkpoint, midi_dir, data_dir, remi):
    cfg = EvalConfig(str(checkpoint), midi_dir, data=str(data_dir), split="val")
    _, splits, sequences = ngram_training_data(cfg, {}, remi.settings)
    index = json.loads((data_dir / "index.json").read_text())
    assert splits == ["train"]
    assert sum(map(len, sequences)) == sum(f["length"] for f in index["files"] if f["split"] == "train")


def test_a_corrupt_file_is_skipped_and_reported(checkpoint, midi_dir, tmp_path):
    shutil.copytree(midi_dir, tmp_path / "midi")
    (tmp_path / "midi" / "sub").mkdir()
    (tmp_path / "midi" / "sub" / "broken.mid").write_bytes(b"MThd this is not a MIDI file")
    out = evaluate(EvalConfig(str(checkpoint), tmp_path / "midi", windows=2))
    assert [s["path"] for s in out["skipped"]] == ["sub/broken.mid"]
    assert out["skipped"][0]["reason"]
    assert out["files"] == 3 and out["windows"] == 2
