"""Only the built-ins plus what a test registers: an installed copy of this package (entry
point) would otherwise be loaded too, and registering it again would clash."""

import os

os.environ["ERTRL_BENCH_LOAD_PLUGINS"] = ""
os.environ.setdefault("ERTRL_BENCH_QUIET", "1")
