"""The live MIDI side: ports, the clock follower, the live score, the session worker, the player, settings,
triggers and the LiveBridge that wires them; the one-shot `suggest`. No front end: those are in ui/."""
