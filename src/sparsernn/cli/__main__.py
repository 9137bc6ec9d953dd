"""``python -m sparsernn.cli``."""

from sparsernn.cli import main

main()
