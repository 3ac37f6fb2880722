"""The README is a contract: its shell examples run as written, in order, in one shell, against
a fresh daemon, as a new user would paste them.

What the runner does beyond pasting: the daemon's address stands for http://127.0.0.1:8080 (a
test cannot count on that port), the working directory has the daemon's data dir as
./berth-data, a block preceded by `<!-- not run by the README test ... -->` is skipped, a YAML
or Python block whose first line is `# <file name>` is written to that file when the shell
reaches it, and a command marked `Ctrl-C to stop` (it follows forever) is stopped after a few
seconds. Everything the examples started is deleted through the API at the end.
"""
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import BERTH_BIN, clean_env, instance_processes, wait_until

REPO = Path(__file__).resolve().parents[2]
SKIP = "<!-- not run by the README test"
FILE_LINE = re.compile(r"# ([\w.-]+\.(?:yaml|yml|json|py))\b")


def readme_blocks(text):
    """(language, body, README line of the fence, skipped) of every fenced block, in order."""
    lines = text.splitlines()
    blocks, k = [], 0
    while k < len(lines):
        m = re.fullmatch(r"```(\w*)", lines[k])
        if not m:
            k += 1
            continue
        start = k
        k += 1
        body = []
        while lines[k] != "```":
            body.append(lines[k])
            k += 1
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        blocks.append((m.group(1), "\n".join(body) + "\n", start + 1, before.startswith(SKIP)))
        k += 1
    return blocks


def readme_script(text, url):
    """The shell script that pastes the README's examples in order."""
    out = ["set -euo pipefail", "export PS4='+ README> '", "set -x"]
    for lang, body, line, skipped in readme_blocks(text):
        if skipped:
            continue
        first = body.split("\n", 1)[0]
        if lang in ("yaml", "python", "json") and FILE_LINE.fullmatch(first.split(":")[0]):
            name = FILE_LINE.fullmatch(first.split(":")[0]).group(1)
            out.append(f"cat > {shlex.quote(name)} <<'README_FILE_END'\n{body}README_FILE_END")
        elif lang == "sh":
            out.append(f": README line {line}")
            for command in body.replace("http://127.0.0.1:8080", url).splitlines():
                if "Ctrl-C to stop" in command:
                    command = command.split("  #")[0].strip()
                    command = f"{{ timeout -s INT 3 {command} || [ $? -eq 124 ]; }}"
                out.append(command)
    return "\n".join(out) + "\n"


@pytest.fixture
def short_data_dir(tmp_path):
    """A data dir with a short path: recipe graphs' IPC sockets live under it (< 100 chars)."""
    return tmp_path / "d"


def test_every_shell_example_of_the_readme_runs_as_written(daemon_factory, short_data_dir,
                                                           tmp_path):
    d = daemon_factory(data_dir=short_data_dir)
    text = (REPO / "README.md").read_text()
    script = readme_script(text, d.url)
    assert script.count(": README line") >= 9, script  # the examples were found
    work = tmp_path / "work"
    home = tmp_path / "home"
    work.mkdir()
    home.mkdir()
    (work / "berth-data").symlink_to(d.data_dir)
    env = clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                    PATH=os.path.dirname(BERTH_BIN) + ":" + os.environ["PATH"])
    for name in ("BERTH_URL", "BERTH_TOKEN", "TOKEN"):
        env.pop(name, None)
    try:
        p = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True,
                           text=True, timeout=900)
        trace = p.stderr.splitlines()
        assert p.returncode == 0, (
            f"a README example failed (exit {p.returncode}); the last commands and what they "
            f"said:\n" + "\n".join(trace[-40:]) + "\nstdout:\n" + p.stdout[-3000:])
        # What the comments promise.
        assert "hi\n" in p.stdout  # the folder deployed and reached through the gateway
        assert '"Hello Ada"' in p.stdout  # the 25-line service answered
        assert "STARTED" in p.stdout  # the ping recipe
    finally:
        delete_everything(d)


def delete_everything(d):
    """Deletes every service the examples made, through the API (recipes they stop)."""
    for project in d.get("/api/v1/projects").json()["projects"]:
        name = project["name"]
        for svc in d.get(f"/api/v1/services?project={name}").json()["services"]:
            d.delete(f"/api/v1/services/{svc['name']}?project={name}")
    # A delete stops the instances in the background (Redis and friends still run: the
    # session stopped only what it started).
    wait_until(lambda: not instance_processes(d.data_dir), 30, "every instance stopped")
