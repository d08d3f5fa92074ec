"""`python -m trainer`: prepare MIDI, train, fine-tune and evaluate models. Never imported by the live app."""
