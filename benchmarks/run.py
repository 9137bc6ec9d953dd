"""Run the benchmark from a source checkout: ``python benchmarks/run.py [--quick] ...``."""

from sparsernn.bench import main

raise SystemExit(main())
