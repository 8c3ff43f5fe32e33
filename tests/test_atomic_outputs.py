"""Outputs appear whole or not at all: each command that writes a folder is made to fail late (after it
has computed or written most of its output) and the earlier good output must still be there, unchanged,
with no temporary folder left beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gelab.errors import GelabError

SMALL = "5,1"  # 11 pages: page_1 .. page_5 root the five subtrees the data stage needs


def _mark(folder: Path) -> Path:
    """A file that a rewrite of ``folder`` would remove."""
    marker = folder / "earlier-output.txt"
    marker.write_text("written by the earlier, good run\n")
    return marker


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _no_leftovers(folder: Path) -> None:
    stray = [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]
    assert stray == [], f"temporary folders left beside {folder}: {stray}"


def _fail(*args: object, **kwargs: object) -> None:
    raise GelabError("injected late failure")


@pytest.fixture(scope="module")
def small_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gelab.cli import main

    out = tmp_path_factory.mktemp("atomic") / "base"
    assert main(["env", "generate", "--branching", SMALL, "--out", str(out)]) == 0
    return out


def test_env_generate_with_a_bad_layout_names_the_parameter_and_keeps_the_folder(tmp_path: Path, run_cli) -> None:
    out = tmp_path / "base"
    run_cli("env", "generate", "--branching", "2,1", "--out", out, check=True)
    marker, before = _mark(out), _snapshot(out)
    params = tmp_path / "params.yaml"
    params.write_text("env:\n  branching: [2, 1]\n  back_box: [60, 60, 300, 600]\n")  # covers a grid slot
    result = run_cli("env", "generate", "--params", params, "--out", out)
    assert result.returncode == 2 and "env.back_box" in result.stderr and "ui_structure.json" not in result.stderr
    assert marker.exists() and _snapshot(out) == before
    _no_leftovers(out)


def test_env_generate_failing_after_rendering_keeps_the_folder(tmp_path: Path, run_cli, monkeypatch) -> None:
    import gelab.env.envdir as envdir

    out = tmp_path / "base"
    run_cli("env", "generate", "--branching", "2,1", "--out", out, check=True)
    marker, before = _mark(out), _snapshot(out)
    monkeypatch.setattr(envdir, "load_environment", _fail)  # the last step: reading the written folder back
    result = run_cli("env", "generate", "--branching", "2,1", "--seed", "5", "--out", out)
    assert result.returncode == 2 and "injected late failure" in result.stderr
    assert marker.exists() and _snapshot(out) == before
    _no_leftovers(out)


def test_env_variant_failing_after_rendering_keeps_the_folder(small_base: Path, tmp_path: Path, run_cli,
                                                               monkeypatch) -> None:
    import gelab.env.envdir as envdir

    out = tmp_path / "position"
    run_cli("env", "variant", "--base", small_base, "--kind", "position", "--out", out, check=True)
    marker, before = _mark(out), _snapshot(out)
    real = envdir.load_environment
    monkeypatch.setattr(envdir, "load_environment",
                        lambda root: real(root) if Path(root) == small_base else _fail())
    monkeypatch.setattr("gelab.cli.env.load_environment", envdir.load_environment)
    result = run_cli("env", "variant", "--base", small_base, "--kind", "position", "--seed", "9", "--out", out)
    assert result.returncode == 2 and "injected late failure" in result.stderr
    assert marker.exists() and _snapshot(out) == before
    _no_leftovers(out)


def test_data_build_failing_at_its_last_file_keeps_the_folder(small_base: Path, tmp_path: Path, run_cli,
                                                              monkeypatch) -> None:
    import gelab.data.datasets as datasets

    out = tmp_path / "data"
    run_cli("data", "build", "--env", small_base, "--out", out, check=True)
    marker, before = _mark(out), _snapshot(out)
    monkeypatch.setattr(datasets, "atomic_write_json", _fail)  # manifest.json is written last
    result = run_cli("data", "build", "--env", small_base, "--out", out)
    assert result.returncode == 2 and "injected late failure" in result.stderr
    assert marker.exists() and _snapshot(out) == before
    _no_leftovers(out)


def test_report_build_failing_at_its_last_plot_keeps_the_reports(tmp_path: Path, run_cli, monkeypatch) -> None:
    import report_fixtures as rf

    import gelab.report.build as build

    metrics = tmp_path / "metrics"
    rf.write(metrics, "sft", "static_ood", rf.static_metrics(60.0, 40.0, 50.0, 10.0))
    out = tmp_path / "reports"
    run_cli("report", "build", "--metrics", metrics, "--out", out, check=True)
    marker, before = _mark(out), _snapshot(out)
    rf.write(metrics, "sft", "static_ood", rf.static_metrics(70.0, 45.0, 55.0, 12.0))  # new numbers
    monkeypatch.setattr(build, "training_curves_plot", _fail)
    result = run_cli("report", "build", "--metrics", metrics, "--out", out)
    assert result.returncode == 2 and "injected late failure" in result.stderr
    assert marker.exists() and _snapshot(out) == before
    _no_leftovers(out / build.REPORT_MD)


def test_view_failing_at_the_case_studies_keeps_site_and_cases(small_env, small_logs, tmp_path: Path, run_cli,
                                                               monkeypatch) -> None:
    import gelab.report.viewer.cases as cases

    base, _ = small_env
    site, figures = tmp_path / "site", tmp_path / "cases"
    argv = ["view", "--env", base.root, "--out", site, "--cases", figures, "--quiet",
            *(a for m, log in small_logs.items() for a in ("--run", f"{m}={log}"))]
    run_cli(*argv, check=True)
    marks = [_mark(site), _mark(figures)]
    before = [_snapshot(site), _snapshot(figures)]
    monkeypatch.setattr(cases, "case_figure", _fail)
    result = run_cli(*argv)
    assert result.returncode == 2 and "injected late failure" in result.stderr
    assert all(m.exists() for m in marks) and [_snapshot(site), _snapshot(figures)] == before
    _no_leftovers(site)
    _no_leftovers(figures)
