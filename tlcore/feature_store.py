"""The feature store: frozen features kept on disk, so no run or sweep point computes the same ones twice.

Features at a freeze boundary depend only on the images, their size, the
backbone, its weights, the freeze point and the numeric precision; the head,
dropout, learning rate and epochs do not touch them. A run that changes only
those reads the features back in a fraction of a second instead of pushing
every image through VGG16 again (tens of seconds on a CPU).
Where: `TLLAB_CACHE_DIR`, else a `.features` folder inside the runs folder;
cap: `TLLAB_CACHE_MAX_MB` (default 2048). No TensorFlow here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import threading
import time
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tlcore import environment
from tlcore.backbones import NO_WEIGHTS, WeightsError, weights_identity
from tlcore.config import TrainConfig
from tlcore.environment import CACHE_DIR_ENV, CACHE_MAX_ENV
from tlcore.jsontypes import JSONObject
from tlcore.runs import default_runs_dir

log = logging.getLogger(__name__)

MB = 1 << 20  # how sizes are shown and TLLAB_CACHE_MAX_MB counts
DEFAULT_MAX_BYTES = 2048 * MB
STORE_FOLDER = ".features"  # inside the runs folder; RunStore lists only folders with a run.json
ENTRY_SUFFIX = ".npz"
KEY_VERSION = 1  # bump when what an entry holds changes: older entries then simply miss


@dataclass(frozen=True)
class FeatureKey:
    """Everything the frozen features depend on, and nothing else."""

    dataset: str  # tlcore.data.DatasetInfo.fingerprint(): every file's path, size and modification time
    image_size: int
    backbone: str
    weights: str  # tlcore.backbones.weights_identity (the file's content), or "random-seed-<n>"
    freeze_at: int
    precision: str  # the config's precision (a Keras dtype policy) the frozen layers computed in, e.g. "float32"

    @classmethod
    def of(cls, config: TrainConfig, dataset: str, freeze_at: int, image_size: int | None = None) -> FeatureKey:
        """The key of `config`'s frozen features at `freeze_at` on a dataset with fingerprint `dataset`.

        Raises:
            WeightsError: the weights file is missing (there is nothing to identify).
        """
        weights = weights_identity(config.weights)
        if weights == NO_WEIGHTS:
            weights = f"random-seed-{config.seed}"  # build_for draws random weights from the config's seed
        return cls(dataset, image_size or config.image_size, config.backbone, weights, freeze_at, config.precision)

    @property
    def digest(self) -> str:
        text = json.dumps({"version": KEY_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class StoredFeatures:
    """One entry read back: the features of both splits and when they were computed."""

    train: np.ndarray
    validation: np.ndarray
    created: float  # seconds since the epoch

    @property
    def created_text(self) -> str:
        return format_time(self.created)


@dataclass(frozen=True)
class StoreEntry:
    """An entry as the Runs page and `tlcore cache` list it."""

    path: Path
    bytes: int
    last_used: float
    key: JSONObject  # FeatureKey's fields; {} for an entry that cannot be read

    @property
    def summary(self) -> str:
        """One line for people: what the features are, their size and when they were last used."""
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.last_used))
        what = (
            f"{self.key['image_size']} px, freeze point {self.key['freeze_at']}, {self.key['precision']}"
            if self.key
            else "unreadable entry"
        )
        return f"{what} · {self.bytes / MB:.1f} MB · last used {used}"


class FeatureStore:
    """Frozen features on disk under `root`, at most `max_bytes` in all (least recently used go first).

    An entry is one uncompressed `.npz` file named by the hash of its key: the
    training and validation features and the key itself (checked on reading).
    Writes go to a temporary file renamed into place, so a reader sees a whole
    entry or none, and two processes writing the same key both leave a whole
    file. A damaged or partial entry is reported once, removed and rebuilt.
    Reading an entry marks it used (its modification time); when the store
    grows past its cap, the least recently used entries go first.
    """

    def __init__(self, root: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.problems: list[str] = []  # damaged entries met, each reported once
        self._lock = threading.Lock()

    @classmethod
    def default(cls, runs_dir: str | os.PathLike | None = None) -> FeatureStore:
        """TLLAB_CACHE_DIR, else `.features` inside the runs folder; the cap from TLLAB_CACHE_MAX_MB."""
        root = environment.text(CACHE_DIR_ENV) or Path(runs_dir or default_runs_dir()) / STORE_FOLDER
        return cls(Path(root).expanduser(), max_bytes_from_env())

    def path_of(self, key: FeatureKey) -> Path:
        return self.root / f"{key.digest}{ENTRY_SUFFIX}"

    def has(self, key: FeatureKey) -> bool:
        """Whether an entry for `key` is on disk (without reading it)."""
        return self.path_of(key).is_file()

    def get(self, key: FeatureKey) -> StoredFeatures | None:
        """The stored features for `key`, or None (missing, or damaged: then reported once and removed)."""
        path = self.path_of(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as entry:
                stored_key = json.loads(str(entry["key"]))
                if stored_key != asdict(key):
                    raise ValueError(f"it holds other features ({stored_key})")
                features = StoredFeatures(entry["train"], entry["validation"], float(entry["created"]))
        except FileNotFoundError:  # evicted or cleared by another process just now
            return None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            self._report(f"Feature store entry {path} is damaged ({err or type(err).__name__}): computing it again.")
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # used now: the last to be evicted
        return features

    def put(self, key: FeatureKey, train: np.ndarray, validation: np.ndarray, created: float | None = None) -> Path:
        """Store the features atomically, then evict the least recently used entries beyond the cap.

        Args:
            created: when they were computed (seconds since the epoch; default now).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path_of(key)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{ENTRY_SUFFIX}")
        try:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    key=np.array(json.dumps(asdict(key))),
                    created=np.array(time.time() if created is None else created),
                    train=np.ascontiguousarray(train),
                    validation=np.ascontiguousarray(validation),
                )
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.evict(keep=path)
        return path

    def entries(self) -> list[StoreEntry]:
        """Every whole entry, most recently used first."""
        found = []
        for path in self._files():
            try:
                stat = path.stat()
                with np.load(path, allow_pickle=False) as entry:
                    key = json.loads(str(entry["key"]))
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                key = {}  # listed (it takes space) but unreadable; reading it by key removes it
                stat = path.stat()
            found.append(StoreEntry(path, stat.st_size, stat.st_mtime, key))
        return sorted(found, key=lambda e: e.last_used, reverse=True)

    def total_bytes(self) -> int:
        return sum(_size(path) for path in self._files())

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove least recently used entries until the store fits its cap (never `keep`)."""
        with self._lock:
            files = sorted(self._files(), key=_mtime)
            total = sum(_size(path) for path in files)
            removed = []
            for path in files:
                if total <= self.max_bytes:
                    break
                if path == keep:
                    continue
                total -= _size(path)
                path.unlink(missing_ok=True)
                removed.append(path)
            return removed

    def clear(self) -> tuple[int, int]:
        """Remove every entry: (entries removed, bytes freed)."""
        count = freed = 0
        for path in self._files():
            size = _size(path)
            path.unlink(missing_ok=True)
            count, freed = count + 1, freed + size
        return count, freed

    def _files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if p.suffix == ENTRY_SUFFIX and not p.name.startswith(".")]

    def _report(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)
            log.warning(message)


def format_time(seconds: float) -> str:
    """A moment as run records and the Train page show when features were computed (local time)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def features_stored(store: FeatureStore, config: TrainConfig, dataset: str) -> frozenset[int]:
    """The freeze points of `config`'s phases whose features (float32) the store holds for a dataset fingerprint.

    A second phase's frozen layers still hold the starting weights (the first phase trains above them), so its
    features have the same key as a first phase's at that point.
    """
    points = {config.freeze_at} | ({config.fine_tune.freeze_at} if config.fine_tune else set())
    try:
        return frozenset(p for p in points if store.has(FeatureKey.of(config, dataset, p)))
    except WeightsError:
        return frozenset()


def max_bytes_from_env(env: Mapping[str, str] = os.environ) -> int:
    """The cap TLLAB_CACHE_MAX_MB sets (default 2 GiB).

    Raises:
        ValueError: the variable is set but is not a whole number of megabytes >= 0.
    """
    text = environment.text(CACHE_MAX_ENV, env).strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        megabytes = int(text)
    except ValueError:
        megabytes = -1
    if megabytes < 0:
        raise ValueError(f"{CACHE_MAX_ENV} must be a whole number of megabytes (0 or more). Received: {text!r}")
    return megabytes * MB


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
