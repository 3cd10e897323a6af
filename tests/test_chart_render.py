"""Chart files: drawn partly in a child process (assets/chart_render.py), with the same bytes as in-process."""

import pytest

from assets import chart_render, report_charts


def bar_spec(title: str) -> dict:
    return {"title": title, "data": {"values": [{"segment": "年轻白领族", "customers": 3},
                                                {"segment": "Family shoppers", "customers": 5}]},
            "mark": "bar", "encoding": {"x": {"field": "segment", "type": "nominal"},
                                        "y": {"field": "customers", "type": "quantitative"}}}


def test_chart_files_of_every_language_match_in_process_rendering(tmp_path, monkeypatch):
    monkeypatch.setattr(report_charts.os, "cpu_count", lambda: 2)  # the child process is used
    specs = {"zh": {"sizes": bar_spec("客群规模")}, "en": {"sizes": bar_spec("Segment sizes")}}
    stale = tmp_path / "charts" / "history_en.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")

    written = report_charts.write_chart_files(specs, tmp_path / "charts")

    assert sorted(p.name for p in written) == ["sizes_en.png", "sizes_en.svg", "sizes_zh.png", "sizes_zh.svg"]
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == sorted(p.name for p in written)
    for language in ("zh", "en"):
        png, svg = chart_render.render(specs[language]["sizes"])
        assert (tmp_path / "charts" / f"sizes_{language}.png").read_bytes() == png
        assert (tmp_path / "charts" / f"sizes_{language}.svg").read_bytes() == svg
    assert (tmp_path / "charts" / "sizes_zh.png").read_bytes().startswith(b"\x89PNG")
    assert "客群规模" in (tmp_path / "charts" / "sizes_zh.svg").read_text(encoding="utf-8")


def test_a_chart_the_child_cannot_draw_fails_the_run_with_its_error(tmp_path, monkeypatch):
    monkeypatch.setattr(report_charts.os, "cpu_count", lambda: 2)
    broken = {"data": {"values": [{"a": 1}]}, "mark": "no_such_mark", "encoding": {}}
    specs = {"zh": {"sizes": broken}, "en": {"sizes": bar_spec("Segment sizes")}}

    with pytest.raises(RuntimeError, match="child process failed") as failure:
        report_charts.write_chart_files(specs, tmp_path / "charts")

    assert "sizes_zh: Vega-Lite to SVG conversion failed" in str(failure.value)
    assert not (tmp_path / "charts" / "sizes_zh.png").exists()
