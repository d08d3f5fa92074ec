"""The bridge's commands, one type for every place they come from: the panel, the tray, the hotkey, the console,
the command socket and MIDI triggers all send a `Command`; settings changes travel as a
`SettingsChange` (muse_bridge/settings.py)."""
from __future__ import annotations

from enum import Enum


class Command(str, Enum):
    SUGGEST = "suggest"
    NEXT = "next"
    PREVIOUS = "previous"
    ACCEPT = "accept"
    CLEAR = "clear"
    PANIC = "panic"
    EXPORT = "export"
    ANSWER = "answer"        # answer mode on / off
    FILL = "fill"            # fill the last bars (as many as a suggestion's) anew
    SAVE_PLAYED = "save-played"   # what was played (the context) as muse_played.mid in the current folder
