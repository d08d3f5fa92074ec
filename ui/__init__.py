"""The front ends above the live bridge: the `muse-bridge` command line (cli.py, `python -m ui`), the console
(console.py), and the tray app in PyQt6 (the tray icon and menu, the panel with its piano rolls, the global
hotkey, the screenshot). Presentation and wiring only: every musical decision is the bridge's
(docs/design.md §1). Only the tray app's modules import PyQt6."""
