"""A Node script in a child process that speaks JSON lines: one command `{"id", "op", …}` per
line in, one reply `{"id", "ok", …}` per line out, its first line a ready message. The Pyodide
stage (tests/pyodide/run.mjs) and the browser stage (tests/browser/driver.mjs) talk to theirs
through it. Everything is a test failure with the child's own words, never a skip."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[2]


class JsonLinesChild:
    """argv as a child process (stderr to a file, shown when it fails); `boot` is its first
    line, `output` every stdout line so far. explain(reply) adds what a failed reply carries."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        stderr: Path,
        *,
        boot_timeout: float,
        reply_timeout: float,
        explain: Callable[[dict[str, Any]], str] = lambda reply: "",
    ) -> None:
        self.name, self.stderr = name, stderr
        self.output: list[str] = []
        self._reply_timeout, self._explain = reply_timeout, explain
        with stderr.open("wb") as errors:
            self._process = subprocess.Popen(  # noqa: S603 - node and our own script
                list(argv),
                cwd=PROJECT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._next_id = 0
        self.boot = self._reply(boot_timeout)

    def command(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one command; its reply, or the test fails with the child's error."""
        assert self._process.stdin is not None
        self._next_id += 1
        self._process.stdin.write(json.dumps({"id": self._next_id, "op": op, **fields}) + "\n")
        self._process.stdin.flush()
        reply = self._reply(self._reply_timeout)
        assert reply["id"] == self._next_id
        if not reply["ok"]:
            pytest.fail(f"{op} failed in {self.name}: {reply['error']}\n{self._explain(reply)}")
        return reply

    def close(self) -> int:
        """End of input: the child finishes and exits; its exit status (killed if it hangs)."""
        assert self._process.stdin is not None
        if not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            return self._process.wait(self._reply_timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()  # our own child, by its handle
            return self._process.wait()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)  # the child exited

    def _reply(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{self.name} gave no answer in {timeout} s\n{self.stderr.read_text()}")
        if line is None:
            code = self._process.wait()
            pytest.fail(f"{self.name} exited with {code}:\n{self.stderr.read_text()}")
        reply: dict[str, Any] = json.loads(line)
        return reply
