"""The Dockerfile and docker-compose.yml, checked without a Docker engine: what they run must exist."""

import shlex
import tomllib
from pathlib import Path

import pytest
import typer
import yaml

ROOT = Path(__file__).resolve().parent.parent


def dockerfile() -> dict[str, list[str]]:
    """Instruction -> its arguments, one entry per occurrence, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.setdefault(keyword.upper(), []).append(rest.strip())
    return instructions


def exec_form(argument: str) -> list[str]:
    """A JSON exec-form argument (`["asof", "serve"]`) or a shell-form one, as argv."""
    return yaml.safe_load(argument) if argument.startswith("[") else shlex.split(argument)


def cli_commands() -> dict[str, list[str]]:
    """The `asof` console script's commands and each command's option names, from pyproject's entry point."""
    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["asof"]
    module, _, _ = entry.partition(":")
    app = __import__(module).app  # the entry point runs the package's app, every command registered
    group = typer.main.get_command(app)
    return {
        name: [opt for param in command.params for opt in param.opts]
        for name, command in group.commands.items()
    }


def assert_runs_cli(argv: list[str]) -> None:
    assert argv[0] == "asof", argv
    commands = cli_commands()
    assert argv[1] in commands, f"`asof {argv[1]}` is not a command; have {sorted(commands)}"
    for flag in (arg for arg in argv[2:] if arg.startswith("--")):
        assert flag in commands[argv[1]], f"`asof {argv[1]}` has no option {flag}"


def api_paths(data_dir: Path) -> set[str]:
    """The paths the service's OpenAPI document declares."""
    from api.app import create_app
    from api.settings import Settings

    return set(create_app(Settings(data_dir=data_dir)).openapi()["paths"])


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_dockerfile_runs_the_service_as_non_root_from_the_lock_file() -> None:
    instructions = dockerfile()
    assert instructions["FROM"][0].startswith("python:3.12")
    assert (ROOT / ".python-version").read_text().strip() == "3.12"
    assert any("uv sync --frozen" in run for run in instructions["RUN"])
    assert instructions["USER"] and instructions["USER"][-1] not in {"root", "0"}
    assert_runs_cli(exec_form(instructions["CMD"][-1]))


def test_dockerfile_copies_every_package_the_wheel_ships() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"][
        "wheel"
    ]["packages"]
    copied = {argument.split()[0] for argument in dockerfile()["COPY"]}
    assert set(packages) <= copied


def test_dockerfile_port_volume_and_health_check_agree(tmp_path: Path) -> None:
    instructions = dockerfile()
    env = dict(
        pair.split("=", 1)
        for argument in instructions["ENV"]
        for pair in shlex.split(argument)
        if "=" in pair
    )
    assert instructions["EXPOSE"] == [env["ASOF_PORT"]]
    assert exec_form(instructions["VOLUME"][0]) == [env["ASOF_DATA_DIR"]]
    health = instructions["HEALTHCHECK"][0]
    assert f"127.0.0.1:{env['ASOF_PORT']}/health" in health
    assert "/health" in api_paths(tmp_path)


def test_compose_serves_on_its_port_with_the_data_dir_on_a_named_volume(
    compose: dict, tmp_path: Path
) -> None:
    service = compose["services"]["asof"]
    assert_runs_cli(service["command"])
    port = service["environment"]["ASOF_PORT"]
    assert service["ports"] == [f"${{ASOF_PUBLISH:-127.0.0.1:{port}}}:{port}"]  # loopback unless asked
    assert service["env_file"] == [{"path": "asof.env", "required": False}]  # the tokens, when set
    data_dir = service["environment"]["ASOF_DATA_DIR"]
    volume, _, target = service["volumes"][0].partition(":")
    assert target == data_dir and volume in compose["volumes"]
    check = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/health" in check and "/health" in api_paths(tmp_path)


def test_compose_demo_is_one_shot_against_the_healthy_service(compose: dict) -> None:
    demo = compose["services"]["demo"]
    assert_runs_cli(demo["command"])
    assert demo["depends_on"]["asof"]["condition"] == "service_healthy"
    assert demo["restart"] == "no"
    assert demo["volumes"] == compose["services"]["asof"]["volumes"]
    assert demo["env_file"] == compose["services"]["asof"]["env_file"]  # it sends the service's token
    service_url = demo["command"][demo["command"].index("--service") + 1]
    assert service_url == f"http://asof:{compose['services']['asof']['environment']['ASOF_PORT']}"
