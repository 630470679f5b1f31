"""Artifacts on the Hugging Face hub, fetched at a pinned revision into the local hub cache.

Every remote thing the ``paper`` profile needs (the base model, the training triplets, each evaluation
dataset) is a ``HubArtifact``. ``fetch`` returns a local directory: the user's own copy when one is
configured, else the hub cache's snapshot of the pinned revision. With ``HF_HUB_OFFLINE=1`` the cache is
used as is, so a machine without network runs from what ``ablate fetch`` (or ``hf download``) put there.
A miss is one line naming the artifact, its revision and the command that pre-downloads it.

Loading always goes through the local directory (``datasets`` does not read a bare hub-cache snapshot
offline), so one mechanism serves online runs, offline runs and local copies alike.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class FetchError(RuntimeError):
    """An artifact that cannot be had here; the message says which one and how to pre-download it."""


@dataclass(frozen=True)
class HubArtifact:
    """A hub repository at a revision, optionally restricted to some files.

    ``revision`` None means the branch head, resolved to a commit when fetched (``resolved_revision``).
    ``configs`` restricts a dataset to the files of those configs (read from its README's ``configs``);
    ``local`` is the user's own copy in the same layout, used instead of the hub when set.
    """

    repo_id: str
    kind: str  # "model" or "dataset"
    revision: str | None = None
    purpose: str = ""
    configs: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    local: str | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.repo_id}@{self.revision or 'main'}"

    def download_command(self) -> str:
        """The shell command that puts this artifact into the hub cache, for the user to run online."""
        parts = ["hf download", self.repo_id]
        if self.kind == "dataset":
            parts.append("--repo-type dataset")
        if self.revision:
            parts.append(f"--revision {self.revision}")
        for pattern in self.patterns:
            parts.append(f"--include '{pattern}'")
        return " ".join(parts)

    def fetch(self) -> Path:
        """The local directory holding this artifact (downloading it unless the hub is offline)."""
        if self.local:
            path = Path(self.local).expanduser()
            if not path.is_dir():
                raise FetchError(f"{self.purpose or self.label}: local copy {path} is not a directory")
            return path
        from huggingface_hub import snapshot_download

        patterns = list(self.patterns) or None
        if self.configs and not patterns:
            patterns = self._config_patterns()
        try:
            return Path(snapshot_download(self.repo_id, repo_type=self.kind, revision=self.revision,
                                          allow_patterns=patterns, local_files_only=not hub_reachable()))
        except Exception as err:  # offline, unreachable, gated, missing revision: the user's remedy is the same
            raise FetchError(self._miss_message(err)) from None

    def _config_patterns(self) -> list[str]:
        """Only the files of ``configs`` (from the dataset card's ``configs`` YAML), plus the card itself."""
        from huggingface_hub import hf_hub_download

        try:
            card = Path(hf_hub_download(self.repo_id, "README.md", repo_type=self.kind, revision=self.revision,
                                        local_files_only=not hub_reachable()))
        except Exception as err:
            raise FetchError(self._miss_message(err)) from None
        files = data_files_of(card, self.configs)
        return ["README.md", *files] if files else None

    def _miss_message(self, err: Exception) -> str:
        if _offline_by_choice():
            why = "offline (HF_HUB_OFFLINE=1) and not in the hub cache"
        elif not hub_reachable():
            why = "the hub is unreachable from here and it is not in the hub cache"
        else:
            why = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
        return (f"paper profile: cannot fetch {self.purpose or self.kind} {self.repo_id}@{self.revision or 'main'}: "
                f"{why}; pre-download it where the hub is reachable (`ablate fetch STUDY --profile paper`, or "
                f"`{self.download_command()}`), then rerun (HF_HUB_OFFLINE=1 is fine) with the same HF_HOME, or "
                f"point ablate at a local copy")


def _offline_by_choice() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host accepts a connection (checked once per process).

    Without it, huggingface_hub retries an unreachable host for about 25 s per file before falling back
    to the cache; with it, a machine without network goes straight to the cache (or to a one-line miss).
    """
    if _offline_by_choice():
        return False
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


def data_files_of(card: Path, configs: tuple[str, ...]) -> list[str]:
    """The ``data_files`` paths that a dataset card's YAML header declares for ``configs`` ([] if none)."""
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return []
    header = text.split("---", 2)[1]
    meta = yaml.safe_load(header) or {}
    out = []
    for config in meta.get("configs", []) or []:
        if config.get("config_name") not in configs:
            continue
        data_files = config.get("data_files", [])
        if isinstance(data_files, str):
            data_files = [data_files]
        for entry in data_files:
            paths = entry.get("path") if isinstance(entry, dict) else entry
            out.extend([paths] if isinstance(paths, str) else list(paths or []))
    return out


def snapshot_revision(path: Path) -> str | None:
    """The commit a hub-cache snapshot directory holds (its name), or None for a user's own directory."""
    parts = Path(path).resolve().parts
    if len(parts) >= 2 and parts[-2] == "snapshots" and len(parts[-1]) == 40:
        return parts[-1]
    return None
