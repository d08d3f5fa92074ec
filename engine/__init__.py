"""The engine: musical time, MIDI files, REMI tokens with bar controls, the RWKV-7 model and its state,
checkpoints and style presets, the grammar, sampler and decode steps, and the Session. No MIDI port, no window."""
