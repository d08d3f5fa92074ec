"""The command lines the app and the trainer share, and the one-shot file commands.

`sampling_options`: the sampling options of `muse-bridge`, `muse-bridge suggest|fill` and `python -m trainer`,
declared once. `file_commands`: `muse-bridge suggest` and `muse-bridge fill`, their parsers and what they run
(`suggest_file`, `fill_file`). Below the front ends (ui/) and beside the trainer: neither imports the other.
"""
