"""`make bench`'s Node children (bench/jose-bench.mjs, bench/pyodide-bench.mjs), one command
line in and one JSON line out at a time (bench/child.mjs's serve())."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
CLOSE_TIMEOUT = 10  # seconds: end of input ends a child; one still running then is killed


class BenchError(RuntimeError):
    """The benchmark's setup is wrong: a token did not verify, or a count is off."""


@dataclass(frozen=True)
class Timing:
    """One measurement in µs per operation: wall clock, and the CPU time of the whole measuring
    process (all its threads)."""

    wall: float
    cpu: float


class NodeChild:
    """A bench/*.mjs script in a child process of node (its argv: the binary and any flags);
    `ready` is the script's first line."""

    def __init__(self, node: Sequence[str], script: Path, *args: Path) -> None:
        self.name = script.name
        argv = [*node, str(script), *map(str, args)]
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our script, our arguments
                argv, cwd=PROJECT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        except OSError as error:
            raise BenchError(f"cannot run {node[0]} (--node, or NODE=): {error}") from None
        self.ready = self._answer()

    def time(self, command: str, arg: str, count: int) -> Timing:
        """µs per operation for `command arg` over count operations."""
        answer = self.ask(f"{command} {arg} {count}")
        return Timing(float(answer["us"]), float(answer["cpu_us"]))

    def ask(self, line: str) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        """End of input ends the script; one that does not end in time is killed."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _answer(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise BenchError(f"{self.name}: node exited ({self._process.wait()}): see above")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise BenchError(f"{self.name}: {answer['error']}")
        return answer
