"""`python -m muse_bridge` is the `muse-bridge` command."""
import sys

from muse_bridge.cli import main

sys.exit(main())
