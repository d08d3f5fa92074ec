"""Piano-roll previews: the last bars of the context in grey (the bars answers added to it in the answer colour),
then the candidate in colour, with bar lines and, while it plays, a playhead."""
from __future__ import annotations

from dataclasses import dataclass

from PyQt6.QtCore import QRectF, QSize, Qt
from PyQt6.QtGui import QColor, QPainter, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from engine.music import Note
from ui import theme

BACKGROUND, BAR_LINE, BEAT_LINE = QColor(theme.BACKGROUND), QColor(theme.BAR_LINE), QColor(theme.BEAT_LINE)
CONTEXT_NOTE, CANDIDATE_NOTE = QColor(theme.CONTEXT_NOTE), QColor(theme.CANDIDATE_NOTE)
PLAYING_NOTE, ANSWER_NOTE, PLAYHEAD = QColor(theme.PLAYING_NOTE), QColor(theme.ANSWER_NOTE), QColor(theme.PLAYHEAD)
MIN_NOTE_HEIGHT = 3.0        # pixels: a wide pitch span still shows every note
MIN_SPAN = 14                 # semitones shown at least, so a narrow melody is not stretched to blocks


@dataclass(frozen=True)
class Roll:
    """What one preview shows: context notes (ticks ending at 0) and candidate notes (from 0)."""

    context: tuple[Note, ...]
    candidate: tuple[Note, ...]
    context_bars: int
    candidate_bars: int
    bar_ticks: int
    beats_per_bar: int
    answered_bars: frozenset[int] = frozenset()   # context bars (0: its first) that answers added
    answer: bool = False                          # the candidate is an answer: drawn in the answer colour


def paint_roll(painter: QPainter, rect: QRectF, roll: Roll, playing: bool = False,
               playhead: float | None = None) -> None:
    """Draw `roll` into `rect`: time left to right over all its bars, pitch bottom to top; `playhead` is
    how far through the candidate's bars playback is (0-1), None when it does not play."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    painter.fillRect(rect, BACKGROUND)
    bars = roll.context_bars + roll.candidate_bars
    notes = roll.context + roll.candidate
    if bars <= 0 or roll.bar_ticks <= 0:
        painter.restore()
        return
    origin = -roll.context_bars * roll.bar_ticks
    x_per_tick = rect.width() / (bars * roll.bar_ticks)
    lo = min((n.pitch for n in notes), default=60)
    hi = max((n.pitch for n in notes), default=72)
    if hi - lo + 1 < MIN_SPAN:
        lo -= (MIN_SPAN - (hi - lo + 1)) // 2
        hi = lo + MIN_SPAN - 1
    row = rect.height() / (hi - lo + 1)

    beat_ticks = roll.bar_ticks / max(roll.beats_per_bar, 1)
    for beat in range(bars * roll.beats_per_bar + 1):
        x = rect.left() + beat * beat_ticks * x_per_tick
        painter.setPen(QPen(BAR_LINE if beat % roll.beats_per_bar == 0 else BEAT_LINE, 1))
        painter.drawLine(int(x), int(rect.top()), int(x), int(rect.bottom()))
    if roll.context_bars:   # where the suggestion begins
        x = rect.left() + roll.context_bars * roll.bar_ticks * x_per_tick
        painter.setPen(QPen(QColor(theme.START_LINE), 2))
        painter.drawLine(int(x), int(rect.top()), int(x), int(rect.bottom()))

    painter.setPen(Qt.PenStyle.NoPen)
    answered = [n for n in roll.context if (n.start - origin) // roll.bar_ticks in roll.answered_bars]
    played = [n for n in roll.context if (n.start - origin) // roll.bar_ticks not in roll.answered_bars]
    candidate_colour = PLAYING_NOTE if playing else ANSWER_NOTE if roll.answer else CANDIDATE_NOTE
    for colour, group in ((CONTEXT_NOTE, played), (ANSWER_NOTE, answered), (candidate_colour, roll.candidate)):
        painter.setBrush(colour)
        for n in group:
            x0 = rect.left() + (n.start - origin) * x_per_tick
            width = max((n.end - n.start) * x_per_tick, 2.0)
            height = max(row - 1, MIN_NOTE_HEIGHT)
            y = rect.top() + (hi - n.pitch) * row + (row - height) / 2
            painter.drawRect(QRectF(x0, y, width, height))
    if playhead is not None and 0 <= playhead <= 1:
        x = rect.left() + (roll.context_bars + playhead * roll.candidate_bars) * roll.bar_ticks * x_per_tick
        painter.setPen(QPen(PLAYHEAD, 2))
        painter.drawLine(int(x), int(rect.top()), int(x), int(rect.bottom()))
    painter.restore()


class PianoRoll(QWidget):
    """A preview widget; `set_roll` changes what it shows."""

    def __init__(self, roll: Roll | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.roll, self.playing, self.playhead = roll, False, None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(76)

    def sizeHint(self) -> QSize:
        return QSize(320, 80)

    def set_roll(self, roll: Roll | None, playing: bool = False) -> None:
        self.roll, self.playing = roll, playing
        self.update()

    def set_playhead(self, playhead: float | None) -> None:
        """How far through the candidate playback is (0-1), None to hide the playhead."""
        self.playhead = playhead
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        if self.roll is None:
            painter.fillRect(self.rect(), BACKGROUND)
        else:
            paint_roll(painter, QRectF(self.rect()), self.roll, self.playing, self.playhead)
        painter.end()
