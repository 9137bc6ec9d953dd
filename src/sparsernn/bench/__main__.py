"""``python -m sparsernn.bench``: see :mod:`sparsernn.bench.command`."""

from sparsernn.bench.command import main

raise SystemExit(main())
