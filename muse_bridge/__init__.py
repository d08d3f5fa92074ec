"""Muse Bridge: the live MIDI side (ports, clock, live score, controller, player) and the command line."""
