"""Named points where a process can be made to die on purpose, to prove crash safety.

``LARIBA_FAILPOINTS=instance-created`` makes the process SIGKILL itself when it reaches
``failpoint("instance-created")`` (right after the provider created an instance and
before Lariba committed its id). Unset, as in any real deployment, a failpoint is a
dictionary lookup and nothing else.
"""

from __future__ import annotations

import os
import signal

ENVIRONMENT_VARIABLE = "LARIBA_FAILPOINTS"


def failpoint(name: str) -> None:
    armed = os.environ.get(ENVIRONMENT_VARIABLE)
    if armed and name in armed.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
