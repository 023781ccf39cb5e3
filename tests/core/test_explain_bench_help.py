"""`python -m claire.claire_plugin.tools.explain_bench --help` prints its help and runs nothing (QA round 20: it
built a tiny Phi-3 and timed it)."""
import pytest

from claire.claire_plugin.tools import explain_bench


def test_help_runs_nothing(capsys, monkeypatch):
    monkeypatch.setattr(explain_bench, "make_tiny_phi3", lambda *a: pytest.fail("--help ran the benchmark"))
    with pytest.raises(SystemExit) as info:
        explain_bench.main(["--help"])
    assert info.value.code == 0 and "Phi-3" in capsys.readouterr().out
