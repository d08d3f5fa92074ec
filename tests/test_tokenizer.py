"""REMI tokenizer: bars, round trips, one piano stream, sustain, settings, file errors."""
from pathlib import Path

import mido
import pytest
import torch

from engine.midi_file import MidiFileError, read_phrase, write_notes
from engine.music import Note, Phrase
from engine.tokenizer import RemiTokenizer, TokenizerSettings

POP909 = sorted((Path(__file__).parent / "data" / "pop909").glob("*.mid"))
TPB = 480
BAR = 4 * TPB  # 4/4


@pytest.fixture(scope="module")
def tokenizer():
    return RemiTokenizer()


def write_tracks(path, tracks, ticks_per_beat=TPB, time_signature=(4, 4), bpm=100.0):
    """A type-1 MIDI file; each track is a list of (absolute tick, mido message)."""
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=time_signature[0], denominator=time_signature[1], time=0))
    midi.tracks.append(meta)
    for events in tracks:
        track = mido.MidiTrack()
        now = 0
        for tick, message in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(str(path))
    return path


def note_events(pitch, start, end, channel=0, velocity=80):
    return [
        (start, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)),
        (end, mido.Message("note_off", channel=channel, note=pitch, velocity=0)),
    ]


def pedal_events(down, up, channel=0):
    return [
        (down, mido.Message("control_change", channel=channel, control=64, value=127)),
        (up, mido.Message("control_change", channel=channel, control=64, value=0)),
    ]


def durations_of(tokenizer, tokens, pitch):
    """Duration token strings following each Pitch_<pitch> token."""
    strings = [tokenizer.token_str(t) for t in tokens]
    return [strings[i + 2] for i, s in enumerate(strings) if s == f"Pitch_{pitch}"]


@pytest.mark.parametrize("path", POP909, ids=lambda p: p.name)
def test_bar_tokens_match_the_bars_of_a_pop909_file(tokenizer, path):
    assert tokenizer.count_bars(tokenizer.encode(read_phrase(path, tokenizer.settings))) == read_phrase(path, tokenizer.settings).n_bars


def test_staccato_file_with_rests_up_to_bar_lines_keeps_every_bar(tokenizer, tmp_path):
    # bar 0 and 1 end in rests that reach the bar line, bar 2 is empty, bar 3 has one note
    onsets = [0, TPB, BAR, BAR + 2 * TPB, 3 * BAR + TPB + TPB // 2]
    events = [e for i, t in enumerate(onsets) for e in note_events(60 + i, t, t + TPB // 8)]
    path = write_tracks(tmp_path / "staccato.mid", [events])

    phrase = read_phrase(path, tokenizer.settings)
    tokens = tokenizer.encode(phrase)
    decoded = tokenizer.decode(tokens, TPB, (4, 4))

    assert phrase.n_bars == 4
    assert tokenizer.count_bars(tokens) == 4
    assert [divmod(n.start, BAR) for n in decoded] == [divmod(t, BAR) for t in onsets]


def test_decode_gives_back_grid_notes_with_their_velocity_bin(tokenizer):
    step = TPB // tokenizer.grid_per_beat
    notes = [
        Note(60, 100, 0, TPB),
        Note(64, 38, 3 * step, 3 * step + 2 * step),
        Note(67, 127, BAR + 5 * step, BAR + 5 * step + 6 * TPB),  # long: 4/beat duration range
        Note(72, 2, 2 * BAR + 31 * step, 2 * BAR + 31 * step + step),
    ]
    velocity_bins = [int(s.split("_")[1]) for s in tokenizer.vocab() if s.startswith("Velocity_")]

    decoded = tokenizer.decode(tokenizer.encode(Phrase(notes, TPB, (4, 4), 120.0)), TPB, (4, 4))

    assert [(n.pitch, n.start, n.end) for n in decoded] == [(n.pitch, n.start, n.end) for n in notes]
    assert [n.velocity for n in decoded] == [min(velocity_bins, key=lambda b: abs(b - n.velocity)) for n in notes]


def test_encoding_decoded_tokens_gives_the_same_tokens_on_a_pop909_file(tokenizer):
    phrase = read_phrase(POP909[0], tokenizer.settings)
    tokens = tokenizer.encode(phrase)
    decoded = tokenizer.decode(tokens, phrase.ticks_per_beat, phrase.time_signature)

    again = tokenizer.encode(Phrase(decoded, phrase.ticks_per_beat, phrase.time_signature, phrase.tempo_bpm))

    assert again == tokens


def test_onset_just_before_a_bar_line_stays_in_its_bar(tokenizer):
    phrase = Phrase([Note(60, 80, 0, TPB), Note(62, 80, BAR - 1, BAR + TPB)], TPB, (4, 4), 120.0)

    tokens = tokenizer.encode(phrase)

    assert tokenizer.count_bars(tokens) == phrase.n_bars == 1
    assert tokenizer.decode(tokens)[-1].start == BAR - TPB // tokenizer.grid_per_beat


def test_tracks_merge_into_one_stream_without_drums(tokenizer, tmp_path):
    melody = note_events(72, 0, TPB, channel=0)
    bass = note_events(40, TPB, 2 * TPB, channel=1)
    drums = note_events(36, 0, TPB, channel=9)
    path = write_tracks(tmp_path / "three_tracks.mid", [melody, bass, drums])

    phrase = read_phrase(path, tokenizer.settings)
    strings = [tokenizer.token_str(t) for t in tokenizer.encode(phrase)]

    assert [(n.pitch, n.start) for n in phrase.notes] == [(72, 0), (40, TPB)]
    assert [s for s in strings if s.startswith("Pitch_")] == ["Pitch_72", "Pitch_40"]


def test_sustain_pedal_extends_a_note_until_the_pedal_lifts(tokenizer, tmp_path):
    dry = write_tracks(tmp_path / "dry.mid", [note_events(60, 0, TPB // 2)])
    pedalled = write_tracks(tmp_path / "pedal.mid", [note_events(60, 0, TPB // 2) + pedal_events(TPB // 4, BAR)])

    assert durations_of(tokenizer, tokenizer.encode(read_phrase(dry, tokenizer.settings)), 60) == ["Duration_0.4.8"]
    assert durations_of(tokenizer, tokenizer.encode(read_phrase(pedalled, tokenizer.settings)), 60) == ["Duration_4.0.4"]


def test_sustained_note_stops_when_its_pitch_is_struck_again(tokenizer, tmp_path):
    events = note_events(60, 0, TPB // 2) + note_events(60, 2 * TPB, 2 * TPB + TPB // 2) + pedal_events(TPB // 4, BAR)
    path = write_tracks(tmp_path / "restrike.mid", [events])

    assert [(n.start, n.end) for n in read_phrase(path, tokenizer.settings).notes] == [(0, 2 * TPB), (2 * TPB, BAR)]


def test_settings_survive_a_weights_only_checkpoint(tmp_path):
    settings = TokenizerSettings(num_velocities=16, tempo_range=(50, 200))
    torch.save({"tokenizer": settings.to_dict()}, tmp_path / "ckpt.pt")

    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)["tokenizer"]

    assert TokenizerSettings.from_dict(loaded) == settings


def test_equal_settings_give_the_same_vocabulary(tokenizer):
    rebuilt = RemiTokenizer(TokenizerSettings.from_dict(TokenizerSettings().to_dict()))

    assert rebuilt.vocab() == tokenizer.vocab()
    assert rebuilt.vocab_size == tokenizer.vocab_size == len(tokenizer.vocab())
    assert tokenizer.token_str(tokenizer.bar_id) == "Bar_None"


def test_missing_file_raises_midi_file_error_naming_it(tokenizer, tmp_path):
    path = tmp_path / "absent.mid"
    with pytest.raises(MidiFileError, match="absent.mid") as error:
        read_phrase(path, tokenizer.settings)
    assert error.value.path == path


def test_corrupt_file_raises_midi_file_error_naming_it(tokenizer, tmp_path):
    path = tmp_path / "noise.mid"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(MidiFileError, match="noise.mid"):
        read_phrase(path, tokenizer.settings)


def test_file_without_notes_raises_midi_file_error_naming_it(tokenizer, tmp_path):
    path = write_tracks(tmp_path / "silent.mid", [pedal_events(0, TPB)])
    with pytest.raises(MidiFileError, match="silent.mid.*no notes"):
        read_phrase(path, tokenizer.settings)


def test_written_midi_reads_back_the_same_notes_tempo_and_meter(tokenizer, tmp_path):
    notes = [Note(60, 90, 0, TPB), Note(64, 70, 0, 2 * TPB), Note(60, 50, TPB, 3 * TPB), Note(67, 110, 7 * TPB, 9 * TPB)]
    path = tmp_path / "out.mid"

    write_notes(notes, path, ticks_per_beat=TPB, tempo_bpm=96.0, time_signature=(6, 4), end_tick=12 * TPB)
    phrase = read_phrase(path, tokenizer.settings)

    assert phrase.notes == sorted(notes, key=lambda n: (n.start, n.pitch))
    assert phrase.tempo_bpm == pytest.approx(96.0, abs=1e-3)
    assert phrase.time_signature == (6, 4)
    assert mido.MidiFile(path).tracks[0][-1].type == "end_of_track"
    assert mido.MidiFile(path).length == pytest.approx(12 * 60 / 96.0, abs=1e-3)


def test_the_vocabulary_names_every_token_s_kind_and_value(tokenizer):
    v = tokenizer.vocabulary
    assert len(v.kind) == tokenizer.vocab_size and all(v.kind)
    for i, text in enumerate(tokenizer.vocab()):
        kind, _, value = text.partition("_")
        assert v.kind[i] == kind
        expected = {"Pitch": v.pitch, "Velocity": v.velocity, "Position": v.position}.get(kind)
        if expected is not None:
            assert expected[i] == int(value)
    assert v.meter[tokenizer.vocab().index("TimeSig_6/8")] == (6, 8)
    assert v.duration_beats[tokenizer.vocab().index("Duration_3.1.8")] == 3.125


def test_settings_record_miditok_s_switches_and_version_and_read_older_files():
    from engine.tokenizer import RemiTokenizer, TokenizerSettings

    settings = TokenizerSettings()
    stored = settings.to_dict()
    assert stored["use_rests"] is False and stored["miditok_version"] == "3.1.0"
    older = {k: v for k, v in stored.items() if not k.startswith("use_") and k != "miditok_version"}
    assert TokenizerSettings.from_dict(older) == settings
    with pytest.raises(ValueError, match="without rests"):
        RemiTokenizer(TokenizerSettings(use_rests=True))


MITOK_DEFAULT_METERS = ((8, (3, 12, 6)), (4, (5, 6, 3, 2, 1, 4)))   # the vocabulary of every model before odd meters


def test_the_vocabulary_writes_odd_meters_with_their_positions(tokenizer):
    for meter in [(5, 8), (7, 8), (9, 8), (11, 8), (5, 4), (7, 4)]:
        assert tokenizer.settings.supports_time_signature(meter)
        bar = 4 * TPB * meter[0] // meter[1]
        last = bar - TPB // 2                                       # an onset on the bar's last eighth
        phrase = Phrase([Note(60, 80, 0, 120), Note(64, 80, last, bar), Note(67, 80, bar, bar + 240)], TPB, meter, 100.0)
        tokens = tokenizer.encode(phrase)
        assert tokenizer.count_bars(tokens) == 2 and f"TimeSig_{meter[0]}/{meter[1]}" in map(tokenizer.token_str, tokens)
        assert [n.start for n in tokenizer.decode(tokens, TPB, meter)] == [0, last, bar]


@pytest.mark.parametrize("extra", ["", "controls", "controls+markers"])
def test_a_model_of_an_older_vocabulary_grows_into_the_odd_meters_and_predicts_as_before(extra):
    from engine.model import ModelConfig, RWKV7

    old_settings = TokenizerSettings(time_signatures=MITOK_DEFAULT_METERS)
    new_settings = TokenizerSettings()
    if "controls" in extra:
        old_settings, new_settings = old_settings.with_controls(), new_settings.with_controls()
    if "markers" in extra:
        old_settings, new_settings = old_settings.with_fill_markers(), new_settings.with_fill_markers()
    old, new = RemiTokenizer(old_settings), RemiTokenizer(new_settings)
    assert old_settings.grows_into(new_settings) and not new_settings.grows_into(old_settings)
    rows = new.rows_from(old)
    assert new.vocab_size == old.vocab_size + 5 and len(rows) == new.vocab_size
    for i, source in enumerate(rows):   # every old token keeps its rows, by token, wherever its id moved
        if new.token_str(i) in old.vocab():
            assert old.token_str(source) == new.token_str(i)
    like = {new.token_str(i): old.token_str(source) for i, source in enumerate(rows)
            if new.token_str(i) not in old.vocab()}
    assert like == {"TimeSig_5/8": "TimeSig_6/8", "TimeSig_7/8": "TimeSig_6/8", "TimeSig_9/8": "TimeSig_6/8",
                    "TimeSig_11/8": "TimeSig_12/8", "TimeSig_7/4": "TimeSig_6/4"}

    torch.manual_seed(0)
    model = RWKV7(ModelConfig(vocab_size=old.vocab_size, n_layer=2, n_embd=64, head_size=32)).eval()
    torch.nn.init.normal_(model.emb.weight, std=0.5)
    phrase = read_phrase(POP909[0], old_settings)
    before = old.encode(phrase)[:200]
    after = new.encode(phrase)[:200]
    assert [old.token_str(t) for t in before] == [new.token_str(t) for t in after]   # the same music, other ids
    with torch.no_grad():
        logits_before = model(torch.tensor([before]))[0][0]
        model.grow_vocabulary(new.vocab_size, rows)
        logits_after = model(torch.tensor([after]))[0][0]
    kept = [i for i, token in enumerate(new.vocab()) if token in old.vocab()]
    torch.testing.assert_close(logits_after[:, kept], logits_before[:, [rows[i] for i in kept]])
