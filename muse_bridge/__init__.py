"""The live MIDI side: ports, the clock follower, the live context and score, the session worker, the player,
settings and their changes, triggers, and the parts of the live side, which bridge.py wires together. No command
line and no front end: those are in cli/ and ui/."""
