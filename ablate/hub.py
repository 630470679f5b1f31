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
import hashlib
import json
import os
import shutil
import socket
import tempfile
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
        includes = list(self.patterns) or ([f"*{config}*" for config in self.configs] + ["README.md"]
                                           if self.configs else [])
        for pattern in includes:
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
            snapshot = Path(snapshot_download(self.repo_id, repo_type=self.kind, revision=self.revision,
                                              allow_patterns=patterns, local_files_only=not hub_reachable()))
        except Exception as err:  # offline, unreachable, gated, missing revision: the user's remedy is the same
            raise FetchError(self._miss_message(err)) from None
        if self.configs and patterns:
            return config_view(snapshot, self.configs)
        return snapshot

    def _config_patterns(self) -> list[str] | None:
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
    """Whether the hub (or the proxy the environment routes it through) accepts a connection; checked
    once per process.

    Without it, huggingface_hub retries an unreachable host for about 25 s per file before falling back
    to the cache; with it, a machine without network goes straight to the cache (or to a one-line miss).
    Name resolution can hang on its own, so the whole check runs in a thread bounded by ``timeout``.
    """
    if _offline_by_choice():
        return False
    import threading
    import urllib.request
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    answer: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])


def _card_header(card: Path) -> dict:
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}
    return yaml.safe_load(text.split("---", 2)[1]) or {}


def data_files_of(card: Path, configs: tuple[str, ...], split: str | None = None) -> list[str]:
    """The ``data_files`` paths that a dataset card's YAML header declares for ``configs`` (only ``split``'s
    when given; [] if none)."""
    out = []
    for config in _card_header(card).get("configs", []) or []:
        if config.get("config_name") not in configs:
            continue
        data_files = config.get("data_files", [])
        if isinstance(data_files, str):
            data_files = [data_files]
        for entry in data_files:
            if split is not None and isinstance(entry, dict) and entry.get("split", split) != split:
                continue
            paths = entry.get("path") if isinstance(entry, dict) else entry
            out.extend([paths] if isinstance(paths, str) else list(paths or []))
    return out


def config_view(snapshot: Path, configs: tuple[str, ...]) -> Path:
    """A directory with only ``configs`` of a dataset snapshot: links to their files and a card naming just
    them.

    A partial download keeps the full card, and ``datasets`` picks a local dataset's file format from the
    card's *first* config, which for a multilingual mteb set (``ar-corpus`` before ``en-corpus``) was not
    downloaded; the view makes the card agree with the files. Views live under ``$ABLATE_CACHE/hub-views``
    (default ``.ablate``), keyed by repository, commit and configs, and are built once, atomically.
    """
    card = snapshot / "README.md"
    if not card.is_file():
        return snapshot
    meta = _card_header(card)
    declared = [c for c in meta.get("configs", []) or [] if c.get("config_name") in configs]
    if not declared:
        return snapshot
    key = hashlib.sha256(json.dumps([str(snapshot.resolve()), sorted(configs)]).encode()).hexdigest()[:20]
    root = Path(os.environ.get("ABLATE_CACHE", ".ablate")) / "hub-views"
    view = root / f"{snapshot.name[:12]}-{key}"
    if view.is_dir():
        return view
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{view.name}.", dir=root))
    for pattern in data_files_of(card, configs):
        for source in snapshot.glob(pattern):
            if source.is_file():
                target = staging / source.relative_to(snapshot)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(source.resolve())
    trimmed = {"configs": declared}
    if isinstance(meta.get("dataset_info"), list):
        trimmed["dataset_info"] = [i for i in meta["dataset_info"] if i.get("config_name") in configs]
    (staging / "README.md").write_text("---\n" + yaml.safe_dump(trimmed, sort_keys=False) + "---\n")
    (staging / SOURCE_FILE).write_text(json.dumps({"snapshot": str(snapshot), "revision": snapshot_revision(snapshot)}))
    try:
        staging.rename(view)
    except OSError:  # another worker built it first
        shutil.rmtree(staging, ignore_errors=True)
    return view


SOURCE_FILE = ".ablate-source.json"


def cached_head(repo_id: str, kind: str, branch: str = "main") -> str | None:
    """The commit the local hub cache holds for ``branch`` of a repository (no network), or None."""
    from huggingface_hub import constants

    ref = Path(constants.HF_HUB_CACHE) / f"{kind}s--{repo_id.replace('/', '--')}" / "refs" / branch
    return ref.read_text().strip() if ref.is_file() else None


def snapshot_revision(path: Path) -> str | None:
    """The commit a hub-cache snapshot directory (or a view of one) holds, or None for a user's own directory."""
    source = Path(path) / SOURCE_FILE
    if source.is_file():
        return json.loads(source.read_text()).get("revision")
    parts = Path(path).resolve().parts
    if len(parts) >= 2 and parts[-2] == "snapshots" and len(parts[-1]) == 40:
        return parts[-1]
    return None
