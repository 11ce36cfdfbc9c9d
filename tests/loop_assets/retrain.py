"""A retraining program for the end-to-end loop test, run by the `command` hook:

    retrain.py TRAIN.parquet VALID.parquet SOURCE_DIR

It reads the event (stdin) for the model's name, joins every labels file that has arrived in
SOURCE_DIR to its batch rows by id, trains on the training data plus those labelled rows under
@track (which registers a new version with its profile, no alias) and prints what it used.
"""

import json
import sys
import warnings
from pathlib import Path

warnings.simplefilter("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the hook's environment has no PYTHONPATH

import pandas as pd  # noqa: E402

from tests.model_fixtures import ID, TARGET, register_version  # noqa: E402

event = json.loads(sys.stdin.read())
train, valid, source = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2]), Path(sys.argv[3])
files = sorted(p for p in source.iterdir() if p.suffix == ".parquet")
labels = [pd.read_parquet(p) for p in files if p.name.startswith("labels")]
batches = pd.concat([pd.read_parquet(p) for p in files if not p.name.startswith("labels")], ignore_index=True)
labelled = batches.merge(pd.concat(labels, ignore_index=True)[[ID, TARGET]], on=ID) if labels else batches[:0]
version = register_version(event["model"], pd.concat([train, labelled], ignore_index=True), valid, alias=None)
print(f"trained version {version} on {len(train)} training rows + {len(labelled)} labelled rows "
      f"from {len(labels)} labels file(s)")
