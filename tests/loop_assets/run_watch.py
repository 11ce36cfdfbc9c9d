"""Run the real watcher in this process: `run_watch.py SETTINGS.json SOURCE [LEASE]`.

SETTINGS.json holds LoopSettings fields; hooks are {"name", "options", "retries", "backoff", "timeout"}.
The watcher stops when a pass finds nothing left to do; each step prints one timeline line.
"""

import json
import sys
import warnings

warnings.simplefilter("ignore")

from mlflow_ext.monitor import HookSpec, LoopSettings  # noqa: E402
from mlflow_ext.watch import watch  # noqa: E402

config = json.loads(open(sys.argv[1]).read())
config["alerts"] = tuple(HookSpec(**spec) for spec in config.get("alerts", ()))
if config.get("retrain"):
    config["retrain"] = HookSpec(**config["retrain"])
lease = float(sys.argv[3]) if len(sys.argv) > 3 else 600.0
summary = watch(LoopSettings(**config), sys.argv[2], interval=0.2, lease=lease, until_idle=True, backoff=0.2,
                on_step=lambda record: print(record.line(), flush=True),
                on_error=lambda message: print(f"ERROR {message}", file=sys.stderr, flush=True))
print(f"stopped {summary.stopped_by} after {len(summary.processed)}", flush=True)
