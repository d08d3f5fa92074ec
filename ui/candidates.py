"""The candidate list: one row per candidate with its piano-roll preview after the context's last bars.

Clicking a row auditions it from the next bar line; dragging a row out drops it as a .mid file
(exactly its N bars, the DAW's tempo and meter) into a DAW or a file manager.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from PyQt6.QtCore import QMimeData, QSize, Qt, QUrl, pyqtSignal
from PyQt6.QtGui import QColor, QDrag, QPainter
from PyQt6.QtWidgets import QAbstractItemView, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QWidget

from engine.session import Candidate
from muse_bridge.events import CandidatesReady
from ui import theme
from ui.pianoroll import PianoRoll, Roll

EMPTY_HINT = ("Play a phrase into “Muse In”, then Suggest: the button, Ctrl+Space here, the global hotkey, "
              "the tray menu or CC 20 from your controller.\n\nCandidates appear here: click one to hear it "
              "from the next bar line, drag one into your DAW.")


class CandidateRow(QWidget):
    def __init__(self, index: int, roll: Roll, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 3, 6, 3)
        self.index = index
        self.number = QLabel(str(index + 1))
        self.number.setFixedWidth(22)
        self.number.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.roll = PianoRoll(roll)
        notes = roll.candidate
        span = f"{min(n.pitch for n in notes)}–{max(n.pitch for n in notes)}" if notes else "rest"
        self.info = QLabel(f"{len(notes)} notes\n{span}")
        self.info.setFixedWidth(64)
        self.info.setStyleSheet(f"color: {theme.HINT}; font-size: 10px;")
        layout.addWidget(self.number)
        layout.addWidget(self.roll, 1)
        layout.addWidget(self.info)

    def set_playing(self, playing: bool) -> None:
        self.number.setText(f"▶{self.index + 1}" if playing else str(self.index + 1))
        self.number.setStyleSheet(f"color: {theme.PLAYING_NOTE}; font-weight: bold;" if playing else "")
        self.roll.set_roll(self.roll.roll, playing)


class CandidateList(QListWidget):
    """`show_candidates(event, bpm)` fills it; `auditionRequested(index)` when a row is picked."""

    auditionRequested = pyqtSignal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setSpacing(2)
        self.setStyleSheet(f"QListWidget::item:selected {{ background: {theme.SELECTED}; }}")
        self.candidates: list[Candidate] = []
        self.bpm = 120.0
        self.drag_folder = Path(tempfile.mkdtemp(prefix="muse-bridge-drag-"))
        self.itemClicked.connect(lambda item: self.auditionRequested.emit(self.row(item)))

    def show_candidates(self, ready: CandidatesReady, bpm: float) -> None:
        self.clear()
        self.candidates, self.bpm = list(ready.suggestion.candidates), bpm
        for i, c in enumerate(self.candidates):
            bar = c.bar_map.bar_ticks()
            roll = Roll(ready.context, tuple(c.notes), ready.context_bars, c.bars, bar, c.time_signature[0],
                        ready.answered_bars)
            item = QListWidgetItem(self)
            item.setSizeHint(QSize(300, 86))
            where = (f"where bars {ready.fill[0] + 1}-{ready.fill[1] + 1} lie in the song" if ready.fill
                     else "from the next bar line")
            item.setToolTip(f"click: play {where} · drag: drop as a .mid file")
            self.setItemWidget(item, CandidateRow(i, roll))

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.count() == 0:   # what to do, where the candidates will be
            painter = QPainter(self.viewport())
            painter.setPen(QColor(theme.HINT))
            painter.drawText(self.viewport().rect().adjusted(24, 0, -24, 0),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, EMPTY_HINT)
            painter.end()

    def row_widget(self, index: int) -> CandidateRow:
        return self.itemWidget(self.item(index))

    def set_playing(self, index: int | None) -> None:
        for i in range(self.count()):
            self.row_widget(i).set_playing(i == index)
        if index is not None and 0 <= index < self.count():
            self.blockSignals(True)
            self.setCurrentRow(index)
            self.blockSignals(False)

    def export(self, index: int, path: Path) -> Path:
        """Write candidate `index` as a .mid file of exactly its bars."""
        if not 0 <= index < len(self.candidates):
            raise ValueError(f"no candidate {index + 1} to export: suggest first")
        self.candidates[index].write_midi(path, self.bpm)
        return path

    def mime_for(self, index: int) -> QMimeData:
        """The drag payload of a row: a fresh .mid file's URL."""
        path = self.drag_folder / f"muse_candidate_{index + 1}_{time.strftime('%H%M%S')}.mid"
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(self.export(index, path)))])
        return mime

    def startDrag(self, actions) -> None:
        row = self.currentRow()
        if row < 0 or not self.candidates:
            return
        drag = QDrag(self)
        drag.setMimeData(self.mime_for(row))
        drag.setPixmap(self.row_widget(row).roll.grab())
        drag.exec(Qt.DropAction.CopyAction)
