"""Muse Bridge engine: RWKV-7 model, state, tokenizer, checkpoints, sampler and Session."""
