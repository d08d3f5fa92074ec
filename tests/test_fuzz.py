"""`muse-bridge suggest` on a fuzzed corpus of bad and odd MIDI files: a clean one-line error (exit 2) or
valid candidates (exactly N bars, a real tempo and meter, every note ended after it starts), never a traceback."""
import json
from collections import Counter

import mido
import pytest

from fuzz_midi import fuzz_corpus
from ui.cli import main

BARS = 2


def check_candidate(path, first_bar_tick: int) -> None:
    midi = mido.MidiFile(str(path))
    [track] = midi.tracks
    meta = {m.type: m for m in track if m.is_meta}
    bpm = mido.tempo2bpm(meta["set_tempo"].tempo)
    assert 20 <= bpm <= 400, f"{path}: tempo {bpm}"
    num, den = meta["time_signature"].numerator, meta["time_signature"].denominator
    bar = midi.ticks_per_beat * 4 * num // den
    assert bar > 0
    tick, sounding = 0, {}
    for m in track:
        tick += m.time
        if m.type == "note_on" and m.velocity > 0:
            assert m.note not in sounding, f"{path}: pitch {m.note} struck again while sounding"
            assert tick >= first_bar_tick, f"{path}: a note before the continuation's first bar line"
            sounding[m.note] = tick
        elif m.type in ("note_on", "note_off"):
            assert tick > sounding.pop(m.note), f"{path}: a note ends where it starts"
    assert not sounding, f"{path}: notes never end"
    assert tick == first_bar_tick + BARS * bar, f"{path}: ends at {tick}, not {BARS} bars of {bar} after {first_bar_tick}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return fuzz_corpus(tmp_path_factory.mktemp("fuzz"), seed=7, per_kind=3)


def test_suggest_on_every_fuzzed_file_gives_a_clean_error_or_valid_candidates(corpus, micro_checkpoint, tmp_path, capsys):
    outcomes = Counter()
    for i, (kind, path) in enumerate(corpus):
        out = tmp_path / f"out{i}"
        code = main(["suggest", str(path), "--bars", str(BARS), "--candidates", "2", "--seed", "1",
                     "--checkpoint", str(micro_checkpoint), "--out", str(out)])
        stdout, stderr = capsys.readouterr()
        assert "Traceback" not in stderr, f"{kind}: {path}\n{stderr}"
        if code == 0:
            result = json.loads(stdout)
            assert len(result["files"]) == 2
            for candidate in result["files"]:
                check_candidate(candidate, result["first_bar_tick"])
            outcomes[kind, "candidates"] += 1
        else:
            assert code == 2, f"{kind}: {path} exited {code}"
            lines = stderr.strip().splitlines()
            assert len(lines) == 1 and str(path) in lines[0], f"{kind}: {path}: {stderr!r}"
            outcomes[kind, "error"] += 1
    kinds = {kind for kind, _ in corpus}
    assert all(outcomes[k, "candidates"] for k in ("meter", "coarse clock", "dense", "tempo"))
    assert all(outcomes[k, "error"] for k in ("random bytes", "text renamed .mid", "no notes"))
    assert sum(outcomes.values()) == len(corpus) and len(kinds) >= 15
