"""Running the `journeys` command as an operator does, without blocking the test's event loop
(the worker runs on it, and `journeys remove` waits for the journey to close)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

JOURNEYS = str(Path(sys.executable).parent / "journeys")
REPO = Path(__file__).resolve().parents[2]


async def journeys(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`journeys ARGS` in a temporary folder (no .env, no data/ key); (exit code, out, err)."""
    process = await asyncio.create_subprocess_exec(
        JOURNEYS,
        *args,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        cwd=env["JOURNEYS_DATA_DIR"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
