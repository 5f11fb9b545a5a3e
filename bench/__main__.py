"""``python -m bench``: the benchmark runner (bench/run_all.py)."""

from bench.run_all import main

raise SystemExit(main())
