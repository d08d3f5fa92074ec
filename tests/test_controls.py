"""Bar controls: tokens and data (miditok's attribute controls), sampling that places them, the options that ask."""
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import mido
import pytest
import torch

from conftest import POP909_FILES
from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.chords import chord_pitch_classes, parse_chords
from engine.generate import sample_bars
from engine.grammar import RemiGrammar
from engine.midi_file import read_phrase
from engine.model import RWKV7, config_for_size
from engine.sampler import SamplingConfig
from engine.session import Session
from engine.tokenizer import RemiTokenizer, TokenizerSettings
from trainer.data import TokenWindows
from trainer.prepare import PrepareConfig, prepare
from trainer.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def controlled() -> RemiTokenizer:
    return RemiTokenizer(TokenizerSettings().with_controls())


@pytest.fixture(scope="module")
def controls_data(tmp_path_factory) -> Path:
    midi = tmp_path_factory.mktemp("midi")
    for f in POP909_FILES:
        (midi / f.name).write_bytes(f.read_bytes())
    out = tmp_path_factory.mktemp("data")
    prepare(PrepareConfig(midi, out, validation_fraction=0.34, workers=1), TokenizerSettings().with_controls())
    return out


@pytest.fixture(scope="module")
def controlled_session(controlled) -> Session:
    torch.manual_seed(0)
    return Session(RWKV7(config_for_size("micro", controlled.vocab_size)), controlled, graph_steps=False)


def bars_of(tokens: list[int], tokenizer: RemiTokenizer) -> list[list[int]]:
    """The tokens of each bar (its Bar token first); a bar cut off at the end is left out."""
    at = [i for i, t in enumerate(tokens) if t == tokenizer.bar_id]
    return [tokens[a:b] for a, b in zip(at, at[1:])]


def test_the_controls_extend_the_vocabulary_after_every_existing_id(controlled, tokenizer):
    assert controlled.vocab()[:tokenizer.vocab_size] == tokenizer.vocab()
    assert all(controlled.vocabulary.is_control(i) for i in range(tokenizer.vocab_size, controlled.vocab_size))
    assert max(controlled.vocabulary.density.values()) == 64   # well above 16 notes a bar


def test_settings_written_before_the_controls_read_as_off():
    old = TokenizerSettings().to_dict()
    for name in [k for k in old if k.startswith("ac_")]:
        del old[name]
    assert not TokenizerSettings.from_dict(old).controls
    on = TokenizerSettings().with_controls()
    assert TokenizerSettings.from_dict(on.to_dict()) == on


def test_every_bar_carries_its_own_density_polyphony_and_pitch_classes(controlled):
    phrase = read_phrase(POP909_FILES[0], controlled.settings)
    tokens = controlled.encode(phrase, controls=True)
    v = controlled.vocabulary
    assert [t for t in tokens if not v.is_control(t)] == controlled.encode(phrase)
    checked = 0
    for bar in bars_of(tokens, controlled)[1:]:       # miditok leaves the first bar without controls
        pitches = [v.pitch[t] for t in bar if t in v.pitch]
        if not pitches:
            assert not any(v.is_control(t) for t in bar)
            continue
        assert [v.kind[t] for t in bar[:2]] == ["Bar", "TimeSig"] and v.is_control(bar[2])
        assert [v.density[t] for t in bar if t in v.density] == [min(len(pitches), 64)]
        assert {v.pitch_class[t] for t in bar if t in v.pitch_class} == {p % 12 for p in pitches}
        onsets = Counter()
        position = None
        for t in bar:
            position = v.position.get(t, position)
            if t in v.pitch:
                onsets[position] += 1
        assert [v.polyphony_max[t] for t in bar if t in v.polyphony_max] == [min(max(onsets.values()), 6)]
        checked += 1
    assert checked > 30


def test_windows_keep_a_random_subset_of_the_controls_and_resume_exactly(controls_data):
    windows = TokenWindows(controls_data, "train")
    shares = []
    for step in range(12):
        x, _ = windows.batch(seed=0, step=step, batch_size=2, seq_len=256, max_transpose=6)
        again, _ = windows.batch(seed=0, step=step, batch_size=2, seq_len=256, max_transpose=6)
        assert torch.equal(x, again)   # a pure function of (seed, step): --resume sees the same windows
        for row in x.numpy():
            bars = bars_of(list(row), windows.tokenizer)[1:]
            with_density = sum(any(windows.control_group[t] == 1 for t in bar) for bar in bars)
            shares.append(with_density / max(len(bars), 1))
    assert min(shares) == 0.0 and max(shares) > 0.5   # some windows do without, others follow


def test_transposition_rotates_the_pitch_classes_with_the_pitches(controls_data):
    windows = TokenWindows(controls_data, "train")
    v = windows.tokenizer.vocabulary
    seen = 0
    for step in range(10):
        x, _ = windows.batch(seed=1, step=step, batch_size=2, seq_len=256, max_transpose=6)
        for row in x.numpy():
            for bar in bars_of(list(row), windows.tokenizer):
                classes = [v.pitch_class[t] for t in bar if t in v.pitch_class]
                if classes:
                    assert classes == sorted(classes)
                    assert set(classes) == {v.pitch[t] % 12 for t in bar if t in v.pitch}
                    seen += 1
    assert seen > 10


def test_controls_are_placed_after_each_bars_meter_in_miditoks_order(controlled_session, controlled):
    sampling = SamplingConfig(density=12, polyphony=1, chords=("C", "Am7/G"))
    suggestion = controlled_session.suggest(3, 3, sampling, seed=4)
    v = controlled.vocabulary
    for c in suggestion.candidates:
        assert c.bars == 3
        bars = bars_of(c.tokens + [controlled.bar_id], controlled)
        assert len(bars) == 3
        for b, bar in enumerate(bars):
            chord = sorted(chord_pitch_classes(sampling.chords[b % 2]))
            expected = (["ACBarOnsetPolyphonyMin_1", "ACBarOnsetPolyphonyMax_1"]
                        + [f"ACBarPitchClass_{pc}" for pc in chord] + ["ACBarNoteDensity_12"])
            assert [controlled.token_str(t) for t in bar[2:2 + len(expected)]] == expected
            assert not any(v.is_control(t) for t in bar[2 + len(expected):])
        assert max(Counter(n.start for n in c.notes).values(), default=0) <= 1   # --polyphony 1: a single line


def test_a_density_keeps_every_bar_inside_its_band(controlled_session, controlled):
    v = controlled.vocabulary
    for density in (4, 16):
        sampling = SamplingConfig(density=density)
        fewest, most = sampling.density_bounds()
        assert fewest < density < most and (fewest, most) == ((3, 5) if density == 4 else (14, 18))
        for c in controlled_session.suggest(4, 2, sampling, seed=density).candidates:
            bars = bars_of(c.tokens + [controlled.bar_id], controlled)
            assert [fewest <= sum(t in v.pitch for t in bar) <= most for bar in bars] == [True, True]
    assert SamplingConfig(density=64).density_bounds()[1] == float("inf")   # the top token means that many or more
    with pytest.raises(ValueError, match="density band"):
        SamplingConfig(density=4, density_band=1.5)


@pytest.mark.parametrize("meter", [(4, 4), (7, 8), (5, 8), (11, 8), (7, 4)])
def test_in_odd_meters_each_bar_keeps_its_density_polyphony_and_chord(controlled, meter):
    torch.manual_seed(0)
    session = Session(RWKV7(config_for_size("micro", controlled.vocab_size)), controlled, graph_steps=False)
    session.feed([controlled.bar_id, controlled.vocab().index(f"TimeSig_{meter[0]}/{meter[1]}")])
    sampling = SamplingConfig(density=6, polyphony=1, chords=("Dm", "G7"))
    fewest, most = sampling.density_bounds()
    v = controlled.vocabulary
    for c in session.suggest(3, 2, sampling, seed=1).candidates:
        assert c.time_signature == meter and c.bar_map.bar_ticks() == 480 * 4 * meter[0] // meter[1]
        assert all(c.bar_map.bar_of(n.start) < 2 and n.end <= c.bar_map.span(2) for n in c.notes)
        for b, bar in enumerate(bars_of(c.tokens + [controlled.bar_id], controlled)):
            assert v.meter[bar[1]] == meter
            assert fewest <= sum(t in v.pitch for t in bar) <= most
            tones = chord_pitch_classes(sampling.chords[b])
            assert [controlled.token_str(t) for t in bar if v.kind[t] == "ACBarPitchClass"] == \
                [f"ACBarPitchClass_{pc}" for pc in sorted(tones)]
        assert max(Counter(n.start for n in c.notes).values(), default=0) <= 1


def test_inside_the_band_a_bar_aims_at_the_density_asked_for(controlled):
    """A made-up model keen to end its bars: for a density of 8 the band alone leaves most bars at its lower edge,
    7 notes, as soon as the bar may end; the pull makes 8 the usual length, and neither ever leaves the band."""
    grammar = RemiGrammar(controlled)
    others = int((~grammar.is_velocity & ~grammar.is_duration).sum())   # the tokens a bar's end competes with

    def step(tokens: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(tokens), grammar.vocab_size)
        logits[:, grammar.bar_id] = math.log(others)   # as likely as all the rest together
        return logits

    def lengths(pull: float) -> Counter:
        sampling = SamplingConfig(density=8, density_pull=pull, top_p=1.0)
        streams = sample_bars(step, grammar, [(4, 4)] * 200, 2, sampling, torch.Generator().manual_seed(3))
        v = controlled.vocabulary
        return Counter(sum(t in v.pitch for t in bar) for s in streams for bar in bars_of(s + [grammar.bar_id], controlled))

    alone, pulled = lengths(0.0), lengths(2.0)
    assert set(alone) == set(pulled) == {7, 8, 9}
    # over seeds 3-7: 13-18% of bars at 8 alone, 57-64% pulled (the vocabulary's size moves it by a point)
    assert alone[8] / 400 < 0.25 and pulled[8] / 400 > 0.5 and pulled.most_common(1)[0][0] == 8
    assert SamplingConfig(density=8).end_pull(7) == -2.0 and SamplingConfig(density=8).end_pull(8) == 2.0
    assert SamplingConfig(density=8, density_band=None).end_pull(8) == 0.0   # the model alone: no pull
    assert SamplingConfig(density=64).end_pull(70) == 0.0   # the top value means that many or more
    with pytest.raises(ValueError, match="density pull"):
        SamplingConfig(density=8, density_pull=-1.0)


def test_the_chord_weight_leans_toward_the_chord_tones_without_forbidding_the_rest(controlled_session):
    def on_chord_tones(weight: float) -> float:
        # at most 3 notes an onset: a pitch is struck once an onset, so an untrained model that stacks pitches
        # would run out of chord tones at one onset and have to take others
        sampling = SamplingConfig(chords=("C",), chord_weight=weight, polyphony=3)
        notes = [n for c in controlled_session.suggest(4, 2, sampling, seed=7).candidates for n in c.notes]
        return sum(n.pitch % 12 in (0, 4, 7) for n in notes) / len(notes)

    assert on_chord_tones(50.0) == 1.0
    assert on_chord_tones(0.0) < 0.9    # the chord's pitch-class tokens alone do not steer an untrained model
    with pytest.raises(ValueError, match="chord weight"):
        SamplingConfig(chord_weight=-1)


def test_without_controls_no_control_token_is_sampled(controlled_session, controlled):
    suggestion = controlled_session.suggest(4, 2, SamplingConfig(), seed=5)
    assert not any(controlled.vocabulary.is_control(t) for c in suggestion.candidates for t in c.tokens)


def test_a_model_without_controls_suggests_as_before_and_refuses_a_control(micro_checkpoint):
    ckpt = load_checkpoint(micro_checkpoint)
    session = Session(ckpt.model, ckpt.tokenizer, graph_steps=False)
    assert all(c.bars == 2 for c in session.suggest(2, 2, SamplingConfig(), seed=1).candidates)
    with pytest.raises(ValueError, match="has no bar controls"):
        session.suggest(2, 2, SamplingConfig(density=8), seed=1)


def test_a_chord_outside_the_key_lock_wins_in_its_bar(controlled_session):
    sampling = SamplingConfig(key_lock="C major", chords=("C", "E7"))
    assert "E7" in sampling.chords_outside_key() and "C," not in sampling.chords_outside_key()
    suggestion = controlled_session.suggest(4, 2, sampling, seed=2)
    c_major = {0, 2, 4, 5, 7, 9, 11}
    bar = suggestion.candidates[0].bar_map.bar_ticks()
    for c in suggestion.candidates:
        assert all(n.pitch % 12 in c_major for n in c.notes if n.start < bar)
        assert all(n.pitch % 12 in c_major | {8} for n in c.notes if n.start >= bar)   # E7 brings G#


def test_chord_symbols():
    assert chord_pitch_classes("Am7") == {9, 0, 4, 7}
    assert chord_pitch_classes("Bdim") == {11, 2, 5}
    assert chord_pitch_classes("Dsus4") == {2, 7, 9}
    assert chord_pitch_classes("Fmaj7") == {5, 9, 0, 4}
    assert chord_pitch_classes("G7") == {7, 11, 2, 5}
    assert chord_pitch_classes("F/G") == {5, 9, 0, 7}
    assert chord_pitch_classes("Ebm") == {3, 6, 10}
    assert parse_chords("C Am, F | G") == ("C", "Am", "F", "G")
    with pytest.raises(ValueError, match="unknown chord 'H7'"):
        chord_pitch_classes("H7")


def test_warm_start_keeps_every_old_row_and_adds_the_controls(micro_checkpoint, controls_data, tmp_path):
    base = load_checkpoint(micro_checkpoint).model
    grown = load_checkpoint(micro_checkpoint).model
    grown.grow_vocabulary(base.cfg.vocab_size + 89)
    x = torch.tensor([[3, 17, 40, 200, 5]])
    old, new = base(x)[0], grown(x)[0]
    assert torch.allclose(old, new[..., :base.cfg.vocab_size]) and (new[..., base.cfg.vocab_size:] == 0).all()
    result = train(TrainConfig(str(controls_data), str(tmp_path / "run"), steps=2, batch_size=2, seq_len=64,
                               val_every=2, val_windows=2, save_every=2, warmup_steps=1, init_from=str(micro_checkpoint)))
    assert result["step"] == 2
    tuned = load_checkpoint(tmp_path / "run" / "last.pt")
    assert tuned.tokenizer.settings.controls and tuned.model.cfg.vocab_size == tuned.tokenizer.vocab_size


def run_suggest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ui", "suggest", str(POP909_FILES[0]), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_command_line_refuses_a_control_the_model_lacks_and_a_bad_value_in_one_line(micro_checkpoint, tmp_path):
    without = ["--checkpoint", str(micro_checkpoint)]   # a model without bar controls
    for args, named in ((["--density", "8", *without], "no bar controls"), (["--chords", "C H7"], "--chords"),
                        (["--polyphony", "9"], "polyphony must be 1-6"), (["--density", "lots"], "--density")):
        run = run_suggest(*args, "--out", str(tmp_path), "--bars", "1")
        assert run.returncode == 2 and named in run.stderr.strip().splitlines()[-1], (args, run.stderr)
        assert "Traceback" not in run.stderr


def test_the_command_line_steers_a_model_with_controls(controlled, tmp_path):
    torch.manual_seed(0)
    checkpoint = tmp_path / "controlled.pt"
    save_checkpoint(checkpoint, RWKV7(config_for_size("micro", controlled.vocab_size)), controlled.settings)
    run = run_suggest("--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--bars", "2", "--seed", "3",
                      "--candidates", "2", "--polyphony", "1", "--density", "6", "--chords", "Dm7 G7",
                      "--key", "C major")
    assert run.returncode == 0, run.stderr
    files = json.loads(run.stdout)["files"]
    assert len(files) == 2
    for f in files:
        onsets, tick = Counter(), 0
        for m in mido.merge_tracks(mido.MidiFile(f).tracks):
            tick += m.time
            onsets[tick] += m.type == "note_on" and m.velocity > 0
        assert 0 < sum(onsets.values()) and max(onsets.values()) == 1   # --polyphony 1: a single line


def test_eval_reports_nats_per_note_with_the_controls_masked(controls_data, controlled, tmp_path):
    from trainer.evaluate import EvalConfig, evaluate
    torch.manual_seed(0)
    checkpoint = tmp_path / "controlled.pt"
    save_checkpoint(checkpoint, RWKV7(config_for_size("micro", controlled.vocab_size)), controlled.settings,
                    {"train_config": {"data_dir": str(controls_data)}})
    midi = tmp_path / "midi"
    midi.mkdir()
    (midi / "001.mid").write_bytes(POP909_FILES[0].read_bytes())
    out = evaluate(EvalConfig(str(checkpoint), midi, windows=2))
    model, ngram = out["metrics"]["model"], out["metrics"]["ngram"]
    assert out["controls_masked"] == sum(map(controlled.vocabulary.is_control, range(controlled.vocab_size))) == 89
    assert model["nll_per_note"] > model["nll"] > 0 and ngram["nll_per_note"] > 0
    assert not any(k.startswith("AC") for k in model["nll_by_kind"])


def test_the_bundled_model_has_bar_controls_and_follows_the_chords_and_density_asked_for():
    ckpt = load_checkpoint()
    assert ckpt.tokenizer.settings.controls
    session, _ = Session.for_phrase(ckpt.model, ckpt.tokenizer, read_phrase(POP909_FILES[0], ckpt.tokenizer.settings),
                                    bars=16, graph_steps=False)
    chords = ("C", "Am", "F", "G")   # far from the song's key: on its own the model plays few of their tones

    def time_on_chord_tones(sampling: SamplingConfig) -> float:
        on = total = 0
        for c in session.suggest(4, 4, sampling, seed=2).candidates:
            assert c.bars == 4
            for n in c.notes:
                tones = chord_pitch_classes(chords[n.start // c.bar_map.bar_ticks()])
                on, total = on + (n.end - n.start) * (n.pitch % 12 in tones), total + n.end - n.start
        return on / total

    steered, own = time_on_chord_tones(SamplingConfig(chords=chords)), time_on_chord_tones(SamplingConfig())
    assert steered > 0.35 and steered > 4 * own, (steered, own)

    def notes_per_bar(density: int) -> float:
        candidates = session.suggest(4, 2, SamplingConfig(density=density), seed=3).candidates
        return sum(len(c.notes) for c in candidates) / (2 * len(candidates))

    sparse, busy = notes_per_bar(4), notes_per_bar(16)
    assert 4 * 0.7 <= sparse <= 4 * 1.3 and 16 * 0.7 <= busy <= 16 * 1.3, (sparse, busy)
