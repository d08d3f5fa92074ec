"""The tray icon: its look tells idle / listening / generating / playing; its menu holds every command."""
from __future__ import annotations

from PyQt6.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QAction, QColor, QIcon, QPainter, QPainterPath, QPixmap
from PyQt6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from muse_bridge.commands import Command
from muse_bridge.events import GENERATING, IDLE, LISTENING, PLAYING
from ui.theme import ACTIVITY_COLOURS, TRAY_OUTLINE

ACTIVITY_WORDS = {IDLE: "idle", LISTENING: "listening", GENERATING: "generating…", PLAYING: "playing"}
MENU = [("Suggest", Command.SUGGEST), ("Next", Command.NEXT), ("Previous", Command.PREVIOUS),
        ("Accept", Command.ACCEPT), ("Clear", Command.CLEAR), ("Panic", Command.PANIC)]


def activity_icon(activity: str, size: int = 64) -> QIcon:
    """A round badge in the activity's colour with a note head and stem; generating adds an arc, playing a triangle."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    p = QPainter(pixmap)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = size / 64
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(ACTIVITY_COLOURS.get(activity, ACTIVITY_COLOURS[IDLE])))
    p.drawEllipse(QRectF(2 * s, 2 * s, 60 * s, 60 * s))
    p.setBrush(QColor(TRAY_OUTLINE))
    if activity == PLAYING:
        path = QPainterPath(QPointF(24 * s, 18 * s))
        path.lineTo(QPointF(48 * s, 32 * s))
        path.lineTo(QPointF(24 * s, 46 * s))
        path.closeSubpath()
        p.drawPath(path)
    else:
        p.drawEllipse(QRectF(17 * s, 36 * s, 18 * s, 13 * s))        # note head
        p.drawRect(QRectF(31 * s, 14 * s, 4 * s, 29 * s))             # stem
        p.drawRect(QRectF(31 * s, 14 * s, 14 * s, 5 * s))             # flag
        if activity == GENERATING:
            p.setBrush(Qt.BrushStyle.NoBrush)
            pen = p.pen()
            pen.setStyle(Qt.PenStyle.SolidLine)
            pen.setColor(QColor(TRAY_OUTLINE))
            pen.setWidthF(4 * s)
            p.setPen(pen)
            p.drawArc(QRectF(8 * s, 8 * s, 48 * s, 48 * s), 30 * 16, 120 * 16)
    p.end()
    return QIcon(pixmap)


class TrayIcon(QSystemTrayIcon):
    """Emits `commandRequested(Command)`, `showPanelRequested`, `quitRequested` from its menu."""

    commandRequested = pyqtSignal(object)
    showPanelRequested = pyqtSignal()
    quitRequested = pyqtSignal()

    def __init__(self, hotkey: str = "", parent: QWidget | None = None):
        super().__init__(activity_icon(IDLE), parent)
        self.activity = IDLE
        self.menu = QMenu()
        self.actions: dict[str, QAction] = {}
        for text, command in MENU:
            action = self.menu.addAction(f"{text}\t{hotkey}" if command is Command.SUGGEST and hotkey else text)
            action.triggered.connect(lambda _=False, c=command: self.commandRequested.emit(c))
            self.actions[command.value] = action
        self.actions["answer"] = self.menu.addAction("Answer my pauses")
        self.actions["answer"].setCheckable(True)
        self.actions["answer"].triggered.connect(lambda _=False: self.commandRequested.emit(Command.ANSWER))
        self.menu.addSeparator()
        self.actions["show"] = self.menu.addAction("Show panel")
        self.actions["show"].triggered.connect(self.showPanelRequested.emit)
        self.actions["quit"] = self.menu.addAction("Quit")
        self.actions["quit"].triggered.connect(self.quitRequested.emit)
        self.setContextMenu(self.menu)
        self.activated.connect(self._activated)
        self.set_activity(IDLE, "starting…")

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.showPanelRequested.emit()

    def set_activity(self, activity: str, detail: str = "") -> None:
        if activity != self.activity:
            self.activity = activity
            self.setIcon(activity_icon(activity))
        self.setToolTip(f"Muse Bridge — {ACTIVITY_WORDS.get(activity, activity)}" + (f"\n{detail}" if detail else ""))

    def show_answer_mode(self, on: bool) -> None:
        action = self.actions["answer"]
        action.blockSignals(True)
        action.setChecked(on)
        action.blockSignals(False)

    def set_ready(self, ready: bool) -> None:
        for name, action in self.actions.items():
            if name not in ("show", "quit"):
                action.setEnabled(ready)
