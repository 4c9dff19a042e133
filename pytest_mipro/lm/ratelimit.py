"""One requests-per-minute limit for a whole run: every thread and every xdist worker.

``--mipro-rpm N`` gives each LM a :class:`SharedRateLimit` over one SQLite file in the
project's ``.mipro/`` folder. The limiter is pyrate-limiter's (a sliding-window log in a
SQLite table, guarded by a file lock), so processes that share the file share the limit:
no request is sent while N others were sent in the last window.

Two refinements, both measured with bench/rate_limit.py:

- The window is a thirtieth longer than the period (62 s for a minute). A request reaches
  the provider a little after the limiter admits it (the client library's work, up to half
  a second on a busy 2-core machine, more for a process's first request), and by differing
  amounts; with the exact window, the provider's count over 60 s reached N + 10%.
- A second, short window (a sixth of the period, a fifth of the requests) spreads the
  requests out: without it a run sends N at once and then waits most of a minute, a burst
  that providers punish too. Its pace (1.2 N a period) leaves the long window in charge.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

from ..errors import ConfigError

MARGIN = 1 / 30  # the window's extra length, for the time between admission and arrival
INSTALL_HINT = "--mipro-rpm needs pyrate-limiter: pip install 'pyrate-limiter>=4'"


class SharedRateLimit:
    """At most ``limit`` acquisitions per ``period`` seconds across every process using ``path``."""

    def __init__(self, limit: int, path: Path, *, period: float = 60.0) -> None:
        if limit < 1 or period <= 0:
            raise ConfigError(f"a rate limit needs a positive count and period, got {limit} per {period} s")
        self.limit = limit
        self.period = period
        self.path = Path(path)
        self._limiter: Any = None
        self._opening = threading.Lock()

    def __repr__(self) -> str:
        return f"SharedRateLimit({self.limit} per {self.period:g} s, {str(self.path)!r})"

    def __deepcopy__(self, memo: dict[int, object]) -> SharedRateLimit:
        return self  # one limit: a copied program or LM still shares it

    def __getstate__(self) -> dict[str, object]:
        return {"limit": self.limit, "period": self.period, "path": self.path}  # reopened where unpickled

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["limit"], state["path"], period=state["period"])  # type: ignore[misc]

    def acquire(self) -> None:
        """Wait until one more request fits in the window, and count it."""
        self._open().try_acquire("requests", blocking=True)

    def _open(self) -> Any:
        """The limiter, opened on first use in this process (a connection is not shared across a fork)."""
        if self._limiter is None:
            with self._opening:
                if self._limiter is None:
                    self._limiter = _open_limiter(self.limit, self.period, self.path)
        return self._limiter


def _open_limiter(limit: int, period: float, path: Path) -> Any:
    try:
        from pyrate_limiter import Limiter, Rate, SQLiteBucket
    except ImportError:  # pragma: no cover - a core dependency, unless someone removed it
        raise ConfigError(INSTALL_HINT) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    interval = max(6, round(period * 1000 * (1 + MARGIN)))
    rates = [Rate(math.ceil(limit / 5), round(period * 1000 / 6)), Rate(limit, interval)]  # shorter interval first
    # One table per (limit, period), so a run with another limit does not read this one's log.
    table = f"requests_{limit}_per_{interval}ms"
    bucket = SQLiteBucket.init_from_file(rates, table=table, db_path=str(path), use_file_lock=True)
    return Limiter(bucket)
