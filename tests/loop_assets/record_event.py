"""A command hook for tests: append the event (stdin) to LOG; fail (exit 3) the first FAIL_FIRST calls;
sleep PAUSE seconds first.

Every call is counted in LOG.calls, so a test sees how many attempts were made.
"""

import sys
import time
from pathlib import Path

log, fail_first = Path(sys.argv[1]), int(sys.argv[2])
pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
calls = log.with_name(log.name + ".calls")
with calls.open("a") as handle:
    handle.write("call\n")
if calls.read_text().count("\n") <= fail_first:
    print("failing on purpose")
    sys.exit(3)
time.sleep(pause)
event = sys.stdin.read()
with log.open("a") as handle:
    handle.write(event.replace("\n", " ") + "\n")
print("recorded")
