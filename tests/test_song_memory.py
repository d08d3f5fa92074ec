"""The song memory: continuations follow the song's own material where it repeats, as strongly as asked."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from engine.midi_file import read_phrase
from engine.model import RWKV7, config_for_size
from engine.sampler import SamplingConfig
from engine.session import Session
from engine.song_memory import MAX_MATCH, MIN_MATCH, SongMemory, mix, weight, with_memory
from engine.tokenizer import RemiTokenizer
from conftest import POP909_FILES


def longest_match(tokens: list[int]) -> tuple[dict[int, float], int]:
    """What followed the longest earlier match of the end of `tokens`, found by brute force."""
    for n in range(min(MAX_MATCH, len(tokens) - 1), MIN_MATCH - 1, -1):
        after = [tokens[i] for i in range(n, len(tokens)) if tokens[i - n:i] == tokens[-n:]]
        if after:
            return {t: after.count(t) / len(after) for t in set(after)}, n
    return {}, 0


def test_the_memory_proposes_what_followed_the_longest_earlier_match():
    rng = random.Random(3)
    for trial in range(30):
        motif = [rng.randrange(6) for _ in range(rng.randrange(5, 40))]
        song = [rng.randrange(6) for _ in range(rng.randrange(0, 30))] + motif + motif[:rng.randrange(len(motif))]
        cut = rng.randrange(len(song) + 1)
        stream = SongMemory(song[:cut]).stream(song[cut:cut + 3])
        for token in song[cut + 3:]:
            stream.append(token)
        got = stream.proposal()
        want = longest_match(song)
        assert got[1] == want[1] and got[0] == pytest.approx(want[0]), (trial, song)


def test_its_weight_grows_with_the_match_and_is_zero_when_off():
    assert weight(0.85, MIN_MATCH - 1) == 0 and 0 < weight(0.85, MIN_MATCH) < weight(0.85, 16) == 0.85 and weight(1.0, 32) < 1
    assert weight(0.0, 32) == 0
    with pytest.raises(ValueError, match="memory"):
        SamplingConfig(memory=1.5)


def test_asked_for_a_density_the_memory_leaves_the_bars_end_to_the_model():
    """Where the song's passage ended after these notes (token 9, of its own kind, the Bar), the memory mixed
    whole ends the bar; by kind, the bar ends as often as the model says. Where a note followed, the memory's
    note still wins within the notes."""
    end, note, kinds = 9, 3, np.array([0] * 9 + [1])
    logits = torch.zeros(1, 10)          # the model: every token 0.1, so the bar's end 0.1 and the notes 0.9
    for proposed in (end, note):
        stream = SongMemory([1, 2, 4, 5, proposed]).stream([1, 2, 4, 5])
        w = weight(1.0, stream.proposal()[1])
        whole = mix(logits, [stream], 1.0).softmax(-1)[0]
        kept = mix(logits, [stream], 1.0, kinds, [True]).softmax(-1)[0]
        assert whole[proposed].item() == pytest.approx(0.1 * (1 - w) + w)
        assert kept[end].item() == pytest.approx(0.1) and kept.sum().item() == pytest.approx(1)
        if proposed == note:   # within the notes, the memory's note takes its weight of their 0.9
            assert kept[note].item() == pytest.approx(0.1 * (1 - w) + w * 0.9)
    assert torch.equal(mix(logits, [stream], 1.0, kinds, [False]), mix(logits, [stream], 1.0))


@pytest.fixture(scope="module")
def repeated_song():
    """4 bars of a real song (its bars 2-5) and a micro model that knows nothing of them."""
    tok = RemiTokenizer()
    tokens = tok.encode(read_phrase(POP909_FILES[0], tok.settings))
    starts = tok.bar_starts(tokens)
    phrase = tokens[starts[1]:starts[5]]
    torch.manual_seed(0)
    return tok, RWKV7(config_for_size("micro", tok.vocab_size)).eval(), phrase


def test_after_a_phrase_played_twice_a_suggestion_plays_it_again(repeated_song):
    tok, model, phrase = repeated_song
    session = Session(model, tok)
    session.feed(phrase + phrase)
    follows = session.suggest(3, 2, SamplingConfig(memory=1.0, temperature=0, distinct=False), seed=1)
    assert all(c.tokens == tok.first_bars(phrase, 2) for c in follows.candidates)
    # one copy of the repeat is enough: the others read no memory while they write just what the first wrote
    distinct = session.suggest(3, 2, SamplingConfig(memory=1.0, temperature=0), seed=1).candidates
    assert distinct[0].tokens == tok.first_bars(phrase, 2)
    assert all(c.tokens != tok.first_bars(phrase, 2) for c in distinct[1:])
    alone = session.suggest(2, 2, SamplingConfig(memory=0.0, temperature=0), seed=1)
    assert all(c.tokens != tok.first_bars(phrase, 2) for c in alone.candidates)


def test_scoring_with_the_memory_mixes_as_sampling_does(repeated_song):
    tok, model, phrase = repeated_song
    read, written = phrase + phrase, tok.first_bars(phrase, 2)
    with torch.no_grad():
        logits = model.head(model.hidden(torch.tensor([read + written[:-1]]))[0][0, len(read) - 1:])
    plain = logits.log_softmax(-1).gather(1, torch.tensor(written)[:, None]).sum()
    mixed = with_memory(logits, read, written, 0.85).log_softmax(-1).gather(1, torch.tensor(written)[:, None]).sum()
    assert mixed > plain + len(written) * 0.5            # the repeat is far likelier with the memory
    assert torch.equal(with_memory(logits, read, written, 0.0), logits)


def test_a_fills_memory_never_proposes_a_marker():
    # the bar read again after FillMiddle matches the end of the bars before the gap, which FillSuffix followed
    suffix, middle = 900, 901
    before, after = [1, 2, 3, 4, 5, 6], [7, 8, 9, 10]
    reading, recap = before + [suffix] + after + [middle], before[-5:]
    assert SongMemory(reading).stream(recap).proposal() == ({suffix: 1.0}, 5)
    assert SongMemory(reading, stops=(suffix, middle)).stream(recap).proposal() == ({}, 0)
    song = before + [suffix] + recap + [42] + [middle]   # the same bar followed by a note, after the gap
    assert SongMemory(song, stops=(suffix, middle)).stream(recap).proposal() == ({42: 1.0}, 5)


def test_clearing_the_context_clears_the_memory(repeated_song):
    tok, model, phrase = repeated_song
    session = Session(model, tok)
    session.feed(phrase + phrase)
    assert session.memory.tokens == phrase + phrase
    session.reset()
    bar = phrase[:tok.bar_starts(phrase)[1]]
    session.feed(bar)
    assert session.memory.tokens == bar            # what was played before Clear is not followed any more


def test_the_mixture_is_a_distribution_before_any_softmax():
    """`mix` returns log-probabilities: exp of each row sums to 1 as it stands, mixed whole or by kind, matched or not
    (a mixture of unnormalised logits would only look right after the sampler's own softmax)."""
    rng = np.random.default_rng(0)
    song = [int(t) for t in rng.integers(0, 12, 60)]
    kinds = np.array([0] * 8 + [1] * 4)
    for trial in range(20):
        logits = torch.randn(3, 12, generator=torch.Generator().manual_seed(trial)) * 3 + 5
        streams = [SongMemory(song).stream(song[i:i + 8]) for i in (5, 20, 40)]
        assert any(weight(0.9, s.proposal()[1]) for s in streams)
        for by_kind in (None, [True, False, True]):
            out = mix(logits, streams, 0.9, kinds if by_kind else None, by_kind)
            matched = [i for i, s in enumerate(streams) if weight(0.9, s.proposal()[1])]
            assert torch.allclose(out[matched].exp().sum(-1), torch.ones(len(matched)), atol=1e-5)


def test_a_planted_target_never_changes_its_own_score():
    """Scoring with the memory, the token being scored is not yet in the memory: planting any other token there
    leaves that row as it was, and each row is what the memory of everything before it gives."""
    rng = random.Random(5)
    read = [rng.randrange(10) for _ in range(40)]
    written = read[10:30]                       # a repeat: the memory has much to propose
    logits = torch.randn(len(written), 10, generator=torch.Generator().manual_seed(1))
    scored = with_memory(logits, read, written, 0.85)
    for i in range(len(written)):
        planted = written[:i] + [(written[i] + 1) % 10] + written[i + 1:]
        assert torch.equal(with_memory(logits, read, planted, 0.85)[i], scored[i])
        alone = SongMemory(read).stream(written[:i])
        assert torch.allclose(scored[i], mix(logits[i][None], [alone], 0.85)[0])


def test_a_candidate_striking_the_notes_an_earlier_one_of_its_request_struck_is_told_apart():
    from engine.generate import _copies
    from engine.grammar import StreamState

    bar, position, pitch = 1, 2, 3     # each stream's Bar, Position and Pitch tokens (its velocities aside)
    struck = [[bar, position, pitch, bar], [bar, position, pitch, bar], [bar, position, pitch + 1, bar], [bar, bar],
              [bar, position, pitch, bar]]
    streams = [StreamState(bars=2, notes=1), StreamState(bars=2, notes=1), StreamState(bars=2, notes=1),
               StreamState(bars=2), StreamState(bars=2, notes=1)]
    assert _copies(struck, streams, None, after_bars=1) == [1, 4]                     # no note struck: none
    assert _copies(struck, streams, [0, 0, 0, 1, 1], after_bars=1) == [1]             # not another request's
    assert _copies(struck, streams, None, after_bars=2) == []                         # not through enough bars
    streams[1].done = True
    assert _copies(struck, streams, None, after_bars=1) == [4]                        # a finished one reads no more
