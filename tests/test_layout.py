"""tools/check_layout.py, the layout check that make test runs: it must find what it looks for."""

from __future__ import annotations

import textwrap

from tools import check_layout as cl


def test_cycles_are_found_through_any_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert sorted(cl.cycles(graph)) == [["a", "b", "c"], ["e"]]
    assert cl.cycles({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_and_relative_ones_count(tmp_path, monkeypatch):
    pkg = tmp_path / "hierbayes" / "bayes"
    pkg.mkdir(parents=True)
    (tmp_path / "hierbayes" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (tmp_path / "hierbayes" / "report").mkdir()
    (tmp_path / "hierbayes" / "report" / "__init__.py").write_text("")
    (tmp_path / "hierbayes" / "report" / "fit.py").write_text("X = 1\n")
    src = pkg / "model.py"
    src.write_text(textwrap.dedent("""
        from ..report import fit
        def later():
            from hierbayes.report.fit import _private
    """))
    monkeypatch.setattr(cl, "ROOT", tmp_path)
    monkeypatch.setattr(cl, "PACKAGE", tmp_path / "hierbayes")
    modules = {"hierbayes", "hierbayes.bayes", "hierbayes.bayes.model", "hierbayes.report",
               "hierbayes.report.fit"}
    found = cl.imports(src, modules)
    assert [(m, name) for m, _, name in found] == [("hierbayes.report.fit", None),
                                                   ("hierbayes.report.fit", "_private")]
    problems, _ = cl.check()
    assert any("bayes imports report" in p for p in problems)
    assert any("private name _private" in p for p in problems)


def test_long_modules_are_reported(tmp_path, monkeypatch):
    (tmp_path / "hierbayes").mkdir()
    (tmp_path / "hierbayes" / "__init__.py").write_text("x = 1\n" * 11)
    monkeypatch.setattr(cl, "ROOT", tmp_path)
    monkeypatch.setattr(cl, "PACKAGE", tmp_path / "hierbayes")
    problems, _ = cl.check(max_lines=10)
    assert problems == ["hierbayes/__init__.py: 11 lines (at most 10); split it by concern"]


def test_architecture_doc_lists_every_module():
    from tools import architecture

    current = architecture.DOC.read_text()
    assert architecture.render(current) == current, "docs/architecture.md is stale: run tools/architecture.py"


def test_the_package_keeps_its_layout():
    problems, rooms = cl.check()
    assert problems == []
    assert "report" not in rooms["bayes"] | rooms["freq"]
    assert "freq" not in rooms["bayes"] and "bayes" not in rooms["freq"]
