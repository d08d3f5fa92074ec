"""Files as they come from outside: a pickup, meter changes, a late first bar, drums. The candidates start on
the bar line after the prompt, hold exactly N bars in the meter of the prompt's last bar, and every note ends."""
import json

import mido
import pytest

from engine.midi_file import MidiFileError, read_phrase
from engine.tokenizer import RemiTokenizer, TokenizerSettings
from ui.cli import main
from real_world_midi import FIXTURES, TPQ, concerto_with_cadenza
from test_fuzz import BARS, check_candidate


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_a_real_world_file_is_read_bar_by_bar_in_its_own_meters(name, tmp_path):
    expected = FIXTURES[name](tmp_path / "song.mid")
    phrase = read_phrase(tmp_path / "song.mid", RemiTokenizer().settings)
    assert phrase.n_bars == expected.bars
    assert phrase.on_file_timeline(phrase.bars.bar_line(phrase.n_bars)) == expected.end_tick
    assert phrase.time_signature == expected.last_meter
    tokens = RemiTokenizer().encode(phrase)
    assert RemiTokenizer().count_bars(tokens) == expected.bars


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_candidates_start_after_the_prompt_in_its_last_meter(name, tmp_path, micro_checkpoint, capsys):
    expected = FIXTURES[name](tmp_path / "song.mid")
    assert main(["suggest", str(tmp_path / "song.mid"), "--bars", str(BARS), "--candidates", "2", "--seed", "3",
                 "--checkpoint", str(micro_checkpoint), "--out", str(tmp_path / "out")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["first_bar_tick"] == expected.end_tick and result["prompt_bars"] == expected.bars
    for path in result["files"]:
        check_candidate(path, result["first_bar_tick"])
        meters = [m for m in mido.MidiFile(path).tracks[0] if m.type == "time_signature"]
        assert (meters[-1].numerator, meters[-1].denominator) == expected.last_meter
        assert result["first_bar_tick"] in bar_lines(path), "the candidate's meters put no bar line where it starts"


def bar_lines(path) -> set[int]:
    """The bar lines a DAW reads from a file's time signatures (each starts a bar), up to its end."""
    midi = mido.MidiFile(path)
    tick, changes = 0, []
    for message in midi.tracks[0]:
        tick += message.time
        if message.type == "time_signature":
            changes.append((tick, message.numerator * 4 * midi.ticks_per_beat // message.denominator))
    lines = set()
    for (at, bar), (until, _) in zip(changes, changes[1:] + [(tick + 1, 0)]):
        lines |= set(range(at, until, bar))
    return lines


@pytest.mark.parametrize("first, then", [((4, 4), (3, 4)), ((3, 4), (4, 4)), ((6, 8), (2, 4))])
def test_of_two_time_signatures_at_one_tick_the_later_in_the_file_counts_as_a_daw_reads_it(first, then, tmp_path):
    """A tool's default meter, then the real one, both at tick 0: the bars are those of the second."""
    mid = mido.MidiFile(ticks_per_beat=TPQ)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track += [mido.MetaMessage("time_signature", numerator=first[0], denominator=first[1]),
              mido.MetaMessage("time_signature", numerator=then[0], denominator=then[1])]
    for k in range(12):
        track += [mido.Message("note_on", note=60 + k, velocity=80), mido.Message("note_off", note=60 + k, time=TPQ)]
    mid.save(str(tmp_path / "two.mid"))
    phrase = read_phrase(tmp_path / "two.mid", RemiTokenizer().settings)
    assert phrase.time_signature == then
    assert phrase.n_bars == 12 * then[1] // (4 * then[0])   # twelve quarter notes


def _odd_meter_file(path, bars_of_7_8: int) -> None:
    """Two bars of 4/4, a whole note in each, then `bars_of_7_8` bars of 7/8 with a note in each."""
    mid = mido.MidiFile(ticks_per_beat=TPQ)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track += [mido.MetaMessage("time_signature", numerator=4, denominator=4),
              mido.Message("note_on", note=60, velocity=80), mido.Message("note_off", note=60, time=4 * TPQ),
              mido.Message("note_on", note=64, velocity=80), mido.Message("note_off", note=64, time=4 * TPQ),
              mido.MetaMessage("time_signature", numerator=7, denominator=8, time=0)]
    for _ in range(bars_of_7_8):
        track += [mido.Message("note_on", note=62, velocity=80), mido.Message("note_off", note=62, time=TPQ),
                  mido.Message("note_off", note=0, time=7 * TPQ // 2 - TPQ)]
    mid.save(str(path))


WITHOUT_ODD_METERS = TokenizerSettings(time_signatures=((8, (3, 12, 6)), (4, (5, 6, 3, 2, 1, 4))))   # the bundled model's


def test_a_passage_in_a_meter_outside_the_vocabulary_is_refused_naming_its_bar(tmp_path):
    _odd_meter_file(tmp_path / "odd.mid", bars_of_7_8=2)
    with pytest.raises(MidiFileError, match=r"bar 3 is in 7/8, which this model does not read \(it reads .*4/4.*\); "
                                            r"a lone bar in another meter is read in the meter around it, a passage "
                                            r"only by a model whose vocabulary has 7/8"):
        read_phrase(tmp_path / "odd.mid", WITHOUT_ODD_METERS)
    phrase = read_phrase(tmp_path / "odd.mid", RemiTokenizer().settings)   # a vocabulary with odd meters reads it
    assert phrase.bars.changes == ((0, (4, 4)), (2, (7, 8))) and phrase.n_bars == 4 and not phrase.pads


def test_a_lone_short_bar_is_read_padded_at_its_start_as_a_pickup_is(tmp_path):
    _odd_meter_file(tmp_path / "odd.mid", bars_of_7_8=1)
    phrase = read_phrase(tmp_path / "odd.mid", WITHOUT_ODD_METERS)
    pad = 4 * TPQ - 7 * TPQ // 2
    assert phrase.meters == [(4, 4)] and phrase.pads == ((8 * TPQ, pad),)
    assert [n.start for n in phrase.notes] == [0, 4 * TPQ, 8 * TPQ + pad]    # the short bar's note at its own place
    assert phrase.notes[1].end == 8 * TPQ                                    # released on the bar line, not past the pad
    assert phrase.on_file_timeline(phrase.bars.bar_line(3)) == 8 * TPQ + 7 * TPQ // 2
    assert phrase.on_file_timeline(8 * TPQ + 10) == 8 * TPQ                  # inside the pad: where the bar begins


def test_a_cadenza_bar_is_read_as_bars_of_the_meter_around_it(tmp_path):
    expected = concerto_with_cadenza(tmp_path / "song.mid")
    phrase = read_phrase(tmp_path / "song.mid", RemiTokenizer().settings)
    assert phrase.bars.changes == ((0, (4, 4)), (10, (1, 4)), (11, (4, 4)))
    cadenza = [n for n in phrase.notes if n.pitch >= 72]
    assert cadenza[0].start == 8 * TPQ and cadenza[-1].start == (8 + 32) * TPQ + TPQ // 2   # not moved
    assert phrase.file_meters() == [(0, (4, 4)), (8 * TPQ, (33, 4)), (41 * TPQ, (4, 4)), (49 * TPQ, (3, 16)),
                                    (49 * TPQ + 3 * TPQ // 4, (4, 4))]
    assert phrase.on_file_timeline(phrase.bars.bar_line(phrase.n_bars)) == expected.end_tick


def test_prepare_keeps_files_whose_meter_changes_and_names_the_reason_of_each_it_skips(tmp_path):
    from trainer.prepare import PrepareConfig, prepare

    midi = tmp_path / "midi"
    midi.mkdir()
    for i, write in enumerate(FIXTURES.values()):
        write(midi / f"{i}.mid")
    (midi / "broken.mid").write_bytes(b"MThd not really")
    summary = prepare(PrepareConfig(midi, tmp_path / "data", workers=1))
    assert summary["files"] == len(FIXTURES)
    index = json.loads((tmp_path / "data" / "index.json").read_text())
    names = {f"{i}.mid": name for i, name in enumerate(FIXTURES)}
    meters = {names[e["path"]]: e["meters"] for e in index["files"]}
    assert meters["classical score with a pickup and meter changes"] == [[3, 4], [4, 4], [2, 4], [4, 4]]
    assert meters["concerto with a cadenza bar and a short bar"] == [[4, 4], [1, 4], [4, 4]]
    assert all(e["read_with_meter"] is None for e in index["files"])
    skipped = json.loads((tmp_path / "data" / "skipped.json").read_text())
    assert [s["path"] for s in skipped] == ["broken.mid"] and "not a readable MIDI file" in skipped[0]["reason"]


def _with_a_huge_delta(path, ticks_per_beat: int, delta: int, time_signature: bool = False):
    """A bar of notes, then a note (or a time signature) `delta` ticks later: a delta time a tool wrote by mistake."""
    mid = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for i in range(4):
        track.append(mido.Message("note_on", note=60 + i, velocity=80, time=0 if i == 0 else ticks_per_beat // 2))
        track.append(mido.Message("note_off", note=60 + i, velocity=0, time=ticks_per_beat // 2))
    limit = 0x0FFFFFFF   # the longest delta time a MIDI file can write
    for _ in range(delta // limit):
        track.append(mido.MetaMessage("marker", text="", time=limit))
    if time_signature:
        track.append(mido.MetaMessage("time_signature", numerator=3, denominator=4, time=delta % limit))
        track.append(mido.Message("note_on", note=70, velocity=80, time=0))
    else:
        track.append(mido.Message("note_on", note=70, velocity=80, time=delta % limit))
    track.append(mido.Message("note_off", note=70, velocity=0, time=ticks_per_beat))
    mid.save(path)
    return path


@pytest.mark.parametrize("ticks_per_beat, delta, time_signature", [
    (1, 0x0FFFFFFF, False),     # fits the file's 32 bits, but not once a coarse clock is read at 480 per quarter
    (24, 10**8, False),         # a million bars of silence
    (480, 9 * 0x0FFFFFFF, True),  # a time signature past 32-bit ticks
])
def test_a_file_with_a_huge_delta_time_gets_one_clear_line(ticks_per_beat, delta, time_signature, tmp_path, capsys,
                                                          micro_checkpoint):
    path = _with_a_huge_delta(tmp_path / "huge.mid", ticks_per_beat, delta, time_signature)
    code = main(["suggest", str(path), "--bars", "1", "--candidates", "1", "--checkpoint", str(micro_checkpoint),
                 "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert str(path) in lines[0] and "delta times are too long" in lines[0], lines
