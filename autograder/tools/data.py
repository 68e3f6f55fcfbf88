"""`course data NAME [--from PATH]`: the course's datasets, verified by size and sha256.

`datasets/manifest.toml` records each dataset (file name, origin URL, sha256, size, and whether
the repository ships it). A dataset marked ``shipped`` lives in `datasets/` itself (tiny
Shakespeare, public-domain text, 1.1 MB): it works on a fresh clone with no network, in the
student template and in the grader's sandbox. Every other dataset lives in the cache,
`datasets/cache/` (git-ignored; `COURSE_DATA_CACHE` moves it), and gets there in one of three
ways, each verified before the file is used:

* ``course data NAME`` downloads it from its origin (with `pooch`);
* ``course data NAME --from PATH`` copies a local file;
* code that calls :func:`dataset_path` and finds ``COURSE_DATA_FROM`` set (a file, or a
  folder holding the dataset's file name) copies that file in on first use.

Either way the shipped copy is tried first and the checksum is checked. A file whose size or
checksum differs (truncated, corrupted, another version) is refused with a message that says
so; nothing unverified is ever used.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..weeks import ROOT

MANIFEST = ROOT / "datasets" / "manifest.toml"
ENV_FROM = "COURSE_DATA_FROM"
ENV_CACHE = "COURSE_DATA_CACHE"


class DatasetError(RuntimeError):
    """A dataset is unknown, unavailable, or failed verification (the message says which)."""


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str
    url: str
    sha256: str
    size: int
    description: str = ""
    shipped: bool = False  # the file is part of the repository, in datasets/


def load_manifest(path: Path | None = None) -> dict[str, Dataset]:
    with open(path or MANIFEST, "rb") as fh:
        table = tomllib.load(fh)
    return {name: Dataset(name=name, **fields) for name, fields in table.items()}


def get_dataset(name: str) -> Dataset:
    manifest = load_manifest()
    if name not in manifest:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(manifest))}")
    return manifest[name]


def cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or ROOT / "datasets" / "cache")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, ds: Dataset) -> None:
    """Raise `DatasetError` unless ``path`` is exactly the dataset of the manifest."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    size = path.stat().st_size
    if size != ds.size:
        kind = "truncated or an incomplete download" if size < ds.size else "not the expected file"
        raise DatasetError(
            f"{path} is {size:,} bytes, but {ds.name} is {ds.size:,} bytes: {kind}. Refusing to use it."
        )
    digest = sha256_of(path)
    if digest != ds.sha256:
        raise DatasetError(
            f"{path} has sha256 {digest}, but {ds.name} has sha256 {ds.sha256}: the file is corrupted "
            "or a different version. Refusing to use it."
        )


def _cached(ds: Dataset, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / ds.file


def shipped_path(ds: Dataset) -> Path | None:
    """The repository's own verified copy of ``ds``, if it ships one (raises `DatasetError`
    when the shipped file is missing or damaged: it is refused like any other)."""
    if not ds.shipped:
        return None
    path = MANIFEST.parent / ds.file
    verify(path, ds)
    return path


def _shipped_or_none(ds: Dataset) -> tuple[Path | None, str]:
    """(the shipped copy or None, why it could not be used)."""
    try:
        return shipped_path(ds), ""
    except DatasetError as exc:
        return None, f"The repository's own copy was refused: {exc} "


def install_from(name: str, source: Path, cache: Path | None = None) -> Path:
    """Verify a local copy and place it in the cache; returns the cached path."""
    ds = get_dataset(name)
    source = Path(source).expanduser()
    if source.is_dir():
        source = source / ds.file
    verify(source, ds)
    target = _cached(ds, cache)
    if target.exists() and target.resolve() == source.resolve():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Copy beside the target and rename: a crash never leaves half a file under the real name.
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
        with open(source, "rb") as fh:
            shutil.copyfileobj(fh, tmp)
    os.replace(tmp.name, target)
    return target


def _local_copy(url: str, output_file, pooch_instance=None) -> None:
    """A pooch downloader for ``file://`` URLs (mirrors, offline machines, tests)."""
    path = Path(unquote(urlparse(url).path))
    if not path.is_file():
        raise DatasetError(f"{url}: no such file")
    if isinstance(output_file, (str, os.PathLike)):
        shutil.copyfile(path, output_file)
    else:
        with open(path, "rb") as fh:
            shutil.copyfileobj(fh, output_file)


def download(name: str, url: str | None = None, cache: Path | None = None, progress: bool = True) -> Path:
    """Fetch a dataset from ``url`` (default: its origin) into the cache, verifying its sha256."""
    import pooch

    ds = get_dataset(name)
    url = url or ds.url
    target = _cached(ds, cache)
    target.parent.mkdir(parents=True, exist_ok=True)
    downloader = _local_copy if url.startswith("file:") else pooch.HTTPDownloader(progressbar=progress)
    try:
        fetched = pooch.retrieve(
            url,
            known_hash=f"sha256:{ds.sha256}",
            fname=ds.file,
            path=target.parent,
            downloader=downloader,
        )
    except ValueError as exc:  # pooch's checksum mismatch: it has already deleted the download
        raise DatasetError(
            f"the file downloaded from {url} does not match {ds.name}'s sha256 (corrupted, truncated or "
            f"changed upstream); nothing was saved. ({exc})"
        ) from None
    except DatasetError:
        raise
    except Exception as exc:  # network errors and the like
        raise DatasetError(
            f"could not download {ds.name} from {url}: {exc}. Without a network, copy the file from "
            f"elsewhere and run `course data {ds.name} --from PATH`."
        ) from None
    verify(Path(fetched), ds)
    return Path(fetched)


def dataset_path(name: str = "shakespeare", *, fetch: bool = False) -> Path:
    """The path of a verified copy of dataset ``name``.

    Takes the shipped copy, else looks in the cache, then at ``COURSE_DATA_FROM``; with
    ``fetch=True`` downloads it as a last resort. Raises `DatasetError` with the command to run when it is not available.
    """
    ds = get_dataset(name)
    shipped, problem = _shipped_or_none(ds)
    if shipped is not None:
        return shipped
    cached = _cached(ds)
    source = os.environ.get(ENV_FROM)
    if cached.exists():
        try:
            verify(cached, ds)  # a cache edited by hand is refused, not trusted
            return cached
        except DatasetError as exc:
            if not (source or fetch):
                raise DatasetError(f"{exc} Fetch it again with `course data {name}`.") from None
    if source:
        return install_from(name, Path(source))
    if fetch:
        return download(name)
    raise DatasetError(
        f"{problem}dataset {name!r} is not available. Fetch it with `course data {name}` (downloads it and "
        f"checks its sha256), or `course data {name} --from PATH` for a local copy, or set "
        f"{ENV_FROM}=PATH."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course data", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", help="dataset name (omit to list them)")
    parser.add_argument("--from", dest="source", help="take a local copy (verified) instead of downloading")
    parser.add_argument("--url", help="download from this URL instead of the origin (https:// or file://)")
    args = parser.parse_args(argv)
    if not args.name:
        for ds in load_manifest().values():
            state = "shipped" if ds.shipped else "cached" if _cached(ds).exists() else "not fetched"
            print(f"{ds.name:<14}{ds.size:>12,} bytes  {state:<12} {ds.description}")
        return 0
    try:
        shipped, problem = _shipped_or_none(get_dataset(args.name))
        if problem:
            print(f"course data: {problem.strip()} Fetching it instead.", file=sys.stderr)
        if args.source:
            path = install_from(args.name, Path(args.source))
        elif shipped is not None and not args.url:
            path = shipped  # nothing to fetch: the repository has it, verified just now
        else:
            path = download(args.name, url=args.url)
    except DatasetError as exc:
        print(f"course data: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: verified (sha256 ok) at {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
