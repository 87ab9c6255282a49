"""The production Containerfile: its key properties, read from the file (no container engine runs here)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from screenshot_service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CONTAINERFILE = ROOT / "Containerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, in order (a stage starts at its FROM)."""
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions(CONTAINERFILE.read_text(encoding="utf-8")):
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def args_of(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for kw, rest in stage if kw == keyword]


def test_multi_stage_on_debian_python() -> None:
    text = CONTAINERFILE.read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm$", text, re.MULTILINE)
    built = stages()
    assert len(built) >= 2
    assert all(args_of(stage, "FROM")[0].startswith("${PYTHON_IMAGE}") for stage in built)


def test_final_stage_has_only_the_runtime() -> None:
    final = stages()[-1]
    copies = args_of(final, "COPY")
    assert copies == ["--from=build /opt/venv /opt/venv"], "the final stage copies only the built virtualenv"
    run = " ".join(args_of(final, "RUN"))
    assert "pip install" not in run
    assert "build-essential" not in run
    assert "--no-install-recommends" in run


def test_chromium_and_the_fonts_the_makefile_installs() -> None:
    run = " ".join(args_of(stages()[-1], "RUN"))
    installed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", run.partition("install")[2].partition("&&")[0]))
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    apt_packages = re.search(r"^APT_PACKAGES := (.+)$", makefile, re.MULTILINE)
    assert apt_packages
    assert set(apt_packages.group(1).split()) <= installed
    assert "tini" not in installed, "the service reaps Chromium's orphans itself; a second reaper races it"


def test_non_root_and_the_serve_command() -> None:
    final = stages()[-1]
    user = args_of(final, "USER")[-1]
    assert user.split(":")[0] not in {"0", "root"}
    assert json.loads(args_of(final, "ENTRYPOINT")[-1]) == ["screenshot-service"]
    assert json.loads(args_of(final, "CMD")[-1]) == ["serve"]


def test_the_image_installs_the_wheel_without_the_development_tools(tmp_path: Path) -> None:
    """The build stage runs `pip install .`, which builds this wheel: the service is in, `dev/` is not."""
    assert "/opt/venv/bin/pip install --no-compile ." in " ".join(args_of(stages()[0], "RUN"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp_path,
            ROOT,
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("screenshot_service-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "screenshot_service/app.py" in names
    assert "screenshot_service/browser/supervisor.py" in names
    assert not [name for name in names if name.startswith("screenshot_service/dev/")]


def test_exposes_the_port_it_listens_on() -> None:
    final = stages()[-1]
    env = " ".join(args_of(final, "ENV"))
    port = re.search(r"SCREENSHOT_PORT=(\d+)", env)
    assert port
    assert port.group(1) == str(Settings().port)
    assert args_of(final, "EXPOSE") == [port.group(1)]
    assert "SCREENSHOT_HOST=0.0.0.0" in env  # reachable from outside the container


def test_no_secret_is_baked_in() -> None:
    everything = instructions(CONTAINERFILE.read_text(encoding="utf-8"))
    names = re.findall(r"(\w+)=", " ".join(args_of(everything, "ENV") + args_of(everything, "ARG")))
    secret_fields = {
        f"SCREENSHOT_{name.upper()}"
        for name in ("api_keys", "meta_access_token", "redis_url", "log_hash_key")
    }
    assert names
    assert not secret_fields & set(names)
    assert not [n for n in names if re.search(r"TOKEN|PASSWORD|SECRET|KEY", n)]


def test_containerignore_keeps_the_context_to_the_package() -> None:
    lines = [
        line
        for line in (ROOT / ".containerignore").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!src"} <= set(lines)
    copied = {
        part
        for stage in stages()
        for rest in args_of(stage, "COPY")
        if not rest.startswith("--from")
        for part in rest.split()[:-1]
    }
    assert copied == {"pyproject.toml", "README.md", "src"}


def healthcheck_command() -> list[str]:
    healthcheck = args_of(stages()[-1], "HEALTHCHECK")[-1]
    command: list[str] = json.loads(healthcheck.partition("CMD ")[2])
    return command


async def test_healthcheck_passes_against_a_live_service_and_fails_without_one(
    service: httpx.AsyncClient,
) -> None:
    """The HEALTHCHECK's own command, run with this Python against the test service's port."""
    command = healthcheck_command()
    assert command[0] == "python"
    env = {**os.environ, "SCREENSHOT_PORT": str(service.base_url.port)}
    assert await run_python(command[1:], env) == 0
    assert await run_python(command[1:], {**env, "SCREENSHOT_PORT": "1"}) != 0


async def run_python(args: list[str], env: dict[str, str]) -> int:
    """Run a Python command without blocking the loop that serves the service under test."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), 30)


@pytest.mark.parametrize("forbidden", ["curl", "wget"])
def test_healthcheck_needs_no_extra_tools(forbidden: str) -> None:
    assert forbidden not in " ".join(healthcheck_command())
