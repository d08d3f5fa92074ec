"""The panel's Fill tab: the context's last bars on a piano roll, a range of them chosen by dragging across it, and
Fill, which asks for candidates that write those bars anew between the bars before and after them. The candidates
appear in the candidate list like a suggestion's; clicking one plays it where its bars lie in the song."""
from __future__ import annotations

from PyQt6.QtCore import QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QPainter, QPen
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.music import Note
from muse_bridge.events import ContextShown
from muse_bridge.settings import MAX_FILL_BARS
from ui import theme
from ui.pianoroll import Roll, paint_roll


class RangeRoll(QWidget):
    """The context's bars, numbered; a press and drag chooses a range of whole bars (`chosen`, 0-based context bars)."""

    chosen = pyqtSignal(int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.shown: ContextShown | None = None
        self.selection: tuple[int, int] | None = None
        self._anchor: int | None = None
        self.setMinimumHeight(110)

    def show_context(self, shown: ContextShown) -> None:
        self.shown, self.selection = shown, None
        self.update()

    def bar_at(self, x: float) -> int | None:
        """The context bar under x (None outside the finished bars)."""
        s = self.shown
        if s is None or s.bars == 0:
            return None
        bar = s.first_bar + min(int(x / max(self.width(), 1) * s.bars), s.bars - 1)
        return bar if bar < s.finished else None

    def choose(self, first: int, last: int) -> None:
        """Choose bars first..last (at most MAX_FILL_BARS, counted from `first`)."""
        lo, hi = min(first, last), max(first, last)
        hi = min(hi, lo + MAX_FILL_BARS - 1)
        self.selection = (lo, hi)
        self.update()
        self.chosen.emit(lo, hi)

    def mousePressEvent(self, event) -> None:
        self._anchor = self.bar_at(event.position().x())
        if self._anchor is not None:
            self.choose(self._anchor, self._anchor)

    def mouseMoveEvent(self, event) -> None:
        bar = self.bar_at(event.position().x())
        if self._anchor is not None and bar is not None:
            self.choose(self._anchor, bar)

    def mouseReleaseEvent(self, event) -> None:
        self._anchor = None

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        rect = QRectF(self.rect())
        s = self.shown
        if s is None or s.bars == 0:
            painter.fillRect(rect, QColor(theme.BACKGROUND))
            painter.setPen(QColor(theme.HINT))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "Show the context, then drag across the bars to fill")
            painter.end()
            return
        span = s.bars * s.bar_ticks   # paint_roll draws context notes ending at 0
        notes = tuple(Note(n.pitch, n.velocity, n.start - span, n.end - span) for n in s.notes)
        paint_roll(painter, rect, Roll(notes, (), s.bars, 0, s.bar_ticks, s.beats_per_bar))
        width = rect.width() / s.bars
        if self.selection is not None:
            lo, hi = self.selection
            painter.fillRect(QRectF((lo - s.first_bar) * width, 0, (hi - lo + 1) * width, rect.height()),
                             QColor(theme.FILL_RANGE))
            painter.setPen(QPen(QColor(theme.CANDIDATE_NOTE), 2))
            painter.drawRect(QRectF((lo - s.first_bar) * width + 1, 1, (hi - lo + 1) * width - 2, rect.height() - 2))
        painter.setPen(QColor(theme.HINT))
        for i in range(s.bars):
            painter.drawText(QRectF(i * width + 3, 2, width, 14), Qt.AlignmentFlag.AlignLeft, str(s.first_bar + i + 1))
        painter.end()


class FillTab(QWidget):
    """`show_context(event)`; asks with `contextRequested()` and `fillRequested(first, last)` (0-based context bars)."""

    contextRequested = pyqtSignal()
    fillRequested = pyqtSignal(int, int)

    def __init__(self):
        super().__init__()
        layout = QVBoxLayout(self)
        self.roll = RangeRoll()
        self.roll.chosen.connect(self._chosen)
        layout.addWidget(self.roll, 1)
        row = QHBoxLayout()
        refresh = QPushButton("Show the context")
        refresh.setToolTip("the last bars you played, to choose bars to fill")
        refresh.clicked.connect(self.contextRequested.emit)
        self.label = QLabel("no bars chosen")
        self.label.setStyleSheet(f"color: {theme.HINT};")
        self.fill = QPushButton("Fill")
        self.fill.setToolTip("write the chosen bars anew, leading from the bars before into the bars after them")
        self.fill.setEnabled(False)
        self.fill.clicked.connect(lambda: self.roll.selection and self.fillRequested.emit(*self.roll.selection))
        row.addWidget(refresh)
        row.addWidget(self.label, 1)
        row.addWidget(self.fill)
        layout.addLayout(row)

    def show_context(self, shown: ContextShown) -> None:
        self.roll.show_context(shown)
        self.label.setText(f"bars {shown.first_bar + 1}-{shown.first_bar + shown.bars}: drag across some to fill"
                           if shown.bars else "nothing played yet")
        self.fill.setEnabled(False)

    def _chosen(self, first: int, last: int) -> None:
        self.label.setText(f"bar {first + 1}" if first == last else f"bars {first + 1}-{last + 1}")
        self.fill.setEnabled(True)
