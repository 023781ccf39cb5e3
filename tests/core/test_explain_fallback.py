"""An unusable explainer folder falls back to the template and says why."""
import json

from claire.claire_plugin.core.explain import explain
from claire.claire_plugin.core.explain.facts import build_facts
from claire.tests.fixtures.explain_examples import sample_run


def _facts():
    return build_facts(*sample_run())


def test_missing_folder(tmp_path):
    ex = explain(_facts(), explainer=str(tmp_path / "nope"))
    assert ex.generator == "template"
    assert "does not exist" in ex.fallback_reason
    assert ex.grounded_share == 1.0 and len(ex.text) > 500


def test_folder_without_config(tmp_path):
    ex = explain(_facts(), explainer=str(tmp_path))
    assert ex.generator == "template" and "config.json" in ex.fallback_reason


def test_wrong_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    ex = explain(_facts(), explainer=str(tmp_path))
    assert "'llama' model" in ex.fallback_reason and "Phi-3" in ex.fallback_reason


def test_phi3_without_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "phi3"}))
    (tmp_path / "tokenizer.json").write_text("{}")
    ex = explain(_facts(), explainer=str(tmp_path))
    assert "no weights" in ex.fallback_reason


def test_corrupt_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "phi3", "architectures": ["Phi3ForCausalLM"]}))
    (tmp_path / "tokenizer.json").write_text("not json")
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    ex = explain(_facts(), explainer=str(tmp_path))
    assert ex.generator == "template" and "loading the model" in ex.fallback_reason


def test_uncached_repo_id_makes_no_network_call(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ex = explain(_facts(), explainer="nobody-here/not-a-cached-model")
    assert ex.generator == "template" and "Hugging Face cache" in ex.fallback_reason
