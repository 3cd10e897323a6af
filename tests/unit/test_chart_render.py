"""Chart files: drawn by this process and a helper process (assets/report/chart_render.py) sharing the charts, with the
same bytes whichever process draws a chart and whatever it drew before; and the failures of either process."""

import subprocess
import sys

import pytest
import vl_convert

from assets.report import chart_files, chart_render


def bar_spec(title: str) -> dict:
    return {"title": title, "data": {"values": [{"segment": "年轻白领族", "customers": 3},
                                                {"segment": "Family shoppers", "customers": 5}]},
            "mark": "bar", "encoding": {"x": {"field": "segment", "type": "nominal"},
                                        "y": {"field": "customers", "type": "quantitative"}}}


def heatmap_spec(title: str) -> dict:
    """A continuous colour legend: Vega draws it with a gradient, whose SVG id comes from a process-wide counter."""
    return {"title": title, "data": {"values": [{"a": "x", "b": "y", "n": 1}, {"a": "y", "b": "x", "n": 9}]},
            "mark": "rect", "encoding": {"x": {"field": "a", "type": "nominal"},
                                         "y": {"field": "b", "type": "nominal"},
                                         "color": {"field": "n", "type": "quantitative"}}}


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(chart_files.os, "cpu_count", lambda: 2)  # the helper process is used


def test_chart_files_of_every_language_match_in_process_rendering(tmp_path, two_cores):
    specs = {"zh": {"sizes": bar_spec("客群规模"), "categories": heatmap_spec("品类偏好")},
             "en": {"sizes": bar_spec("Segment sizes"), "categories": heatmap_spec("Category preference")}}
    stale = tmp_path / "charts" / "history_en.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")

    written = chart_files.write_chart_files(specs, tmp_path / "charts")

    expected = [f"{key}_{language}.{ext}" for language in specs for key in specs[language] for ext in ("png", "svg")]
    assert [p.name for p in written] == expected  # in the order of the specs, whoever drew them
    # The stale chart is gone, and neither claims nor partial files are left behind.
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == sorted(expected)
    for language in ("zh", "en"):
        for key in ("sizes", "categories"):
            png, svg = chart_render.render(specs[language][key])
            assert (tmp_path / "charts" / f"{key}_{language}.png").read_bytes() == png
            assert (tmp_path / "charts" / f"{key}_{language}.svg").read_bytes() == svg
        # Both heatmaps carry the first gradient id, whichever process drew them and after what.
        assert 'id="gradient_0"' in (tmp_path / "charts" / f"categories_{language}.svg").read_text(encoding="utf-8")
    assert (tmp_path / "charts" / "sizes_zh.png").read_bytes().startswith(b"\x89PNG")
    assert "客群规模" in (tmp_path / "charts" / "sizes_zh.svg").read_text(encoding="utf-8")


def test_one_process_draws_the_same_files(tmp_path, monkeypatch):
    monkeypatch.setattr(chart_files.os, "cpu_count", lambda: 1)
    specs = {"zh": {"categories": heatmap_spec("品类偏好")}, "en": {"categories": heatmap_spec("Category")}}

    chart_files.write_chart_files(specs, tmp_path / "charts")

    for language in specs:
        png, svg = chart_render.render(specs[language]["categories"])
        assert (tmp_path / "charts" / f"categories_{language}.svg").read_bytes() == svg
        assert (tmp_path / "charts" / f"categories_{language}.png").read_bytes() == png


def test_ids_are_those_of_a_fresh_process():
    spec = heatmap_spec("Category")
    first, second = vl_convert.vegalite_to_svg(spec), vl_convert.vegalite_to_svg(spec)
    assert first != second  # vl-convert's own output depends on what the process drew before
    assert chart_render.renumber_ids(first) == chart_render.renumber_ids(second)
    assert chart_render.render(spec) == chart_render.render(spec)
    assert chart_render.renumber_ids(first).count("gradient_0") == 2  # the definition and its use

    svg = ('<g clip-path="url(#clip7)"><path fill="url(#gradient_5)"/><path fill="url(#p_gradient_6)"/>'
           '<defs><linearGradient id="gradient_5"/><radialGradient id="p_gradient_6"/><clipPath id="clip7"/>'
           '</defs><text>gradient_5 clip7</text></g>')
    assert chart_render.renumber_ids(svg) == (
        '<g clip-path="url(#clip1)"><path fill="url(#gradient_0)"/><path fill="url(#p_gradient_1)"/>'
        '<defs><linearGradient id="gradient_0"/><radialGradient id="p_gradient_1"/><clipPath id="clip1"/>'
        '</defs><text>gradient_5 clip7</text></g>')  # text that only looks like an id is left alone
    assert chart_render.renumber_ids('<svg id="gradient_0"/>') == '<svg id="gradient_0"/>'


def test_each_chart_is_claimed_by_one_process(tmp_path):
    assert chart_render.claim(tmp_path, 0)
    assert not chart_render.claim(tmp_path, 0)
    assert [job["stem"] for job in chart_render.claimed([{"stem": "a"}, {"stem": "b"}], tmp_path)] == ["b"]


def test_a_chart_the_helper_cannot_draw_fails_the_run_with_its_error(tmp_path, two_cores, monkeypatch):
    monkeypatch.setattr(chart_render, "claim", lambda claims_dir, index: False)  # this process draws nothing
    broken = {"data": {"values": [{"a": 1}]}, "mark": "no_such_mark", "encoding": {}}
    specs = {"zh": {"sizes": broken}, "en": {"sizes": bar_spec("Segment sizes")}}

    with pytest.raises(RuntimeError, match="child process failed") as failure:
        chart_files.write_chart_files(specs, tmp_path / "charts")

    assert "sizes_zh: Vega-Lite to SVG conversion failed" in str(failure.value)
    assert not (tmp_path / "charts" / "sizes_zh.png").exists()


def test_when_this_process_fails_the_helper_stops_and_the_error_is_kept(tmp_path, two_cores, monkeypatch):
    def fail(spec, stem):
        raise ValueError(f"cannot draw {stem.name}")

    monkeypatch.setattr(chart_render, "write_chart", fail)  # only in this process: the helper draws normally
    specs = {language: {f"chart{i}": bar_spec(f"{language} {i}") for i in range(8)} for language in ("zh", "en")}

    with pytest.raises(ValueError, match="cannot draw"):
        chart_files.write_chart_files(specs, tmp_path / "charts")

    # This process claimed every chart left as it failed: the helper finished at most the charts it had started.
    drawn = list((tmp_path / "charts").glob("*.png"))
    assert len(drawn) < 16
    assert not list((tmp_path / "charts").glob("*.partial"))


def fake_helper(monkeypatch, script: str) -> None:
    monkeypatch.setattr(chart_files, "_start_helper", lambda: subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))


def test_the_helper_finding_no_cjk_font_fails_with_instructions(tmp_path, two_cores, monkeypatch):
    fake_helper(monkeypatch, "import sys; print('fonts missing', flush=True); sys.stdin.readline()")

    with pytest.raises(chart_files.MissingCjkFontError, match="fonts-noto-cjk"):
        chart_files.write_chart_files({"zh": {"sizes": bar_spec("客群规模")}}, tmp_path / "charts")

    assert not (tmp_path / "charts" / "sizes_zh.png").exists()


def test_a_helper_dying_at_start_fails_the_run_with_its_error(tmp_path, two_cores, monkeypatch):
    fake_helper(monkeypatch, "import sys; sys.exit('no vl-convert here')")

    with pytest.raises(RuntimeError, match="no vl-convert here"):
        chart_files.write_chart_files({"zh": {"sizes": bar_spec("客群规模")}}, tmp_path / "charts")


def test_the_helper_exits_when_the_report_fails_before_its_charts(two_cores):
    with pytest.raises(KeyError), chart_files.ChartFileWriter() as writer:
        helper = writer._helper
        raise KeyError("the warehouse could not be read")
    assert helper.returncode == 0  # waited for: it saw the end of its input and drew nothing
