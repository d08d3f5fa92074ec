"""Filling a gap: the fill markers in the vocabulary (old checkpoints load and grow), windows rearranged to teach it,
a finetune that adds them and resumes exactly, the engine's fill path, and `muse-bridge fill` on a real song."""
import json
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest
import torch

from conftest import POP909_FILES, prepare_songs
from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.midi_file import read_phrase
from engine.model import RWKV7, config_for_size
from engine.tokenizer import FILL_AFTER_BARS, RemiTokenizer, TokenizerSettings
from cli.fill_file import FillRangeError, FillRequest, fill_file, parse_bar_range
from test_trainer import kill_after_first_checkpoint, run_trainer
from trainer.data import TokenWindows
from trainer.fill import fill_window

ROOT = Path(__file__).resolve().parents[1]
SONG = POP909_FILES[0]


def test_the_fill_markers_follow_every_other_id_and_old_vocabularies_have_none():
    plain, controls = RemiTokenizer(), RemiTokenizer(TokenizerSettings().with_controls())
    both = RemiTokenizer(TokenizerSettings().with_controls().with_fill_markers())
    assert both.vocab()[:controls.vocab_size] == controls.vocab()
    assert (both.fill_suffix_id, both.fill_middle_id) == (controls.vocab_size, controls.vocab_size + 1)
    assert plain.fill_suffix_id is None and not TokenizerSettings.from_dict(plain.settings.to_dict()).fill_markers
    assert TokenizerSettings.from_dict(both.settings.to_dict()) == both.settings
    s = TokenizerSettings()
    assert s.grows_into(s.with_fill_markers()) and s.with_controls().grows_into(s.with_controls().with_fill_markers())
    assert s.grows_into(s.with_controls().with_fill_markers())
    assert s.with_fill_markers().grows_into(s.with_controls().with_fill_markers())   # the markers move, by token
    assert not s.with_fill_markers().grows_into(s)


def test_a_fill_window_holds_the_same_bars_rearranged_around_its_markers():
    tok = RemiTokenizer(TokenizerSettings().with_fill_markers())
    tokens = tok.encode(read_phrase(SONG, tok.settings))
    window = np.array(tokens[:300], dtype=np.int64)
    for seed in range(20):
        out, skip = fill_window(window, tok, tok.pad_id, np.random.default_rng(seed))
        assert len(out) == len(window)
        s, m = int(np.flatnonzero(out == tok.fill_suffix_id)[0]), int(np.flatnonzero(out == tok.fill_middle_id)[0])
        prefix, suffix = out[:s], out[s + 1:m]
        recap = (tok.first_bars(suffix.tolist(), 1)                    # the bar after the gap, read again,
                 + prefix[tok.bar_starts(prefix.tolist())[-1]:].tolist())   # then the bar before it
        assert list(out[m + 1:m + 1 + len(recap)]) == recap
        g = m + 1 + len(recap)                                           # where the gap begins
        taught = sorted(set(range(len(out) - 1)) - set(skip))         # the targets left: the gap's tokens only
        assert [int(out[i + 1]) for i in taught] == list(out[g:g + len(taught)]) and taught[0] == g - 1
        middle = out[g:][out[g:] != tok.pad_id]
        gap_bars = tok.count_bars(middle.tolist())
        assert 1 <= gap_bars <= 4 and middle[0] == tok.bar_id and prefix[0] == tok.bar_id
        assert list(window[:len(prefix) + len(middle)]) == list(prefix) + list(middle)   # the gap follows the prefix
        after = window[len(prefix) + len(middle):]
        assert list(after[:len(suffix)]) == list(suffix) and (not len(suffix) or suffix[0] == tok.bar_id)
        assert list(out[:g]) == tok.fill_reading(prefix.tolist(), suffix.tolist())   # as filling reads it
    assert tok.fill_reading([], [tok.bar_id]) == [tok.fill_suffix_id, tok.bar_id, tok.fill_middle_id, tok.bar_id]   # from bar 1
    assert tok.fill_reading([tok.bar_id, 7], [tok.bar_id, 8, tok.bar_id, 9]) == [
        tok.bar_id, 7, tok.fill_suffix_id, tok.bar_id, 8, tok.bar_id, 9, tok.fill_middle_id, tok.bar_id, 8, tok.bar_id, 7]
    short = np.array(tokens[:tok.bar_starts(tokens)[2] + 1], dtype=np.int64)   # two complete bars: left alone
    assert fill_window(short, tok, tok.pad_id, np.random.default_rng(0))[1] == []


@pytest.fixture(scope="module")
def songs_data(tmp_path_factory) -> Path:
    """The three POP909 songs prepared, 003 held out."""
    return prepare_songs(tmp_path_factory, TokenizerSettings())


def test_fill_batches_carry_the_markers_and_plain_batches_stay_as_they_were(songs_data):
    plain = TokenWindows(songs_data, "train").batch(seed=1, step=3, batch_size=4, seq_len=256)
    marked = TokenWindows(songs_data, "train", markers=True).batch(seed=1, step=3, batch_size=4, seq_len=256)
    assert all(torch.equal(a, b) for a, b in zip(plain, marked))
    data = TokenWindows(songs_data, "train", fill_share=1.0)
    x, y = data.batch(seed=1, step=3, batch_size=8, seq_len=768)
    t = data.tokenizer
    suffixes, middles = (x == t.fill_suffix_id).sum(dim=1), (x == t.fill_middle_id).sum(dim=1)
    assert torch.equal(suffixes, middles) and suffixes.max() == 1
    assert suffixes.sum() >= 6     # every window of three bars or more (the end of a song may hold fewer)
    assert not ((y == t.fill_suffix_id) | (y == t.fill_middle_id)).any()   # a marker is never a target


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory) -> Path:
    """A micro model without fill markers."""
    torch.manual_seed(0)
    base = tmp_path_factory.mktemp("base") / "micro.pt"
    save_checkpoint(base, RWKV7(config_for_size("micro", RemiTokenizer().vocab_size)), TokenizerSettings())
    return base


@pytest.fixture(scope="module")
def fill_checkpoint(base_checkpoint, songs_data, tmp_path_factory) -> Path:
    """The base fine-tuned a few steps with --fill-share: it grows the markers."""
    out = tmp_path_factory.mktemp("run")
    run = run_trainer(["finetune", "--mode", "full", "--from", str(base_checkpoint), "--data", str(songs_data),
                       "--out", str(out), *FILL_ARGS])
    assert run.wait(300) == 0, run.stderr.read().decode()[-2000:]
    return out / "last.pt"


FILL_ARGS = ["--steps", "6", "--batch-size", "2", "--seq-len", "128", "--val-every", "3", "--val-windows", "2",
             "--save-every", "2", "--warmup-steps", "1", "--threads", "1", "--fill-share", "0.5", "--lr", "1e-3"]


def test_a_finetune_with_fill_windows_grows_the_markers_and_resumes_exactly(fill_checkpoint, base_checkpoint,
                                                                           songs_data, tmp_path):
    ckpt = load_checkpoint(fill_checkpoint)
    assert ckpt.tokenizer.settings.fill_markers and ckpt.model.cfg.vocab_size == RemiTokenizer().vocab_size + 2
    common = ["finetune", "--mode", "full", "--from", str(base_checkpoint), "--data", str(songs_data), *FILL_ARGS]
    state = kill_after_first_checkpoint(run_trainer([*common, "--out", str(tmp_path / "cut")]), tmp_path / "cut")
    assert state.exists()
    resumed = run_trainer([*common, "--out", str(tmp_path / "cut"), "--resume"])
    assert resumed.wait(300) == 0, resumed.stderr.read().decode()[-2000:]
    a, b = ckpt.model.state_dict(), load_checkpoint(tmp_path / "cut" / "last.pt").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_engine_fills_exactly_the_bars_asked_for_in_the_gaps_meter(fill_checkpoint):
    from engine.session import Session

    ckpt = load_checkpoint(fill_checkpoint)
    tok = ckpt.tokenizer
    tokens = tok.encode(read_phrase(SONG, tok.settings))
    starts = tok.bar_starts(tokens)
    session = Session(ckpt.model, tok)
    session.feed(tokens[:starts[12]])                       # a live context: the fill neither reads nor changes it
    live = session.state.clone()
    fills = session.fill(3, 2, tokens[:starts[4]], tokens[starts[6]:starts[10]], seed=5)
    assert session.state.max_abs_diff(live) == 0
    assert len(fills.candidates) == 3
    for candidate in fills.candidates:
        assert tok.count_bars(candidate.tokens) == 2 and candidate.time_signature == (4, 4)
        assert tok.fill_suffix_id not in candidate.tokens and tok.fill_middle_id not in candidate.tokens
        assert all(0 <= n.start < n.end <= candidate.bar_map.span(2) for n in candidate.notes)
    with pytest.raises(ValueError, match="fill markers"):
        Session(RWKV7(config_for_size("micro", RemiTokenizer().vocab_size)), RemiTokenizer()).fill(1, 1, [], [])


def file_notes(path) -> tuple[list[tuple[int, int, int, int]], int]:
    """(channel, pitch, start, end) of every note of a MIDI file, in its ticks, and how many were never released."""
    notes, sounding = [], {}
    for track in mido.MidiFile(path).tracks:
        now = 0
        for message in track:
            now += message.time
            if message.type == "note_on" and message.velocity:
                sounding.setdefault((message.channel, message.note), []).append(now)
            elif message.type in ("note_on", "note_off") and sounding.get((message.channel, message.note)):
                notes.append((message.channel, message.note, sounding[(message.channel, message.note)].pop(0), now))
    return sorted(notes), sum(len(v) for v in sounding.values())


def test_fill_on_a_real_song_changes_only_the_chosen_bars(fill_checkpoint, tmp_path):
    result = fill_file(FillRequest(SONG, tmp_path, 5, 6, candidates=2, seed=3, checkpoint=fill_checkpoint))
    assert len(result["files"]) == 2
    song = read_phrase(SONG, TokenizerSettings())
    start, end = song.bars.bar_line(4), song.bars.bar_line(6)   # POP909 is read at its own ticks
    before, _ = file_notes(SONG)
    kept = sorted((c, p, s, min(e, start) if s < start else e) for c, p, s, e in before if not start <= s < end)
    for path in result["files"]:
        after, unreleased = file_notes(path)
        assert unreleased == 0
        assert [n for n in after if not start <= n[2] < end] == kept          # the rest of the song, as it was
        new = [n for n in after if start <= n[2] < end]
        assert new and all(e <= end for _, _, _, e in new)                      # the new bars end at the range
        filled = read_phrase(path, TokenizerSettings())
        assert (filled.time_signature, filled.ticks_per_beat, filled.n_bars) == (song.time_signature,
                                                                               song.ticks_per_beat, song.n_bars)
    assert mido.MidiFile(result["files"][0]).length == pytest.approx(mido.MidiFile(SONG).length, abs=0.01)


@pytest.mark.parametrize("bars, why", [("0-2", "outside the song"), ("70-80", "outside the song"),
                                       ("6-5", "empty"), ("1-9", "at most 4"), ("x", "FIRST-LAST")])
def test_a_bad_range_gets_one_clear_line(bars, why, tmp_path):
    run = subprocess.run([sys.executable, "-m", "ui.cli", "fill", str(SONG), "--bars", bars, "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and why in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_bar_ranges_are_read_as_people_write_them():
    assert parse_bar_range("9-12") == (9, 12) and parse_bar_range("5") == (5, 5)
    with pytest.raises(FillRangeError):
        parse_bar_range("12-9")


def test_eval_of_a_model_that_fills_scores_the_same_bars_with_and_without_the_bars_after(fill_checkpoint, songs_data,
                                                                                        capsys):
    from trainer.__main__ import main as trainer_main

    assert trainer_main(["eval", "--checkpoint", str(fill_checkpoint), "--data", str(songs_data),
                         "--context-bars", "2,4", "--windows", "3", "--threads", "1"]) == 0
    fill = json.loads(capsys.readouterr().out)["sources"]["all"]["fill"]
    assert fill["windows"] == 3 and fill["context_bars"] == fill["suffix_bars"] == FILL_AFTER_BARS
    assert set(fill["by_bars_either_side"]) == {"8", str(FILL_AFTER_BARS)}   # the headline is the longest reading
    assert fill["nll_per_note"] == fill["by_bars_either_side"][str(FILL_AFTER_BARS)]["nll_per_note"]
    for reading in fill["by_bars_either_side"].values():
        assert set(reading["nll_per_note"]) == {"prefix_only", "prefix_and_suffix"}
        assert all(v > 0 for v in reading["nll_per_note"].values())
        assert reading["nll_reduction"] == pytest.approx(1 - reading["nll_per_note"]["prefix_and_suffix"]
                                                         / reading["nll_per_note"]["prefix_only"])
    short, long = (fill["by_bars_either_side"][k]["nll_per_note"]["prefix_only"] for k in ("8", str(FILL_AFTER_BARS)))
    assert short != long   # each reading reads its own bars before the gap
    assert set(fill["pitch_class_overlap"]) == {"fill", "continuation", "repeat_the_bar_before"}
    assert all(0 <= v <= 1 for v in fill["pitch_class_overlap"].values())


def test_the_completion_eval_and_its_ngram_read_unmarked_data_for_a_model_that_fills(fill_checkpoint, songs_data,
                                                                                    capsys):
    from trainer.__main__ import main as trainer_main

    assert trainer_main(["eval", "--checkpoint", str(fill_checkpoint), "--midi", str(SONG.parent), "--data",
                         str(songs_data), "--split", "val", "--windows", "2", "--train-data", str(songs_data),
                         "--ngram-order", "3", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metrics"]["ngram"]["nll_per_note"] > 0 and report["metrics"]["model"]["nll_per_note"] > 0


def test_a_gaps_own_notes_never_reach_what_the_fill_reads(tmp_path, monkeypatch):
    """A pitch played only in the gap (bars 3-4 of 8) is in neither side of the split (the one the file command and
    the live context use), and the model never reads it, through the file command's own path."""
    from engine.session import Session

    q = 480
    mid = mido.MidiFile(ticks_per_beat=q)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for bar in range(8):
        for beat in range(4):
            pitch = 100 if bar in (2, 3) else 60 + beat
            track += [mido.Message("note_on", note=pitch, velocity=80, time=0),
                      mido.Message("note_off", note=pitch, velocity=0, time=q)]
    mid.save(str(tmp_path / "song.mid"))
    settings = TokenizerSettings().with_fill_markers()
    tok = RemiTokenizer(settings)
    planted = tok.vocab().index("Pitch_100")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "fill.pt", RWKV7(config_for_size("micro", tok.vocab_size)), settings)
    read = []
    sample = Session._sample
    monkeypatch.setattr(Session, "_sample", lambda self, k, bars, sampling, seed, reading, *rest:
                        read.append(list(reading)) or sample(self, k, bars, sampling, seed, reading, *rest))
    fill_file(FillRequest(tmp_path / "song.mid", tmp_path / "out", 3, 4, candidates=1, seed=0,
                          checkpoint=tmp_path / "fill.pt"))
    assert len(read) == 1 and planted not in read[0] and tok.count_bars(read[0]) == 2 + 4 + 1 + 1   # recap: 2
    tokens = tok.encode(read_phrase(tmp_path / "song.mid", settings))
    assert planted in tokens
    before, after = tok.around_gap(tokens, 2, 3)
    assert planted not in before + after and tok.count_bars(before) == 2 and tok.count_bars(after) == 4
