"""The live MIDI side: ports, the clock follower, the live context and score, the session worker, the player,
settings and their changes, triggers, and the parts of the live side, which bridge.py wires together; the
one-shot `muse-bridge suggest` (suggest_file.py). No command line and no front end: those are in ui/."""
