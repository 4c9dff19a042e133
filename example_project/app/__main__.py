"""python -m app "my thermostat is offline" -> team, product and priority (uses prompts.lock)."""

import json
import sys

from .service import handle_ticket

if __name__ == "__main__":
    print(json.dumps(handle_ticket(" ".join(sys.argv[1:]) or sys.stdin.read()), indent=2))
