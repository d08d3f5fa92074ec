"""`python -m ui` is the `muse-bridge` command."""
import sys

from ui.cli import main

sys.exit(main())
