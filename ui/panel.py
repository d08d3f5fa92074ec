"""The panel beside the DAW: status, the commands, the candidate list, and every setting one click away.

Presentation only: it shows what the bridge tells (`show_*`) and asks for changes with signals; the
app (ui/app.py) connects those to the bridge. A change the bridge refuses comes back as the settings
in force, which the widgets then show again.
"""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (QFileDialog, QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QTabWidget,
                             QVBoxLayout, QWidget)

from muse_bridge.commands import Command
from muse_bridge.events import (AnswerComing, AnswerEnded, BridgeStatus, CandidatesReady, ContextShown, Notice,
                                PortsChanged)
from muse_bridge.protocol import change
from muse_bridge.settings import BridgeSettings
from ui.answer_box import AnswerBox
from ui.candidates import CandidateList
from ui.fill_tab import FillTab
from ui.panel_tabs import KeyTab, MidiTab, SamplingTab, TriggersTab, show_controls_available
from ui.theme import ACTIVITY_COLOURS, ERROR, HINT
from ui.tray import ACTIVITY_WORDS


class Panel(QWidget):
    commandRequested = pyqtSignal(object)              # Command
    auditionRequested = pyqtSignal(int)                # 0-based candidate
    settingsRequested = pyqtSignal(object)             # SettingsChange
    learnRequested = pyqtSignal(object)                # Command
    detectKeyRequested = pyqtSignal()
    refreshPortsRequested = pyqtSignal(str)            # MIDI API
    exportRequested = pyqtSignal(int, str)             # candidate, path
    chordsFromPlayingRequested = pyqtSignal()
    contextRequested = pyqtSignal()                    # the context's last bars, to choose bars to fill
    fillRequested = pyqtSignal(int, int)               # context bars, 0-based first and last

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Muse Bridge")
        self.resize(470, 780)
        self.settings = BridgeSettings()
        root = QVBoxLayout(self)
        root.setContentsMargins(10, 10, 10, 8)
        root.setSpacing(8)
        root.addLayout(self._build_header())
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(True)
        root.addWidget(self.progress)
        root.addLayout(self._build_commands())
        self.answer = AnswerBox()
        self.answer.settingsRequested.connect(self._ask)
        root.addWidget(self.answer)
        self.candidates = CandidateList()
        self.candidates.setMinimumHeight(230)
        self.candidates.auditionRequested.connect(self.auditionRequested.emit)
        root.addWidget(self.candidates, 1)
        self.sampling, self.key, self.midi, self.triggers = SamplingTab(), KeyTab(), MidiTab(), TriggersTab()
        for tab in (self.sampling, self.key, self.midi):
            tab.settingsRequested.connect(self._ask)
        self.key.detectKeyRequested.connect(self.detectKeyRequested.emit)
        self.key.chordsFromPlayingRequested.connect(self.chordsFromPlayingRequested.emit)
        self.midi.refreshPortsRequested.connect(self.refreshPortsRequested.emit)
        self.triggers.learnRequested.connect(self.learnRequested.emit)
        self.fill = FillTab()
        self.fill.contextRequested.connect(self.contextRequested.emit)
        self.fill.fillRequested.connect(self.fillRequested.emit)
        self.tabs = QTabWidget()
        for tab, title in ((self.sampling, "Sampling"), (self.key, "Key && range"), (self.fill, "Fill"),
                           (self.midi, "MIDI"), (self.triggers, "Triggers")):
            self.tabs.addTab(tab, title)
        root.addWidget(self.tabs)
        self.status_line = QLabel("starting…")
        self.status_line.setWordWrap(True)
        root.addWidget(self.status_line)
        self.show_settings(self.settings)
        self.set_ready(False)

    # ---- building ----------------------------------------------------------------------------

    def _build_header(self) -> QGridLayout:
        grid = QGridLayout()
        self.activity = QLabel()
        self.activity.setStyleSheet("font-size: 15px; font-weight: bold;")
        self.tempo = QLabel("– bpm")
        self.tempo.setStyleSheet("font-size: 15px;")
        self.bar = QLabel("bar –")
        self.bar.setStyleSheet("font-size: 15px;")
        self.details = QLabel("")
        self.details.setStyleSheet(f"color: {HINT};")
        grid.addWidget(self.activity, 0, 0)
        grid.addWidget(self.tempo, 0, 1, Qt.AlignmentFlag.AlignCenter)
        grid.addWidget(self.bar, 0, 2, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.details, 1, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        return grid

    def _build_commands(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for text, command, tip in (("Suggest", Command.SUGGEST, "K candidates from the next bar line (Ctrl+Space)"),
                                   ("◀", Command.PREVIOUS, "previous candidate (Ctrl+Left)"),
                                   ("▶", Command.NEXT, "next candidate (Ctrl+Right)"),
                                   ("Accept", Command.ACCEPT, "the candidate joins the context (Ctrl+Return)"),
                                   ("Clear", Command.CLEAR, "forget the context"),
                                   ("Panic", Command.PANIC, "stop; all notes off (Esc)")):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, c=command: self.commandRequested.emit(c))
            row.addWidget(button, 2 if command is Command.SUGGEST else 1)
            self.buttons[command.value] = button
        self.buttons["suggest"].setStyleSheet("QPushButton { font-weight: bold; padding: 6px 14px; }")
        export = QPushButton("Export…")
        export.setToolTip("save the candidate being auditioned as a .mid file (or drag a row out)")
        export.clicked.connect(self._export_clicked)
        row.addWidget(export, 1)
        self.buttons["export"] = export
        return row

    # ---- what the user asks for --------------------------------------------------------------

    def _export_clicked(self) -> None:
        index = max(self.candidates.currentRow(), 0)
        path, _ = QFileDialog.getSaveFileName(self, "Export candidate", f"muse_candidate_{index + 1}.mid",
                                              "MIDI files (*.mid)")
        if path:
            self.exportRequested.emit(index, path)

    # ---- what the bridge tells ---------------------------------------------------------------

    def set_ready(self, ready: bool) -> None:
        for button in self.buttons.values():
            button.setEnabled(ready)
        self.tabs.setEnabled(ready)
        self.answer.setEnabled(ready)
        self.progress.setVisible(not ready)

    def show_loading(self, text: str, done: float) -> None:
        self.progress.setValue(round(done * 100))
        self.progress.setFormat(text)
        self.status_line.setText(text)

    def show_status(self, s: BridgeStatus) -> None:
        colour = ACTIVITY_COLOURS.get(s.activity, HINT)
        self.activity.setText(f"<span style='color:{colour}'>●</span> {ACTIVITY_WORDS.get(s.activity, s.activity)}")
        self.tempo.setText(f"{s.bpm:.1f} bpm · {s.clock}")
        self.bar.setText(f"bar {s.bar}" if s.bar else "bar –")
        latency = f"{s.last_suggest_seconds:.2f} s" if s.last_suggest_seconds is not None else "–"
        pending = f" (+{s.pending_tokens})" if s.pending_tokens else ""
        dropped = (f" · {s.overflow} dropped" if s.overflow else "") + (
            f" · {s.unsent} unsent (output port gone)" if s.unsent else "")
        answer = f" · answer {s.answer}" if s.answer != "off" else ""
        self.details.setText(f"context {s.context_tokens} tokens{pending} · last suggestion {latency} · "
                             f"{s.device}{dropped}{answer}")

    def show_notice(self, notice: Notice) -> None:
        self.status_line.setStyleSheet(f"color: {ERROR};" if notice.error else "")
        self.status_line.setText(notice.text)

    def show_ports(self, ports: PortsChanged) -> None:
        state = [f"in: {ports.input_name or 'not open'}", f"out: {ports.output_name or 'not open'}",
                 f"{ports.api}, {'virtual' if ports.virtual else 'existing'} ports"]
        self.midi.port_state.setText(" · ".join(state))

    def show_available_ports(self, inputs: list[str], outputs: list[str]) -> None:
        self.midi.show_available_ports(inputs, outputs)

    def show_styles(self, presets: list[Path]) -> None:
        self.sampling.show_styles(presets)

    def _ask(self, values: dict, persist: bool) -> None:
        self.settingsRequested.emit(change(values, persist))

    def show_settings(self, settings: BridgeSettings) -> None:
        """Every widget shows `settings` (the ones in force), without asking for changes."""
        self.settings = settings
        for tab in (self.sampling, self.key, self.midi, self.triggers, self.answer):
            tab.show_settings(settings)

    def show_context(self, shown: ContextShown) -> None:
        self.fill.show_context(shown)

    def show_candidates(self, ready: CandidatesReady, bpm: float) -> None:
        self.candidates.show_candidates(ready, bpm)

    def show_playing(self, index: int | None) -> None:
        self.candidates.set_playing(index)

    def show_answer(self, coming: AnswerComing) -> None:
        self.answer.show_answer(coming)

    def answer_ended(self, ended: AnswerEnded) -> None:
        self.answer.answer_ended(ended)

    def show_controls_available(self, available: bool) -> None:
        """Whether the model has bar controls: without them, their widgets are off and say why."""
        show_controls_available([self.sampling.density, self.sampling.polyphony, self.key.chords,
                                 self.key.chords_from_playing], available)
