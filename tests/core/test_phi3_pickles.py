"""A Phi-3 folder that holds its weights only as pickles is refused before anything loads them, and the
message gives no advice to load them anyway (issue 19 B)."""
import json

import pytest

from claire.claire_plugin.core.explain import phi3


def test_pickle_only_phi3_folder_is_refused_without_unsafe_advice(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "phi3"}))
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(phi3.ExplainerUnavailable) as exc:
        phi3.validate_model_dir(str(tmp_path))
    text = str(exc.value)
    assert "pickles (pytorch_model.bin)" in text and "does not load them" in text and ".safetensors" in text
    for unsafe in ("weights_only", "trust", "allow_pickle", "unsafe"):
        assert unsafe not in text.lower()
    (tmp_path / "model.safetensors").write_bytes(b"")  # with safetensors weights the folder is accepted
    assert phi3.validate_model_dir(str(tmp_path))["model_type"] == "phi3"
