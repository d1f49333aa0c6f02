"""Environment variables: defaults, parsing, and clear errors for values the script cannot use."""

from __future__ import annotations

import pytest

from serving.codecs.texts import TextLimits
from serving.settings import Settings, SettingsError


def test_settings_defaults_when_only_the_model_dir_is_set() -> None:
    settings = Settings.from_env({"AZUREML_MODEL_DIR": "/var/azureml-app/azureml-models/m/1"})

    assert settings == Settings(model_dir="/var/azureml-app/azureml-models/m/1")
    assert (settings.device, settings.worker_count, settings.threads, settings.max_batch_rows) == (
        "auto",
        1,
        None,
        1024,
    )


def test_settings_read_every_variable() -> None:
    settings = Settings.from_env(
        {
            "AZUREML_MODEL_DIR": "/models",
            "MODEL_PATH": "outputs/model.pt",
            "MODEL_ARCHITECTURE": "digits_cnn",
            "SERVING_DEVICE": "CPU",
            "WORKER_COUNT": "4",
            "TORCH_NUM_THREADS": "2",
            "MAX_BATCH_ROWS": "64",
        }
    )

    assert settings == Settings("/models", "outputs/model.pt", "digits_cnn", "cpu", 4, 2, 64)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("SERVING_DEVICE", "gpu", "SERVING_DEVICE is 'gpu'; expected one of 'auto', 'cpu', 'cuda'"),
        ("WORKER_COUNT", "two", "WORKER_COUNT is 'two'; expected a whole number of at least 1"),
        ("TORCH_NUM_THREADS", "0", "TORCH_NUM_THREADS is '0'"),
        ("MAX_BATCH_ROWS", "-5", "MAX_BATCH_ROWS is '-5'"),
        ("CHUNK_ROWS", "many", "CHUNK_ROWS is 'many'"),
        ("CHANNELS_LAST", "yes", "CHANNELS_LAST is 'yes'; expected one of 'auto', 'on', 'off'"),
        ("SERVER_ACCESS_LOG", "true", "SERVER_ACCESS_LOG is 'true'; expected one of 'off', 'on'"),
        ("BODY_TIMEOUT_S", "0", "BODY_TIMEOUT_S is '0'; expected a number of seconds above 0, such as 10 or 2.5"),
        ("BODY_TIMEOUT_S", "ten", "BODY_TIMEOUT_S is 'ten'"),
        ("BODY_TIMEOUT_S", "inf", "BODY_TIMEOUT_S is 'inf'"),
        ("BODY_TIMEOUT_S", "nan", "BODY_TIMEOUT_S is 'nan'"),
    ],
)
def test_settings_reject_unusable_values(name: str, value: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})

    assert fragment in str(caught.value)


def test_worker_preload_is_read_from_the_servers_own_setting() -> None:
    assert Settings.from_env({"WORKER_PRELOAD": "true"}).preload
    assert not Settings.from_env({"WORKER_PRELOAD": "false"}).preload
    assert not Settings.from_env({}).preload


def test_the_servers_access_lines_are_off_unless_asked_for() -> None:
    assert not Settings.from_env({}).server_access_log
    assert Settings.from_env({"SERVER_ACCESS_LOG": "ON"}).server_access_log


def test_the_body_timeout_is_10_seconds_unless_set() -> None:
    assert Settings.from_env({}).body_timeout_s == 10.0
    assert Settings.from_env({"BODY_TIMEOUT_S": "2.5"}).body_timeout_s == 2.5


def test_the_body_limit_defaults_by_input_kind_unless_set() -> None:
    default, chosen = Settings.from_env({}), Settings.from_env({"MAX_BODY_BYTES": "5000000", "MAX_IMAGES": "4"})

    assert (default.body_limit(takes_images=False), default.body_limit(takes_images=True)) == (1_500_000, 20_000_000)
    assert (chosen.body_limit(takes_images=False), chosen.body_limit(takes_images=True)) == (5_000_000, 5_000_000)
    assert (default.max_images, chosen.max_images) == (64, 4)


def test_text_limits_default_and_read_from_the_environment() -> None:
    assert Settings.from_env({}).text_limits == TextLimits(256, 10_000)
    assert Settings.from_env({"MAX_TEXTS": "8", "MAX_TEXT_CHARS": "400"}).text_limits == TextLimits(8, 400)
    with pytest.raises(SettingsError, match="MAX_TEXTS"):
        Settings.from_env({"MAX_TEXTS": "0"})
