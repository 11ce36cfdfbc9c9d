"""alibi-detect drift detectors for mlflow-ext."""
