"""Key/scale lock and pitch range in the sampler; key detection from played notes."""
from pathlib import Path

import pytest

from engine.checkpoint import load_checkpoint
from engine.grammar import RemiGrammar
from engine.keys import Key, detect_key, parse_key_lock
from engine.midi_file import read_phrase
from engine.sampler import SamplingConfig
from engine.session import Session

KEYS_DATA = Path(__file__).parent / "data" / "pop909" / "keys"


@pytest.fixture(scope="module")
def micro(micro_checkpoint):
    return load_checkpoint(micro_checkpoint)


def excerpt(tokenizer, path: Path, bars: int = 16):
    phrase = read_phrase(path, tokenizer.settings)
    return [n for n in phrase.notes if n.start < bars * phrase.ticks_per_bar]


@pytest.mark.parametrize("lock,pitch_range", [("C major", None), ("A minor", (48, 72)), ("F# dorian", None),
                                              ("Eb major pentatonic", (60, 84)), ("off", (55, 60))])
def test_every_sampled_pitch_obeys_the_key_lock_and_the_range(micro, tokenizer, lock, pitch_range):
    # an untrained model draws pitches almost uniformly: only the mask keeps them in key
    session = Session(micro.model, micro.tokenizer)
    session.feed(tokenizer.encode(read_phrase(KEYS_DATA / "171_c_major.mid", tokenizer.settings))[:300])
    sampling = SamplingConfig(temperature=1.5, top_p=1.0, max_tokens_per_bar=48, key_lock=lock, pitch_range=pitch_range)
    notes = [n for c in session.suggest(4, 2, sampling, seed=11).candidates for n in c.notes]
    assert len(notes) > 20
    allowed = Key.parse(lock).pitch_classes if lock != "off" else set(range(12))
    lo, hi = pitch_range or (0, 127)
    assert all(n.pitch % 12 in allowed and lo <= n.pitch <= hi for n in notes)


def test_detect_key_of_a_c_major_pop909_excerpt(tokenizer):
    assert detect_key(excerpt(tokenizer, KEYS_DATA / "171_c_major.mid")) == Key(0, "major")


def test_detect_key_of_an_a_minor_pop909_excerpt(tokenizer):
    assert detect_key(excerpt(tokenizer, KEYS_DATA / "013_a_minor.mid")) == Key(9, "minor")


def test_detect_key_without_notes_says_what_to_do():
    with pytest.raises(ValueError, match="play something"):
        detect_key([])


@pytest.mark.parametrize("text,expected", [("a minor", "A minor"), ("F# dorian", "F# dorian"), ("Bb", "Bb major"),
                                           ("db mixolydian", "C# mixolydian"), ("OFF", None), ("", None)])
def test_key_lock_spellings_are_read_and_normalised(text, expected):
    key = parse_key_lock(text)
    assert (str(key) if key else None) == expected


@pytest.mark.parametrize("text,named", [("H major", "'H'"), ("C bebop", "'bebop'")])
def test_a_bad_key_lock_is_refused_naming_the_value(text, named):
    with pytest.raises(ValueError, match=named):
        SamplingConfig(key_lock=text)


def test_a_range_with_no_pitch_of_the_key_is_refused():
    with pytest.raises(ValueError, match="C major pentatonic"):
        SamplingConfig(key_lock="C major pentatonic", pitch_range=(61, 61))   # C# alone
    assert SamplingConfig(key_lock="C major pentatonic", pitch_range=(61, 62)).pitch_range == (61, 62)  # D is in


def test_a_range_outside_the_vocabulary_is_refused_by_the_grammar(tokenizer):
    with pytest.raises(ValueError, match="no pitch of the model's vocabulary"):
        RemiGrammar(tokenizer).pitch_mask((0, 20))
