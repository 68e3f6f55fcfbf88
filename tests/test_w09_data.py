"""`course data`: verified downloads, `--from` copies, and refusal of bad files.

A synthetic dataset in a temporary manifest stands in for tiny Shakespeare, so these tests
need neither the network nor the real file. Downloads go through a local ``file://`` URL
and through a stand-in for pooch's HTTP downloader.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pooch
import pytest

from autograder.tools import data

CONTENT = ("It is a tale told by an idiot, full of sound and fury, signifying nothing.\n" * 200).encode()


@pytest.fixture
def dataset(tmp_path, monkeypatch) -> Path:
    """A manifest with one dataset, 'tale'; an empty cache; COURSE_DATA_FROM unset."""
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(
        "[tale]\n"
        'file = "tale.txt"\n'
        'url = "https://example.org/tale.txt"\n'
        f'sha256 = "{hashlib.sha256(CONTENT).hexdigest()}"\n'
        f"size = {len(CONTENT)}\n"
    )
    monkeypatch.setattr(data, "MANIFEST", manifest)
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(data.ENV_FROM, raising=False)
    good = tmp_path / "good.txt"
    good.write_bytes(CONTENT)
    return good


def _cache(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "tale.txt"


def test_from_copies_a_verified_file(dataset, tmp_path, capsys):
    assert data.main(["tale", "--from", str(dataset)]) == 0
    assert _cache(tmp_path).read_bytes() == CONTENT
    assert "verified" in capsys.readouterr().out
    assert data.dataset_path("tale") == _cache(tmp_path)


def test_from_accepts_a_folder_holding_the_file(dataset, tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "tale.txt").write_bytes(CONTENT)
    assert data.main(["tale", "--from", str(folder)]) == 0
    assert _cache(tmp_path).exists()


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda b: b[:1000], "truncated"),
        (lambda b: b[:500] + b"X" + b[501:], "corrupted"),
        (lambda b: b + b"more", "not the expected file"),
    ],
    ids=["truncated", "one byte changed", "too long"],
)
def test_bad_files_are_refused(dataset, tmp_path, capsys, damage, words):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(damage(CONTENT))
    assert data.main(["tale", "--from", str(bad)]) == 1
    err = capsys.readouterr().err
    assert words in err and "Refusing" in err
    assert not _cache(tmp_path).exists(), "an unverified file reached the cache"


def test_download_from_a_file_url(dataset, tmp_path):
    path = data.download("tale", url=dataset.resolve().as_uri())
    assert path == _cache(tmp_path) and path.read_bytes() == CONTENT


def test_corrupted_download_is_refused_and_not_kept(dataset, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(CONTENT[:-1] + b"?")
    assert data.main(["tale", "--url", bad.resolve().as_uri()]) == 1
    assert "does not match" in capsys.readouterr().err
    assert not _cache(tmp_path).exists()


def test_https_download_goes_through_pooch(dataset, tmp_path, monkeypatch):
    """The origin URL is fetched by pooch's HTTP downloader (replaced here: no network)."""
    calls = []

    class FakeHTTP:
        def __init__(self, progressbar=False):
            pass

        def __call__(self, url, output_file, pooch_instance):
            calls.append(url)
            Path(output_file).write_bytes(CONTENT)

    monkeypatch.setattr(pooch, "HTTPDownloader", FakeHTTP)
    assert data.main(["tale"]) == 0
    assert calls == ["https://example.org/tale.txt"]
    assert _cache(tmp_path).read_bytes() == CONTENT
    # A second call finds the verified file and downloads nothing.
    assert data.main(["tale"]) == 0 and len(calls) == 1


def test_network_failure_says_what_to_do(dataset, monkeypatch, capsys):
    class Offline:
        def __init__(self, progressbar=False):
            pass

        def __call__(self, url, output_file, pooch_instance):
            raise ConnectionError("no route to host")

    monkeypatch.setattr(pooch, "HTTPDownloader", Offline)
    assert data.main(["tale"]) == 1
    assert "--from PATH" in capsys.readouterr().err


def test_dataset_path_honours_the_environment(dataset, tmp_path, monkeypatch):
    with pytest.raises(data.DatasetError, match="course data tale"):
        data.dataset_path("tale")
    monkeypatch.setenv(data.ENV_FROM, str(dataset))
    assert data.dataset_path("tale").read_bytes() == CONTENT


def test_a_damaged_cache_is_not_trusted(dataset, tmp_path):
    data.install_from("tale", dataset)
    _cache(tmp_path).write_bytes(CONTENT[:10])
    with pytest.raises(data.DatasetError, match="course data tale"):
        data.dataset_path("tale")


def test_unknown_dataset_and_listing(dataset, capsys):
    assert data.main(["nope"]) == 1
    assert "unknown dataset" in capsys.readouterr().err
    assert data.main([]) == 0
    assert "tale" in capsys.readouterr().out


def test_course_manifest_describes_tiny_shakespeare():
    ds = data.load_manifest(data.ROOT / "datasets" / "manifest.toml")["shakespeare"]
    assert ds.sha256 == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    assert ds.size == 1_115_394 and ds.url.startswith("https://")
    assert ds.shipped


def test_tiny_shakespeare_ships_with_the_course(monkeypatch, tmp_path, capsys):
    """No network, no cache, no variable: the repository's own copy, checked by sha256."""
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path / "empty"))
    monkeypatch.delenv(data.ENV_FROM, raising=False)
    path = data.dataset_path("shakespeare")
    assert path == data.ROOT / "datasets" / "tinyshakespeare.txt"
    assert data.sha256_of(path) == data.get_dataset("shakespeare").sha256
    assert data.main(["shakespeare"]) == 0  # nothing to fetch
    assert "verified" in capsys.readouterr().out and not (tmp_path / "empty").exists()


def test_a_damaged_shipped_copy_is_refused_and_fetched_instead(dataset, tmp_path, monkeypatch, capsys):
    manifest = data.MANIFEST
    manifest.write_text(manifest.read_text() + "shipped = true\n")
    (manifest.parent / "tale.txt").write_bytes(CONTENT[:-1] + b"!")  # one byte changed
    with pytest.raises(data.DatasetError, match="own copy was refused.*course data tale"):
        data.dataset_path("tale")
    monkeypatch.setenv(data.ENV_FROM, str(dataset))
    assert data.dataset_path("tale").read_bytes() == CONTENT  # the verified fallback
    monkeypatch.delenv(data.ENV_FROM)
    assert data.main(["tale", "--url", dataset.as_uri()]) == 0
    assert data.main(["tale"]) == 1 or "refused" in capsys.readouterr().err
