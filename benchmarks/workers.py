"""A benchmark worker process, driven one JSON line at a time (``run.py --worker``'s protocol)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


class Worker:
    """One implementation served by a ``run.py --worker`` process started with ``command``."""

    def __init__(self, name: str, command: list[str], env: dict):
        self.name = name
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker {self.name!r} died (exit code {self.proc.wait()})")
        return json.loads(line)

    def close(self, kill: bool = False) -> None:
        if kill:  # interrupted or failed: don't wait for a run in progress
            self.proc.kill()
        self.proc.stdin.close()
        self.proc.wait()


class Spinner:
    """An unrelated process that keeps one core busy until :meth:`stop` (a busy machine)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])

    def stop(self) -> float:
        """Stop it; returns the CPU seconds it used (how busy it kept its core)."""
        self.proc.kill()
        _, _, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = -9
        return round(usage.ru_utime + usage.ru_stime, 2)
