"""Every colour the tray app draws with, in one place (CSS colour strings; Qt's QColor takes them as they are)."""
from muse_bridge.events import GENERATING, IDLE, LISTENING, PLAYING

HINT = "#8b929c"            # secondary text: details, hints, port state
ERROR = "#ff6b6b"           # a status line that reports an error
SELECTED = "#2d3f55"        # the selected candidate's row
TRAY_OUTLINE = "#14161a"    # the tray icon's ring and its playing triangle

# piano rolls
BACKGROUND = "#1e2126"
BAR_LINE = "#4a505a"
BEAT_LINE = "#2a2e35"
START_LINE = "#c9ced6"      # where the suggestion begins
CONTEXT_NOTE = "#7d848f"
CANDIDATE_NOTE = "#f2a33a"
PLAYING_NOTE = "#5cc8ff"
ANSWER_NOTE = "#b58cff"     # an answer to the composer's pause, and the answered bars of a context
PLAYHEAD = "#ffffff"
FILL_RANGE = "#40f2a33a"    # the bars chosen to fill (#AARRGGBB: the candidate colour, see-through)

ACTIVITY_COLOURS = {IDLE: HINT, LISTENING: "#4cc38a", GENERATING: CANDIDATE_NOTE, PLAYING: PLAYING_NOTE}
