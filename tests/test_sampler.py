"""The sampler and the grammar on their own: what each may draw, and the stream rules every candidate obeys."""
import numpy as np
import pytest
import torch

from engine.generate import sample_bars
from engine.grammar import BAR, DURATION, PITCH, POSITION, TIMESIG, VELOCITY, RemiGrammar, StreamState
from engine.sampler import SamplingConfig, sample


@pytest.fixture(scope="module")
def grammar(tokenizer):
    return RemiGrammar(tokenizer)


def kinds(grammar, mask) -> set[str]:
    return {grammar.kind_of[i] for i in mask.nonzero().flatten().tolist()}


def draw(logits, allowed, cfg, n=400, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([sample(logits, allowed, cfg, g) for _ in range(n)])


def test_temperature_zero_and_top_k_one_pick_the_best_allowed_token():
    logits = torch.tensor([[5.0, 1.0, 3.0, 4.0]])
    allowed = torch.tensor([[False, True, True, True]])
    assert (draw(logits, allowed, SamplingConfig(temperature=0), n=5) == 3).all()
    assert (draw(logits, allowed, SamplingConfig(top_k=1), n=50) == 3).all()
    assert (draw(logits, allowed, SamplingConfig(top_p=0.01), n=50) == 3).all()


def test_sampling_never_draws_a_masked_token_and_follows_the_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, 9.0]])
    allowed = torch.tensor([[True, True, True, False]])
    drawn = draw(logits, allowed, SamplingConfig(top_p=1.0), n=3000).flatten()
    assert not (drawn == 3).any()
    expected = torch.softmax(logits[0, :3], dim=0)
    observed = torch.bincount(drawn, minlength=3).float() / len(drawn)
    assert (observed[:3] - expected).abs().max() < 0.03


def test_top_p_keeps_the_smallest_set_holding_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    drawn = set(draw(logits, torch.ones(1, 4, dtype=torch.bool), SamplingConfig(top_p=0.75), n=500).flatten().tolist())
    assert drawn == {0, 1}


def test_top_p_draws_the_kept_tokens_in_their_renormalised_shares():
    logits = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3], [0.3, 0.05, 0.5, 0.15]]))
    drawn = draw(logits, torch.ones(2, 4, dtype=torch.bool), SamplingConfig(top_p=0.75), n=4000)
    for row, (first, second) in enumerate([(1, 3), (2, 0)]):
        counts = torch.bincount(drawn[:, row], minlength=4).float() / len(drawn)
        assert counts[first] == pytest.approx(0.625, abs=0.03) and counts[second] == pytest.approx(0.375, abs=0.03)
        assert counts.sum() == pytest.approx(counts[first] + counts[second])   # the other two never


def test_top_p_by_kind_keeps_each_kinds_share_and_trims_within_it():
    """A bar may end (one Bar token, 0.3) or hold another note (a likely pitch, 0.5, and a tail of 200 at 0.001):
    trimmed together, top-p 0.5 keeps the likely pitch alone and the bar never ends; by kind, the bar ends as
    often as the model says and the tail is trimmed all the same."""
    probs = torch.tensor([[0.5] + [0.001] * 200 + [0.3]])
    kinds = np.array([0] * 201 + [1])
    allowed = torch.ones_like(probs, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    for by_kind, bar_share in ((False, 0.0), (True, 0.3)):
        cfg = SamplingConfig(top_p=0.5, top_p_by_kind=by_kind)
        drawn = torch.cat([sample(probs.log().expand(500, -1), allowed.expand(500, -1), cfg, g, kinds) for _ in range(8)])
        assert (drawn == 201).float().mean().item() == pytest.approx(bar_share, abs=0.03)
        assert set(drawn.tolist()) <= {0, 201}   # never a pitch of the tail


def test_nan_logits_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        sample(torch.tensor([[float("nan"), 0.0]]), torch.ones(1, 2, dtype=torch.bool), SamplingConfig(),
               torch.Generator())


def test_the_grammar_orders_bar_meter_position_pitch_velocity_duration(grammar, tokenizer):
    s = StreamState()
    assert kinds(grammar, grammar.allowed(s, (3, 4), 64)) == {"TimeSig"}
    expected = {TIMESIG: {"Bar", "Position"}, POSITION: {"Pitch"}, PITCH: {"Velocity"}, VELOCITY: {"Duration"},
                DURATION: {"Bar", "Position", "Pitch"}}
    for phase, allowed in expected.items():
        s.phase = phase
        assert kinds(grammar, grammar.allowed(s, (3, 4), 64)) == allowed
    s.phase, s.position = DURATION, 5
    positions = [grammar.position_of[i].item() for i in grammar.allowed(s, (3, 4), 64).nonzero().flatten()
                 if grammar.kind_of[i] == "Position"]
    assert min(positions) == 6 and max(positions) == grammar.positions_per_bar((3, 4)) - 1   # forward, inside the bar


def test_a_full_bar_can_only_close_and_a_finished_stream_only_idles(grammar):
    s = StreamState(phase=DURATION, tokens_in_bar=16)
    assert kinds(grammar, grammar.allowed(s, (4, 4), 16)) == {"Bar"}
    s = StreamState(phase=DURATION, bars=2)
    grammar.advance(s, grammar.bar_id, bars_wanted=2)
    assert s.done and kinds(grammar, grammar.allowed(s, (4, 4), 16)) == {"Bar"}


def test_a_candidate_cannot_close_its_first_bar_silent(grammar):
    silent = StreamState(phase=TIMESIG, bars=1)
    assert "Bar" not in kinds(grammar, grammar.allowed(silent, (4, 4), 64, bars_wanted=2))
    sounding = StreamState(phase=TIMESIG, bars=1)
    grammar.advance(sounding, next(i for i, k in enumerate(grammar.kind_of) if k == "Pitch"), bars_wanted=2)
    sounding.phase = DURATION
    assert "Bar" in kinds(grammar, grammar.allowed(sounding, (4, 4), 64, bars_wanted=2))
    grammar.advance(sounding, grammar.bar_id, bars_wanted=2)
    sounding.phase = TIMESIG   # a later bar may rest
    assert "Bar" in kinds(grammar, grammar.allowed(sounding, (4, 4), 64, bars_wanted=2))


def test_a_pitch_is_struck_once_at_an_onset_and_again_at_the_next(grammar):
    pitch = next(i for i, k in enumerate(grammar.kind_of) if k == "Pitch")
    position = next(i for i, k in enumerate(grammar.kind_of) if k == "Position" and grammar.position_of[i] == 2)
    s = StreamState(phase=TIMESIG)
    for token in (position, pitch):
        grammar.advance(s, token, bars_wanted=1)
    s.phase = DURATION
    allowed = grammar.allowed(s, (4, 4), 64)
    assert not allowed[pitch] and allowed[pitch + 1]   # the same key again at this onset: no; another: yes
    grammar.advance(s, position + 1, bars_wanted=1)
    assert grammar.allowed(s, (4, 4), 64)[pitch]       # at the next onset it may sound again


def test_sampled_candidates_never_strike_one_pitch_twice_at_an_onset(grammar, tokenizer):
    g = torch.Generator().manual_seed(3)
    # logits that lean hard on one pitch: without the rule, most onsets would repeat it
    bias = torch.where(torch.arange(grammar.vocab_size) == grammar.pitch_of.tolist().index(60), 8.0, 0.0)
    streams = sample_bars(lambda tokens: torch.randn(len(tokens), grammar.vocab_size, generator=g) + bias, grammar,
                          [(4, 4)] * 4, 2, SamplingConfig(max_tokens_per_bar=80), torch.Generator().manual_seed(4))
    for tokens in streams:
        onsets = [(n.start, n.pitch) for n in tokenizer.decode(tokens, 480, (4, 4))]
        assert onsets and len(onsets) == len(set(onsets))


def test_tempo_tokens_are_never_allowed_and_cannot_be_advanced_past(grammar, tokenizer):
    tempo = next(i for i, k in enumerate(grammar.kind_of) if k == "Tempo")
    for phase in (BAR, TIMESIG, POSITION, PITCH, VELOCITY, DURATION):
        assert not grammar.allowed(StreamState(phase=phase), (4, 4), 64)[tempo]
    with pytest.raises(ValueError, match="cannot be sampled"):
        grammar.advance(StreamState(phase=TIMESIG), tempo, bars_wanted=1)


def test_sampling_bars_from_any_logits_gives_exactly_n_decodable_bars(grammar, tokenizer):
    g = torch.Generator().manual_seed(1)
    streams = sample_bars(lambda tokens: torch.randn(len(tokens), grammar.vocab_size, generator=g), grammar,
                          [(4, 4), (3, 4), (6, 8)], 3, SamplingConfig(max_tokens_per_bar=40), torch.Generator().manual_seed(2))
    for tokens, meter in zip(streams, [(4, 4), (3, 4), (6, 8)]):
        assert tokenizer.count_bars(tokens) == 3
        notes = tokenizer.decode(tokens, 480, meter)
        assert all(n.end > n.start for n in notes)
