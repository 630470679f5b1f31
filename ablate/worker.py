"""Several workers on one machine: one process per GPU (or N processes), each running the same worker loop.

Processes rather than threads: each worker needs its own CUDA device (``CUDA_VISIBLE_DEVICES`` is read
once, when CUDA starts) and its own heartbeat. They share the queue only through the study database,
exactly as workers on other machines do, so the exactly-once guarantee is the database's, not ours.
"""

from __future__ import annotations

import os
import signal
import subprocess


def gpu_ids(text: str) -> list[str]:
    """GPU ids from ``"0,1,3"``, or every GPU this machine has from ``"all"``; ValueError if none or malformed."""
    if text.strip() == "all":
        import torch

        ids = [str(i) for i in range(torch.cuda.device_count())]
        if not ids:
            raise ValueError("'all': this machine has no CUDA GPU")
        return ids
    ids = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"{text!r}: expected distinct GPU ids such as 0,1 or 'all'")
    return ids


def interrupt_on_sigterm() -> None:
    """Treat SIGTERM (pre-emption, ``kill``) like Ctrl-C.

    The running trial is then marked interrupted and its cell requeued at once, instead of staying RUNNING
    until its heartbeat goes stale.
    """

    def _interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)


def run_processes(argv: list[str], devices: list[str | None], env: dict[str, str] | None = None) -> int:
    """Run ``argv`` once per device (``CUDA_VISIBLE_DEVICES`` set to it; None leaves it) and wait for all.

    SIGTERM to this process is passed on to every worker; Ctrl-C reaches them from the terminal. Returns
    the worst exit status (a worker killed by signal N counts as 128 + N).
    """
    base = {**os.environ, **(env or {})}
    processes = [subprocess.Popen(argv, env=base if device is None else {**base, "CUDA_VISIBLE_DEVICES": device})
                 for device in devices]

    def _forward(signum, frame):
        for process in processes:
            process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, _forward)
    try:
        codes = []
        for process in processes:
            while True:
                try:
                    codes.append(process.wait())
                    break
                except KeyboardInterrupt:  # the workers got it too; wait for them to record it
                    continue
    finally:
        signal.signal(signal.SIGTERM, previous)
    return max(code if code >= 0 else 128 - code for code in codes)
