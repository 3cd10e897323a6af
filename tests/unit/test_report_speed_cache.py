"""The pages' script bundle kept between runs (chart_files.javascript_bundle with a cache file): vl-convert's
script exactly, read back only when the file is whole and from the same versions, built again otherwise."""

import hashlib

import pytest
import vl_convert
from altair.utils._importers import vl_version_for_vl_convert

from assets.report import chart_files
from assets.report.asset import bundle_cache_files


@pytest.fixture(scope="module")
def fresh() -> str:
    return vl_convert.javascript_bundle(vl_version=vl_version_for_vl_convert())


def no_building(monkeypatch) -> None:
    """From here on the bundle can only come from the cache file."""
    def fail(*args, **kwargs):
        raise AssertionError("the bundle was built instead of read from the cache")

    monkeypatch.setattr(chart_files.vl_convert, "javascript_bundle", fail)


def test_a_missing_cache_is_written_then_read(tmp_path, monkeypatch, fresh):
    cache = tmp_path / "work" / "vega_bundle.js"

    assert chart_files.javascript_bundle(cache) == fresh

    header, body = cache.read_bytes().split(b"\n", 1)
    assert body.decode("utf-8") == fresh
    assert header.decode("ascii") == (f"// script bundle cache: vl-convert {vl_convert.__version__}, Vega-Lite "
                                      f"{vl_version_for_vl_convert()}; sha256 {hashlib.sha256(body).hexdigest()}")
    assert [p.name for p in cache.parent.iterdir()] == ["vega_bundle.js"]  # no partial file left
    no_building(monkeypatch)
    assert chart_files.javascript_bundle(cache) == fresh


def damaged_copies() -> dict:
    def other_versions(content: bytes) -> bytes:
        header, body = content.split(b"\n", 1)
        return header.replace(b"vl-convert ", b"vl-convert 0.0.1-") + b"\n" + body

    return {
        "cut short": lambda content: content[:len(content) // 2],
        "one byte changed": lambda content: content[:-10] + bytes([content[-10] ^ 1]) + content[-9:],
        "other versions": other_versions,
        "no header": lambda content: content.split(b"\n", 1)[1],
        "empty": lambda content: b"",
        "not text": lambda content: b"\xff\xfe\x00garbage",
    }


@pytest.mark.parametrize("damage", list(damaged_copies()))
def test_a_damaged_or_outdated_cache_is_built_again(tmp_path, monkeypatch, fresh, damage):
    cache = tmp_path / "vega_bundle.js"
    chart_files.javascript_bundle(cache)
    whole = cache.read_bytes()
    cache.write_bytes(damaged_copies()[damage](whole))

    assert chart_files.javascript_bundle(cache) == fresh

    assert cache.read_bytes() == whole  # rewritten whole
    no_building(monkeypatch)
    assert chart_files.javascript_bundle(cache) == fresh


def test_a_cache_that_cannot_be_written_only_costs_time(tmp_path, fresh):
    blocker = tmp_path / "work"
    blocker.write_text("a file where the cache folder should be")

    assert chart_files.javascript_bundle(blocker / "vega_bundle.js") == fresh
    assert chart_files.javascript_bundle() == fresh  # and without a cache file at all
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_the_first_writable_cache_keeps_the_bundle_and_any_cache_that_holds_it_is_read(tmp_path, monkeypatch, fresh):
    """The user's cache folder first, the warehouse's work/ folder second (bundle_cache_files): a home that cannot
    be written leaves the bundle in work/, and a work/ file written by an earlier version is read, not rebuilt."""
    blocker = tmp_path / "home"
    blocker.write_text("a file where the user's cache folder should be")
    user, work = blocker / "vega_bundle.js", tmp_path / "work" / "vega_bundle.js"

    assert chart_files.javascript_bundle([user, work]) == fresh
    assert work.read_bytes().split(b"\n", 1)[1] == fresh.encode("utf-8")

    no_building(monkeypatch)
    assert chart_files.javascript_bundle([tmp_path / "missing" / "vega_bundle.js", work]) == fresh


def test_a_writable_user_cache_is_written_and_work_is_left_alone(tmp_path, fresh):
    user, work = tmp_path / "cache" / "vega_bundle.js", tmp_path / "work" / "vega_bundle.js"

    assert chart_files.javascript_bundle([user, work]) == fresh

    assert user.read_bytes().split(b"\n", 1)[1] == fresh.encode("utf-8")
    assert not work.parent.exists()


def test_the_user_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    database = tmp_path / "warehouse" / "work" / "shop.duckdb"
    monkeypatch.delenv("PERSONA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert bundle_cache_files(database) == [tmp_path / "xdg" / "persona-pipeline" / "vega_bundle.js",
                                            tmp_path / "warehouse" / "work" / "vega_bundle.js"]
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert bundle_cache_files(database)[0] == tmp_path / "home" / ".cache" / "persona-pipeline" / "vega_bundle.js"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # ignored, as XDG says
    assert bundle_cache_files(database)[0] == tmp_path / "home" / ".cache" / "persona-pipeline" / "vega_bundle.js"
    monkeypatch.setenv("PERSONA_CACHE_DIR", str(tmp_path / "mine"))
    assert bundle_cache_files(database)[0] == tmp_path / "mine" / "vega_bundle.js"


def test_a_user_without_a_home_keeps_the_bundle_in_work(tmp_path, monkeypatch):
    """No HOME and no passwd entry (a container's arbitrary uid): Path.home() raises; the report still runs."""
    def no_home():
        raise RuntimeError("Could not determine home directory.")

    for variable in ("PERSONA_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr("assets.report.asset.Path.home", staticmethod(no_home))
    assert bundle_cache_files(tmp_path / "work" / "shop.duckdb") == [tmp_path / "work" / "vega_bundle.js"]
