"""Settings come from the environment and a YAML file, and are validated with clear messages."""

import pytest

from candor.errors import SettingsError
from candor.settings import Settings, load_settings


def test_defaults():
    settings = load_settings({})
    assert settings == Settings()
    assert settings.mc_samples == 20 and settings.seed == 0


def test_environment_overrides(tmp_path):
    settings = load_settings({"CANDOR_MC_SAMPLES": "8", "CANDOR_SEED": "7", "CANDOR_WRITE_OVERLAYS": "no"})
    assert (settings.mc_samples, settings.seed, settings.write_overlays) == (8, 7, False)


def test_yaml_file_then_environment_wins(tmp_path):
    config = tmp_path / "candor.yaml"
    config.write_text("candor:\n  mc_samples: 30\n  threshold: 0.4\n")
    settings = load_settings({"CANDOR_CONFIG": str(config), "CANDOR_MC_SAMPLES": "10"})
    assert settings.mc_samples == 10 and settings.threshold == 0.4


def test_holoscan_app_yaml_without_candor_section_is_fine(tmp_path):
    config = tmp_path / "app.yaml"
    config.write_text("application:\n  title: x\n")
    assert load_settings({"HOLOSCAN_CONFIG_PATH": str(config)}) == Settings()


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"CANDOR_MC_SAMPLES": "1"}, "mc_samples must be between 2"),
        ({"CANDOR_MC_SAMPLES": "twenty"}, "cannot read 'twenty' as int"),
        ({"CANDOR_SEED": "-1"}, "seed must be"),
        ({"CANDOR_THRESHOLD": "1.5"}, "threshold"),
        ({"CANDOR_DEVICE": "tpu"}, "device"),
        ({"CANDOR_WRITE_SEG": "maybe"}, "as bool"),
        ({"CANDOR_CONFIG": "/nonexistent/candor.yaml"}, "not a file"),
    ],
)
def test_invalid_values_are_refused_with_a_message(environ, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(environ)


def test_unknown_yaml_key_is_refused(tmp_path):
    config = tmp_path / "candor.yaml"
    config.write_text("candor:\n  mc_sample: 30\n")
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings({"CANDOR_CONFIG": str(config)})


def test_saliency_methods_auto_depends_on_the_device():
    from candor.saliency.registry import METHODS
    from candor.settings import CPU_SALIENCY_METHODS

    settings = load_settings({})
    assert settings.saliency_method_list(on_gpu=True) == tuple(METHODS)
    assert settings.saliency_method_list(on_gpu=False) == CPU_SALIENCY_METHODS
    assert settings.saliency_method_list(on_gpu=False, task_kind="segmentation") == CPU_SALIENCY_METHODS
    assert settings.saliency_method_list(on_gpu=False, task_kind="classification") == tuple(METHODS)
    chosen = load_settings({"CANDOR_SALIENCY_METHODS": "gradcam, gradient"})
    assert chosen.saliency_method_list(on_gpu=True) == ("gradcam", "gradient")
    assert load_settings({"CANDOR_SALIENCY_METHODS": "none"}).saliency_method_list() == ()
    with pytest.raises(SettingsError, match="unknown saliency method"):
        load_settings({"CANDOR_SALIENCY_METHODS": "lime"})
