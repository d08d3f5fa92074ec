"""Starting the live bridge, the same way for the console and the tray: settings, device, model, style, ports.

`launch_settings` merges the saved settings with the options given (ui/options.py reads them from the
command line); `open_bridge` loads the model on the chosen device (retrying on the CPU when CUDA runs out
of memory), the style preset, and opens the bridge, reporting each stage to a progress callback. `BridgeLoader` runs it on a thread of its
own, so a window never waits for the model, a port or the disk.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from engine.checkpoint import Checkpoint, CheckpointError
from muse_bridge.protocol import Setting, change
from muse_bridge.settings import BridgeSettings, SettingsError, read_settings

if TYPE_CHECKING:
    from muse_bridge.bridge import LiveBridge

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]   # (what is happening, fraction done 0..1)

@dataclass(frozen=True)
class LaunchOptions:
    """What the command line decides beyond the settings: which model, on which device, which settings file."""

    checkpoint: Path | None = None
    device: str | None = None             # None: cuda when present, else cpu
    settings_path: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)   # settings for this run only


def launch_settings(options: LaunchOptions) -> tuple[BridgeSettings, list[str]]:
    """The saved settings with the command line's on top; one line per refused saved value.
    A refused command-line value raises SettingsError (the user just typed it)."""
    settings, problems = read_settings(options.settings_path)
    return settings.with_changes(options.overrides), problems


def choose_device(requested: str | None) -> str:
    import torch

    if requested is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError as e:
        raise ValueError(f"--device {requested!r} is not a torch device ({e})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {requested!r}: no CUDA device here; use --device cpu")
    return str(device)


def load_model(checkpoint: Path | None, device: str, progress: Progress) -> Checkpoint:
    """The checkpoint on `device`; when CUDA runs out of memory, on the CPU instead (with a progress line)."""
    import torch

    from engine.checkpoint import load_checkpoint

    progress(f"loading the model ({checkpoint or 'bundled default'}) on {device}", 0.1)
    try:
        return load_checkpoint(checkpoint, device=device)
    except torch.OutOfMemoryError:
        progress(f"CUDA out of memory on {device}: loading the model on the CPU instead", 0.3)
        torch.cuda.empty_cache()
        return load_checkpoint(checkpoint, device="cpu")


def open_bridge(options: LaunchOptions, settings: BridgeSettings, progress: Progress = lambda text, done: None,
                require_ports: bool = True) -> tuple[LiveBridge, list[str]]:
    """Model, style and ports, then the running bridge; and one line per thing that was skipped (a style
    preset that does not load). Raises CheckpointError for the model; for the ports too unless
    `require_ports` is False (then the bridge runs without them and says so)."""
    from engine.style import load_style
    from muse_bridge.bridge import LiveBridge

    problems = []
    device = choose_device(options.device)
    ckpt = load_model(options.checkpoint, device, progress)
    model_device = next(ckpt.model.parameters()).device
    initial = None
    if settings.style:
        progress(f"loading the style preset {settings.style}", 0.6)
        try:
            initial = load_style(settings.style, ckpt).to(model_device)
        except CheckpointError as e:
            problems.append(f"style preset not loaded: {e}")
            settings = settings.with_changes(change({Setting.STYLE: None}).values)
    if settings.sampling.controls and not ckpt.tokenizer.settings.controls:   # saved for another model
        problems.append("density, polyphony and chords set to auto: this model has no bar controls")
        settings = settings.with_changes(change({Setting.DENSITY: None, Setting.POLYPHONY: None,
                                                 Setting.CHORDS: ()}).values)
    fast_step = settings.fast_step and model_device.type == "cpu"
    if fast_step:   # before the ports open: on the thread that makes the fast step, the import stalled MIDI input
        from engine.fast_step import load_runtime
        load_runtime()
    progress("opening the MIDI ports", 0.8)
    bridge = LiveBridge(ckpt, settings, initial, settings_path=options.settings_path).start(require_ports=require_ports)
    if fast_step:
        threading.Thread(target=prepare_fast_step, args=(bridge,), name="muse-fast-step", daemon=True).start()
    progress("ready", 1.0)
    return bridge, problems


def prepare_fast_step(bridge) -> None:
    """Export (or find in the cache) the model's step for ONNX Runtime and hand it to the Session.
    Until then, and if it cannot be made, suggestions use the PyTorch step."""
    from engine.fast_step import ExportPace, ExportStopped, FastStep
    try:
        fast = FastStep.for_model(bridge.checkpoint.model, pace=ExportPace())   # beside live MIDI: paced
    except ExportStopped as e:   # the bridge closing took it down: the next start exports it again
        log.info("%s; the next start exports it again", e)
        return
    except Exception as e:  # the exporter can fail in many ways; the PyTorch step serves instead
        log.warning("fast decode step unavailable (%s: %s); suggestions use the PyTorch step", type(e).__name__, e)
        return
    bridge.worker.use_fast_step(fast)
    log.info("fast decode step ready: %s", fast.path)


class BridgeLoader:
    """`open_bridge` on a thread: `on_progress(text, done)`, then `on_ready(bridge, problems)` or
    `on_failed(message)`, all called on the loader's thread."""

    def __init__(self, options: LaunchOptions, settings: BridgeSettings, on_progress: Progress,
                 on_ready: Callable[[LiveBridge, list[str]], None], on_failed: Callable[[str], None]):
        self.options, self.settings = options, settings
        self.on_progress, self.on_ready, self.on_failed = on_progress, on_ready, on_failed
        self.thread = threading.Thread(target=self._run, name="muse-loader", daemon=True)

    def start(self) -> "BridgeLoader":
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            bridge, problems = open_bridge(self.options, self.settings, self.on_progress, require_ports=False)
        except (CheckpointError, SettingsError, OSError, ValueError) as e:
            self.on_failed(str(e))
            return
        except Exception as e:  # the window stays up and says what broke; the traceback goes to the log
            log.exception("starting the bridge failed")
            self.on_failed(f"{type(e).__name__}: {e}")
            return
        self.on_ready(bridge, problems)
