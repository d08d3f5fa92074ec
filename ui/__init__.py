"""The tray app in PyQt6: the tray icon and menu, the panel with its piano rolls, the global hotkey.
Presentation and wiring only: every musical decision is the bridge's (docs/design.md §1)."""
