"""Training that carries the song: whole songs in consecutive windows with the state passed on, thinned
bars for the density control, and the evaluation at the context lengths the bridge really has."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import prepare_songs
from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.model import RWKV7, config_for_size
from engine.sampler import SamplingConfig
from engine.tokenizer import RemiTokenizer, TokenizerSettings
from test_trainer import kill_after_first_checkpoint, run_trainer
from trainer.__main__ import main as trainer_main
from trainer.context_eval import DENSITY_DRAWS
from trainer.data import IGNORE, TokenWindows
from trainer.thinning import MOST_RUN_BARS, BarThinner

STREAM_ARGS = ["--batch-size", "2", "--seq-len", "64", "--val-every", "4", "--val-windows", "2", "--save-every", "2",
               "--warmup-steps", "2", "--threads", "1", "--carry-state"]


@pytest.fixture(scope="module")
def controls_data(tmp_path_factory) -> Path:
    """The three POP909 songs prepared with bar controls, 003 held out."""
    return prepare_songs(tmp_path_factory, TokenizerSettings().with_controls())


@pytest.fixture(scope="module")
def controls_checkpoint(controls_data, tmp_path_factory) -> Path:
    settings = TokenizerSettings().with_controls()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "micro.pt"
    save_checkpoint(path, RWKV7(config_for_size("micro", RemiTokenizer(settings).vocab_size)), settings,
                    {"train_config": {"data_dir": str(controls_data)}})
    return path


def test_a_stream_row_plays_its_song_on_in_consecutive_windows(controls_data):
    data = TokenWindows(controls_data, "train")
    batches = [data.stream_batch(seed=3, step=s, batch_size=2, seq_len=256, max_transpose=5) for s in range(60)]
    for step in range(1, 60):
        (x0, y0, _), (x1, _, fresh) = batches[step - 1], batches[step]
        for row in range(2):
            if not fresh[row]:   # the window goes on where the last one stopped: its first input was the last target
                assert x1[row, 0] == y0[row, -1] and y0[row, -1] != IGNORE
    assert batches[0][2].all() and sum(int(b[2].sum()) for b in batches[1:]) >= 2   # a new song starts fresh


def test_stream_batches_are_a_pure_function_of_seed_and_step(controls_data):
    played = [TokenWindows(controls_data, "train").stream_batch(1, s, 2, 64, 5) for s in range(25)]
    later = TokenWindows(controls_data, "train")   # a resumed run asks for step 24 first
    for got, want in zip(later.stream_batch(1, 24, 2, 64, 5), played[24]):
        assert torch.equal(got, want)


def test_killed_and_resumed_carry_state_run_ends_with_the_same_weights(controls_data, tmp_path):
    common = ["train", "--data", str(controls_data), "--size", "micro", "--steps", "8", *STREAM_ARGS]
    whole = run_trainer([*common, "--out", str(tmp_path / "whole")])
    assert whole.wait(300) == 0, whole.stderr.read().decode()[-2000:]
    state = kill_after_first_checkpoint(run_trainer([*common, "--out", str(tmp_path / "cut")]), tmp_path / "cut")
    saved = torch.load(state, weights_only=True)
    assert saved["carried"] is not None          # the state each row carries is part of what resume needs
    resumed = run_trainer([*common, "--out", str(tmp_path / "cut"), "--resume"])
    assert resumed.wait(300) == 0, resumed.stderr.read().decode()[-2000:]
    a = load_checkpoint(tmp_path / "whole" / "last.pt").model.state_dict()
    b = load_checkpoint(tmp_path / "cut" / "last.pt").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_carry_state_refuses_a_completion_loss(controls_data, tmp_path, capsys):
    code = trainer_main(["train", "--data", str(controls_data), "--out", str(tmp_path), "--size", "micro",
                         "--steps", "1", *STREAM_ARGS, "--completion-bars", "2"])
    assert code == 2 and "--completion-bars" in capsys.readouterr().err


def test_rewriting_an_unthinned_bars_controls_gives_the_tokenizers_own(controls_data):
    data = TokenWindows(controls_data, "train")
    thinner = BarThinner(data.tokenizer)
    tokens = np.asarray(data.tokens[: data.files[0]["length"]], dtype=np.int64)
    starts = np.flatnonzero(tokens == thinner.bar_id)
    checked = 0
    for s, e in zip(starts, np.r_[starts[1:], len(tokens)]):
        bar = tokens[s:e]
        controls = np.flatnonzero(thinner.is_control[bar])
        if len(controls):
            assert thinner.controls_for(bar[controls[-1] + 1:]) == bar[controls].tolist()
            checked += 1
    assert checked > 50


def test_a_thinned_bar_keeps_some_of_its_notes_and_says_how_many(controls_data):
    data = TokenWindows(controls_data, "train")
    tok, thinner = data.tokenizer, BarThinner(data.tokenizer)
    window = np.asarray(data.tokens[: 600], dtype=np.int64)
    thinned, which = thinner.thin(window, np.random.default_rng(0), bar_share=1.0, keep_range=(0.3, 0.5))
    assert which[1:-1].all() and not which[-1]                   # every bar but the last, which may be cut
    assert tok.count_bars(thinned.tolist()) == tok.count_bars(window.tolist())
    before = {(n.start, n.pitch) for n in tok.decode(window.tolist(), 480, (4, 4))}
    after = tok.decode(thinned.tolist(), 480, (4, 4))
    assert {(n.start, n.pitch) for n in after} < before and len(after) < 0.7 * len(before)
    starts = np.flatnonzero(thinned == thinner.bar_id)
    for s, e in zip(starts[:-1], starts[1:]):                   # each bar's density token counts its notes
        bar = thinned[s:e]
        density = [tok.vocabulary.density[t] for t in bar if t in tok.vocabulary.density]
        assert density == [int((thinner.pitch_of[bar] >= 0).sum())] or not density


def test_a_thinned_run_asks_the_bars_after_it_for_more_notes_than_it_holds(controls_data):
    data = TokenWindows(controls_data, "train")
    tok, thinner = data.tokenizer, BarThinner(data.tokenizer)
    window = np.asarray(data.tokens[: 1200], dtype=np.int64)
    runs, kept, had = [], 0, 0
    for seed in range(12):
        thinned, which = thinner.thin(window, np.random.default_rng(seed), bar_share=0.0, keep_range=(0.3, 0.5),
                                      run_share=1.0)
        run = int(which[1:].sum())
        assert 1 <= run <= MOST_RUN_BARS and which[1:run + 1].all() and not which[run + 1:].any()   # from the start
        notes = [int((thinner.pitch_of[bar] >= 0).sum())
                 for bar in np.split(thinned, np.flatnonzero(thinned == thinner.bar_id))[1:]]
        real = [int((thinner.pitch_of[bar] >= 0).sum())
                for bar in np.split(window, np.flatnonzero(window == thinner.bar_id))[1:]]
        assert notes[run:] == real[run:] and all(a <= b for a, b in zip(notes, real))   # only the run is thinner
        runs.append(run)
        kept, had = kept + sum(notes[:run]), had + sum(real[:run])
    assert len(set(runs)) > 3 and kept < 0.7 * had
    same = thinner.thin(window, np.random.default_rng(0), 0.3, (0.3, 0.5))
    assert all(np.array_equal(a, b) for a, b in zip(same, thinner.thin(window, np.random.default_rng(0), 0.3,
                                                                        (0.3, 0.5), run_share=0.0)))


def test_thinned_windows_keep_the_density_control_of_every_thinned_bar(controls_data):
    data = TokenWindows(controls_data, "train", thin_bars=1.0)
    x, _ = data.batch(seed=0, step=0, batch_size=4, seq_len=256)
    density = set(data.tokenizer.vocabulary.density)
    for row in x.numpy():
        bars = np.split(row, np.flatnonzero(row == data.tokenizer.bar_id))[1:-1]
        assert all(any(t in density for t in bar) for bar in bars if (data.pitch_of[bar] >= 0).any())


def test_density_band_off_leaves_the_model_alone():
    assert SamplingConfig(density=8, density_band=None).density_bounds() is None
    assert SamplingConfig(density=8).density_bounds() == (7, 9)


def test_eval_on_prepared_data_reports_every_context_length_and_the_copy_baselines(controls_checkpoint,
                                                                                   controls_data, capsys):
    assert trainer_main(["eval", "--checkpoint", str(controls_checkpoint), "--data", str(controls_data),
                         "--context-bars", "2,8", "--windows", "3", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    source = report["sources"]["all"]
    assert report["split"] == "val" and source["songs"] == 1 and source["windows"] == 3
    assert set(source["by_context_bars"]) == {"2", "8"}
    for row in source["by_context_bars"].values():
        assert row["nll_per_note"] > 0 and 0 <= row["pitch_class_overlap"] <= 1 and row["exactly_2_bars"] == 1
    assert set(source["copy_baselines"]) == {"repeat_last_2_bars", "repeat_2_bars_8_back"}
    assert {"band_off", "band_on"} <= set(source["density"]) and source["density"]["draws"] == DENSITY_DRAWS
    assert source["density"]["band_on"]["mean_abs_log_ratio"] < 0.35     # the band holds each bar within 10%
    choices = source["choices"]
    assert choices["candidates"] == 4 and 0 <= choices["requests_all_distinct"] <= 1
    assert 0 <= choices["pairwise_note_overlap"] <= 1 and 0 <= choices["pitch_class_overlap_with_truth"] <= 1


def test_candidates_sharing_most_of_their_notes_are_one_choice():
    from engine.music import Note
    from trainer.context_eval import DISTINCT_BELOW, note_overlap

    line = [Note(60 + i % 5, 80, 240 * i, 240 * i + 200) for i in range(10)]
    assert note_overlap(line, line) == 1 and note_overlap([], []) == 1 and note_overlap(line, []) == 0
    nine = line[:9] + [Note(72, 80, 2160, 2300)]                  # one note of ten other
    assert note_overlap(line, nine) == 0.9 >= DISTINCT_BELOW
    longer = line + [Note(48, 60, 0, 960)]                        # the same notes and one more: 10 of 11
    assert note_overlap(line, longer) == note_overlap(longer, line) == 10 / 11
    assert note_overlap(line, [Note(n.pitch + 1, n.velocity, n.start, n.end) for n in line]) == 0


def test_eval_without_midi_or_data_says_what_to_give(controls_checkpoint, capsys):
    assert trainer_main(["eval", "--checkpoint", str(controls_checkpoint)]) == 2
    assert "--data" in capsys.readouterr().err


def test_an_older_models_eval_reads_data_of_the_grown_vocabulary_token_by_token(controls_data, tmp_path, capsys):
    """Data prepared with the odd meters, a model without them (as the bundled one): the songs are read in the
    model's ids, token by token, and the evaluation runs."""
    from trainer.context_eval import held_out_songs

    old = TokenizerSettings(time_signatures=((8, (3, 12, 6)), (4, (5, 6, 3, 2, 1, 4)))).with_controls()
    old_tok, data = RemiTokenizer(old), TokenWindows(controls_data, "val")
    assert old_tok.vocab() != data.tokenizer.vocab()                   # the meters moved the ids after them
    mapped, raw = held_out_songs(str(controls_data), "val", old_tok), held_out_songs(str(controls_data), "val")
    for (_, a), (_, b) in zip(mapped["all"], raw["all"]):
        assert [old_tok.token_str(t) for t in a] == [data.tokenizer.token_str(t) for t in b]
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "old.pt", RWKV7(config_for_size("micro", old_tok.vocab_size)), old)
    assert trainer_main(["eval", "--checkpoint", str(tmp_path / "old.pt"), "--data", str(controls_data),
                         "--context-bars", "2", "--windows", "2", "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["sources"]["all"]["windows"] == 2
