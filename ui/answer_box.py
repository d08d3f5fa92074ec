"""The panel's answer row: answer mode on or off, the pause it waits for, whether answers join the context,
and the answer's piano roll as it will play, with the playhead moving through it."""
from __future__ import annotations

import time

from PyQt6.QtCore import QTimer, pyqtSignal
from PyQt6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from muse_bridge.settings import MAX_AFTER_BEATS
from muse_bridge.events import AnswerComing, AnswerEnded
from muse_bridge.settings import BridgeSettings
from muse_bridge.protocol import Setting
from ui import theme
from ui.pianoroll import PianoRoll, Roll

PLAYHEAD_MS = 33          # the playhead moves 30 times a second while an answer plays


class AnswerBox(QWidget):
    """`show_settings`, `show_answer`, `answer_ended`; asks for changes with `settingsRequested(changes, persist)`."""

    settingsRequested = pyqtSignal(dict, bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(4)
        row = QHBoxLayout()
        self.on = QCheckBox("Answer my pauses")
        self.on.setToolTip("when you stop playing for the beats set, candidate 1 answers from the next bar line; "
                           "play again to cut it off (console: t, MIDI: CC 25 or a learned trigger)")
        self.after = QSpinBox()
        self.after.setRange(1, MAX_AFTER_BEATS)
        self.after.setPrefix("after ")
        self.after.setSuffix(" beats")
        self.join = QCheckBox("answers join the context")
        self.join.setToolTip("an answer that plays to its end joins the context, as Accept does: the next "
                             "answer continues the conversation")
        self.on.toggled.connect(lambda on: self.settingsRequested.emit({Setting.ANSWER_ON: on}, True))
        self.after.valueChanged.connect(lambda v: self.settingsRequested.emit({Setting.ANSWER_AFTER_BEATS: v}, True))
        self.join.toggled.connect(lambda on: self.settingsRequested.emit({Setting.ANSWER_JOIN_CONTEXT: on}, True))
        row.addWidget(self.on)
        row.addWidget(self.after)
        row.addWidget(self.join, 1)
        root.addLayout(row)
        self.roll = PianoRoll()
        self.roll.setMinimumHeight(56)
        self.roll.setMaximumHeight(56)
        self.caption = QLabel("")
        self.caption.setStyleSheet(f"color: {theme.HINT}; font-size: 10px;")
        root.addWidget(self.roll)
        root.addWidget(self.caption)
        self.roll.setVisible(False)
        self.caption.setVisible(False)
        self._starts_at, self._seconds = 0.0, 1.0
        self.timer = QTimer(self)
        self.timer.setInterval(PLAYHEAD_MS)
        self.timer.timeout.connect(self._move_playhead)

    def show_settings(self, settings: BridgeSettings) -> None:
        for widget, value in ((self.on, settings.answer.on), (self.join, settings.answer.join_context)):
            widget.blockSignals(True)
            widget.setChecked(value)
            widget.blockSignals(False)
        self.after.blockSignals(True)
        self.after.setValue(settings.answer.after_beats)
        self.after.blockSignals(False)

    def show_answer(self, coming: AnswerComing) -> None:
        """The answer about to play: its roll, and the playhead from its first bar line on."""
        c = coming.candidate
        self.roll.set_roll(Roll((), tuple(c.notes), 0, c.bars, c.bar_map.bar_ticks(), c.time_signature[0], answer=True))
        self._starts_at, self._seconds = coming.starts_at, max(c.bars * coming.seconds_per_bar, 1e-3)
        self.roll.setVisible(True)
        self.caption.setVisible(True)
        self.caption.setText(f"answer: {len(c.notes)} notes in {c.bars} bar{'s' if c.bars > 1 else ''}")
        self._move_playhead()
        self.timer.start()

    def answer_ended(self, ended: AnswerEnded) -> None:
        self.timer.stop()
        self.roll.set_playhead(None)
        self.caption.setText("answer cut off" if ended.cut else
                             "answer played; it joined the context" if ended.joined else "answer played")

    def playhead(self) -> float | None:
        """How far through the answer playback is now (0-1), None before it starts or after it ends."""
        done = (time.monotonic() - self._starts_at) / self._seconds
        return done if 0 <= done <= 1 else None

    def _move_playhead(self) -> None:
        self.roll.set_playhead(self.playhead())
        if time.monotonic() > self._starts_at + self._seconds:
            self.timer.stop()
