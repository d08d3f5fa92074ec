"""`muse-bridge suggest` and the Session behind it: exactly N bars, K candidates, reproducible, clear errors."""
import json
import subprocess
import sys
from pathlib import Path

import mido
import pytest
import torch

from conftest import POP909_FILES
from engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from engine.midi_file import bundled_phrase, read_phrase
from engine.model import RWKV7, config_for_size
from engine.sampler import SamplingConfig
from engine.session import Session
from engine.style import load_style, save_style
from ui.cli import main

PROMPT = POP909_FILES[0]


def suggest(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["suggest", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def micro(micro_checkpoint):
    return load_checkpoint(micro_checkpoint)


def test_suggest_writes_k_candidates_each_exactly_n_bars_after_the_prompt(capsys, micro_checkpoint, tokenizer, tmp_path):
    code, out, _ = suggest(capsys, PROMPT, "--bars", 2, "--candidates", 4, "--seed", 1,
                           "--checkpoint", micro_checkpoint, "--out", tmp_path)
    assert code == 0
    result = json.loads(out)
    assert result["files"] == [str(tmp_path / f"candidate_{i}.mid") for i in range(1, 5)]
    prompt = read_phrase(PROMPT, tokenizer.settings)
    first = prompt.n_bars * prompt.ticks_per_bar
    for f in result["files"]:
        notes = read_phrase(f, tokenizer.settings).notes
        assert notes, f"{f} is empty"
        assert min(n.start for n in notes) >= first
        assert max(n.end for n in notes) <= first + 2 * prompt.ticks_per_bar
        track_end = sum(msg.time for msg in mido.MidiFile(f).tracks[0])
        assert track_end == first + 2 * prompt.ticks_per_bar  # the file lasts to the end of bar N


def test_candidates_keep_the_prompts_tempo_and_meter(capsys, micro_checkpoint, tokenizer, tmp_path):
    suggest(capsys, PROMPT, "--candidates", 1, "--seed", 3, "--checkpoint", micro_checkpoint, "--out", tmp_path)
    prompt, cand = read_phrase(PROMPT, tokenizer.settings), read_phrase(tmp_path / "candidate_1.mid", tokenizer.settings)
    assert cand.time_signature == prompt.time_signature
    assert cand.tempo_bpm == pytest.approx(prompt.tempo_bpm, rel=1e-3)
    assert cand.ticks_per_beat == prompt.ticks_per_beat


def test_same_seed_gives_the_same_candidates(capsys, micro_checkpoint, tmp_path):
    for name in ("a", "b", "c"):
        seed = 7 if name != "c" else 8
        suggest(capsys, PROMPT, "--candidates", 2, "--seed", seed, "--checkpoint", micro_checkpoint,
                "--out", tmp_path / name)
    same = [(tmp_path / d / "candidate_1.mid").read_bytes() for d in ("a", "b", "c")]
    assert same[0] == same[1] != same[2]


@pytest.mark.parametrize("bars", [1, 3])
def test_session_stops_after_exactly_n_complete_bars(micro, tokenizer, bars):
    session = Session(micro.model, micro.tokenizer)
    session.feed(tokenizer.encode(read_phrase(PROMPT, tokenizer.settings)))
    suggestion = session.suggest(3, bars, SamplingConfig(max_tokens_per_bar=48), seed=0)
    for cand in suggestion.candidates:
        assert tokenizer.count_bars(cand.tokens) == bars
        # every sampled note decodes: Pitch, Velocity, Duration always come as a triple
        kinds = [tokenizer.token_str(t).split("_")[0] for t in cand.tokens]
        assert kinds.count("Pitch") == kinds.count("Velocity") == kinds.count("Duration") == len(cand.notes)
        assert all(0 <= n.start < n.end <= bars * 4 * 480 for n in cand.notes)


def test_suggest_does_not_change_the_live_context(micro, tokenizer):
    session = Session(micro.model, micro.tokenizer)
    session.feed(tokenizer.encode(read_phrase(PROMPT, tokenizer.settings))[:300])
    before = session.state.clone()
    session.suggest(2, 1, SamplingConfig(max_tokens_per_bar=32), seed=0, tail=[tokenizer.bar_id])
    assert session.state.max_abs_diff(before) == 0


def test_a_prompt_longer_than_any_training_window_is_carried_by_the_state(micro, tokenizer):
    long_prompt = tokenizer.encode(read_phrase(PROMPT, tokenizer.settings)) * 2
    assert len(long_prompt) > 8 * 512
    session = Session(micro.model, micro.tokenizer, prefill_chunk=1000)
    session.feed(long_prompt)
    assert session.context_length == len(long_prompt)
    assert tokenizer.count_bars(session.suggest(1, 2, SamplingConfig(max_tokens_per_bar=32), seed=0).candidates[0].tokens) == 2


def test_pitch_range_constraint_is_respected(micro, tokenizer):
    session = Session(micro.model, micro.tokenizer)
    session.feed(tokenizer.encode(read_phrase(PROMPT, tokenizer.settings))[:200])
    cands = session.suggest(2, 1, SamplingConfig(max_tokens_per_bar=40, pitch_range=(60, 72)), seed=5).candidates
    assert all(60 <= n.pitch <= 72 for c in cands for n in c.notes)


@pytest.mark.parametrize("content,problem", [(None, "file not found"), (b"\x00garbage\xff" * 10, "not a readable MIDI"),
                                             ("empty", "no notes")])
def test_suggest_on_a_bad_file_exits_nonzero_naming_the_file(capsys, micro_checkpoint, tmp_path, content, problem):
    bad = tmp_path / "phrase.mid"
    if content == "empty":
        mid = mido.MidiFile()
        mid.tracks.append(mido.MidiTrack([mido.MetaMessage("end_of_track", time=0)]))
        mid.save(bad)
    elif content is not None:
        bad.write_bytes(content)
    code, out, err = suggest(capsys, bad, "--checkpoint", micro_checkpoint, "--out", tmp_path / "o")
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1 and str(bad) in err and problem in err


def test_missing_corrupt_or_mismatched_checkpoints_are_named(tmp_path, tokenizer):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "corrupt.pt")
    torch.save({"weights": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a muse-bridge-checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    save_checkpoint(tmp_path / "wrong_vocab.pt", RWKV7(config_for_size("micro", 100)), tokenizer.settings)
    with pytest.raises(CheckpointError, match="100"):
        load_checkpoint(tmp_path / "wrong_vocab.pt")


def test_bad_checkpoint_on_the_command_line_is_one_clear_line(capsys, tmp_path):
    code, _, err = suggest(capsys, PROMPT, "--checkpoint", tmp_path / "missing.pt", "--out", tmp_path)
    assert code != 0 and "missing.pt: no such file" in err


def test_style_preset_changes_the_suggestions_and_is_refused_by_another_model(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = RWKV7(config_for_size("micro", tokenizer.vocab_size))
    with torch.no_grad():  # a fresh model's zero output projections would hide the state; make them count
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    save_checkpoint(tmp_path / "model.pt", model, tokenizer.settings)
    ckpt = load_checkpoint(tmp_path / "model.pt")
    c = model.cfg
    g = torch.Generator().manual_seed(0)
    save_style(tmp_path / "style.pt", [torch.randn(c.n_head, c.head_size, c.head_size, generator=g) for _ in range(c.n_layer)], ckpt)
    styled = Session(ckpt.model, ckpt.tokenizer, initial_state=load_style(tmp_path / "style.pt", ckpt))
    plain = Session(ckpt.model, ckpt.tokenizer)
    cfg = SamplingConfig(max_tokens_per_bar=32)
    assert styled.suggest(1, 1, cfg, seed=0).candidates[0].tokens != plain.suggest(1, 1, cfg, seed=0).candidates[0].tokens
    other = RWKV7(config_for_size("micro", tokenizer.vocab_size, head_size=32))
    save_checkpoint(tmp_path / "other.pt", other, tokenizer.settings)
    with pytest.raises(CheckpointError, match="another model"):
        load_style(tmp_path / "style.pt", load_checkpoint(tmp_path / "other.pt"))


def test_the_bundled_model_loads_and_suggests_from_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ui", "suggest", str(PROMPT), "--bars", "2",
                           "--candidates", "2", "--seed", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["files"]) == 2 and result["tokens_generated"] > 0
    assert result["checkpoint"].endswith("default.pt")


def test_without_a_file_suggest_continues_the_bundled_phrase_and_version_says_which_app(capsys, micro_checkpoint,
                                                                                       tmp_path):
    phrase = bundled_phrase()
    assert phrase.is_file() and (phrase.parent / "POP909_LICENSE").read_text().startswith("MIT License")
    assert read_phrase(phrase, load_checkpoint(micro_checkpoint).tokenizer.settings).n_bars == 16
    assert main(["suggest", "--checkpoint", str(micro_checkpoint), "--bars", "1", "--candidates", "1",
                 "--out", str(tmp_path)]) == 0
    assert len(json.loads(capsys.readouterr().out)["files"]) == 1
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("muse-bridge 0.")


def test_a_file_in_2_2_is_read_as_4_4_and_continued_in_2_2(capsys, micro_checkpoint, tmp_path):
    mid = mido.MidiFile(ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("time_signature", numerator=2, denominator=2),
                                      mido.Message("note_on", note=60, velocity=80), mido.Message("note_off", note=60, time=960)]))
    mid.save(str(tmp_path / "cut_time.mid"))
    code, out, _ = suggest(capsys, tmp_path / "cut_time.mid", "--bars", 2, "--candidates", 1, "--seed", 1,
                           "--checkpoint", micro_checkpoint, "--out", tmp_path / "o")
    assert code == 0
    written = mido.MidiFile(json.loads(out)["files"][0])
    [meter] = [m for m in written.tracks[0] if m.type == "time_signature"]
    assert (meter.numerator, meter.denominator) == (2, 2)
    assert sum(m.time for m in written.tracks[0]) == 3 * 1920   # the prompt's bar, then 2 bars of 2/2
