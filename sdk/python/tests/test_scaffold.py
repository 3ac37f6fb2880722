"""The files `berth init DIR --lang python` writes: they must work as written."""

import os
import shutil
import subprocess
import sys

import pytest

from support import SDK_DIR

SCAFFOLD = SDK_DIR / "scaffold"

EXAMPLE = '''import logging
from berth import Service, notify, Severity

service = Service()
logger = logging.getLogger(__name__)
service.add_parameter("greeting_phrase", "Hello")

@service.entrypoint
def hello(name: str) -> str:
    greeting_phrase = service.get_parameter("greeting_phrase")
    if name == "World":
        notify(msg="Someone is trying to greet the World, too time consuming. Skipping!",
               severity=Severity.WARNING)
        return "Greeting failed"
    logger.info(f"Greeting someone with the name: {name}")
    return f"{greeting_phrase} {name}"

service.run()
'''

# What ReadBundleDefaults in src/control/controller.cc accepts.
BERTH_YAML_KEYS = {"command", "port", "env", "health-check", "build"}
HEALTH_CHECK_KEYS = {"type", "rel_path", "status_codes", "interval", "timeout"}


def test_the_scaffold_holds_exactly_the_four_files():
    assert sorted(p.name for p in SCAFFOLD.iterdir()) == [
        "README.md", "berth.yaml", "service.py", "test_service.py"]


def test_service_py_is_the_tutorial_example():
    assert (SCAFFOLD / "service.py").read_text() == EXAMPLE


def test_berth_yaml_uses_only_keys_the_platform_reads():
    top, health = {}, {}
    section = None
    for line in (SCAFFOLD / "berth.yaml").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.strip().partition(":")
        if line.startswith(" "):
            assert section == "health-check", line
            health[key] = value.strip()
        else:
            section = key
            top[key] = value.strip()
    assert set(top) <= BERTH_YAML_KEYS and set(health) <= HEALTH_CHECK_KEYS
    assert top["command"] == '["python3", "service.py"]'
    assert top["port"] == "8080"
    assert health == {"rel_path": "/~health", "status_codes": '"200"', "interval": "2"}


def test_readme_covers_running_deploying_calling_and_notifications():
    # `berth init` writes the service's name (its folder's) where @SERVICE@ stands.
    readme = (SCAFFOLD / "README.md").read_text().replace("@SERVICE@", "hello")
    for needle in ("PORT=8000", "python3 service.py", "berth deploy hello 1.0.0 .",
                   "$BERTH_URL/default-hello/hello", 'Authorization: Bearer $TOKEN',
                   "greeting_phrase", "berth notifications ls"):
        assert needle in readme, needle


@pytest.mark.parametrize("how", ["PYTHONPATH", "BERTH_SDK_PYTHON"])
def test_the_scaffold_test_passes(tmp_path, how):
    work = tmp_path / "hello"
    shutil.copytree(SCAFFOLD, work)  # a copy: the source folder stays free of __pycache__
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "BERTH_SDK_PYTHON", "BERTH_URL", "HOST", "PORT")}
    env[how] = str(SDK_DIR)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "test_service.py"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout
