"""The RWKV-7 model: the parallel (training, prefill) path and the recurrent (live) path agree."""
import pytest
import torch

from engine.model import RWKV7, ModelConfig, config_for_size


@pytest.fixture(scope="module")
def model() -> RWKV7:
    torch.manual_seed(0)
    m = RWKV7(ModelConfig(vocab_size=60, n_layer=3, n_embd=64, head_size=16)).eval()
    # RWKV-LM's init zeroes the output projections; perturb every weight so each term is exercised.
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, 60, (2, 45), generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def test_parallel_logits_equal_stepped_logits(model, tokens):
    parallel, _ = model(tokens)
    state = model.initial_state(tokens.shape[0])
    stepped = []
    for t in range(tokens.shape[1]):
        logits, state = model.step(tokens[:, t], state)
        stepped.append(logits)
    assert torch.allclose(parallel, torch.stack(stepped, dim=1), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_state_after_prefill_equals_state_after_stepping(model, tokens):
    _, prefilled = model(tokens)
    state = model.initial_state(tokens.shape[0])
    for t in range(tokens.shape[1]):
        _, state = model.step(tokens[:, t], state)
    assert prefilled.max_abs_diff(state) < 1e-5


@torch.no_grad()
def test_prefill_in_pieces_equals_prefill_at_once(model, tokens):
    whole, s_whole = model(tokens)
    first, s = model(tokens[:, :19])
    second, s = model(tokens[:, 19:], s)
    assert torch.allclose(torch.cat([first, second], dim=1), whole, atol=1e-5)
    assert s.max_abs_diff(s_whole) < 1e-5


@torch.no_grad()
def test_expanded_state_gives_each_candidate_the_same_continuation(model, tokens):
    _, state = model(tokens[:1])
    k_states = state.expand(4)
    nxt = torch.full((4,), 7)
    logits, k_states = model.step(nxt, k_states)
    assert torch.allclose(logits, logits[:1].expand(4, -1), atol=1e-6)
    # The original is untouched by feeding its copies.
    _, again = model(tokens[:1])
    assert state.max_abs_diff(again) < 1e-6


def test_gradients_flow_to_every_parameter(model, tokens):
    model.train()
    logits, _ = model(tokens)
    logits.logsumexp(-1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    model.eval()
    model.zero_grad()
    assert missing == []


@torch.no_grad()
def test_fresh_model_follows_rwkv_lm_init():
    m = RWKV7(config_for_size("micro", vocab_size=100))
    assert all(float(b.att.output.weight.abs().max()) == 0 for b in m.blocks)
    assert all(float(b.ffn.value.weight.abs().max()) == 0 for b in m.blocks)
    assert float(m.emb.weight.abs().max()) <= 1e-4


def test_unknown_size_is_rejected_by_name():
    with pytest.raises(ValueError, match="'huge'"):
        config_for_size("huge", vocab_size=10)


def test_gradient_checkpointing_gives_the_same_gradients(model, tokens):
    model.train()
    grads = []
    for checkpointing in (False, True):
        model.gradient_checkpointing = checkpointing
        model.zero_grad()
        logits, _ = model(tokens)
        logits.logsumexp(-1).mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    model.gradient_checkpointing = False
    model.zero_grad()
    model.eval()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


def test_the_chunk_length_is_the_kernel_s_not_the_model_s(micro_checkpoint, tmp_path):
    import torch as t

    from engine.checkpoint import load_checkpoint
    from engine.style import load_style, save_style

    ckpt = load_checkpoint(micro_checkpoint)
    tokens = t.randint(0, ckpt.model.cfg.vocab_size, (1, 37))
    with t.no_grad():
        ckpt.model.chunk_len = 16
        ref, _ = ckpt.model(tokens)
        ckpt.model.chunk_len = 5
        other, _ = ckpt.model(tokens)
    assert (ref - other).abs().max() < 1e-4
    style = tmp_path / "style.pt"
    save_style(style, [s.wkv[0] for s in ckpt.model.initial_state(1).layers], ckpt)
    payload = t.load(style, weights_only=True)
    payload["model_config"]["chunk_len"] = 8          # as files of version 0.1 stored it
    t.save(payload, style)
    assert load_style(style, ckpt).layers[0].wkv.shape[0] == 1
