"""docker-compose.yml and the Dockerfile, checked against the project without Docker.

Every command a service runs must name something that exists here (a console script and a real click command, or
the Celery app and a Celery subcommand), every setting it passes must be one processor/config.py reads, each service
must connect as its own database role with a password that must be given, PostgreSQL and Redis must require
passwords, Redis must keep what it is given, and the image must install the locked dependencies and then the
project, migrations and all.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import click
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from sqlalchemy.engine import make_url

import processor
from processor.config import Settings, env_name
from processor.db.roles import Kind

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"

CELERY_SUBCOMMANDS = ("worker", "flower")
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_][A-Z0-9_]*):\?[^}]+\}$")
REQUIRED_VALUE = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*):\?[^}]+\}")


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict), f"{COMPOSE_FILE.name} is not a mapping"
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found = compose().get("services")
    assert isinstance(found, dict), f"{COMPOSE_FILE.name} has no services"
    return found


def service(name: str) -> dict[str, Any]:
    found = services().get(name)
    assert isinstance(found, dict), f"{COMPOSE_FILE.name} has no {name} service"
    return found


def app_services() -> dict[str, dict[str, Any]]:
    """The services that run this project's image: the ones built from this directory."""
    return {name: spec for name, spec in services().items() if "build" in spec}


def command_of(spec: dict[str, Any]) -> list[str]:
    command = spec.get("command")
    if isinstance(command, str):
        return shlex.split(command)
    assert isinstance(command, list), f"no command: {spec}"
    return [str(part) for part in command]


def environment_of(spec: dict[str, Any]) -> dict[str, str]:
    environment = spec.get("environment") or {}
    if isinstance(environment, list):
        return dict(str(item).partition("=")[::2] for item in environment)
    return {str(key): str(value) for key, value in environment.items()}


def depends_on(spec: dict[str, Any]) -> dict[str, str]:
    """Each dependency and its condition (the short list form means service_started)."""
    dependencies = spec.get("depends_on") or {}
    if isinstance(dependencies, list):
        return dict.fromkeys(dependencies, "service_started")
    return {name: options.get("condition", "service_started") for name, options in dependencies.items()}


def console_scripts() -> dict[str, str]:
    scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
    assert isinstance(scripts, dict)
    return {str(name): str(target) for name, target in scripts.items()}


def commands(program: str) -> Iterator[tuple[str, list[str]]]:
    for name, spec in services().items():
        if "command" in spec and command_of(spec)[0] == program:
            yield name, command_of(spec)


def script_group(script: str) -> click.Group:
    """The click group behind a console script: `processor.cli:main` runs `processor.cli.cli`."""
    module_name, _, function = console_scripts()[script].partition(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, function, None)), f"{script} = {module_name}:{function}, which does not exist"
    group = getattr(module, "cli", None)
    assert isinstance(group, click.Group), f"{module_name} has no click group `cli`"
    return group


def resolve_click_command(script: str, group: click.Group, args: list[str]) -> click.Command:
    """Walk the groups down to the command the arguments name, and parse its options as the shell would."""
    path = [script]
    command: click.Command = group
    remaining = list(args)
    while isinstance(command, click.Group):
        assert remaining, f"`{' '.join(path)}` is a group: name one of {sorted(command.commands)}"
        word = remaining.pop(0)
        subcommand = command.commands.get(word)
        assert subcommand is not None, f"`{' '.join([*path, word])}`: {word!r} is not one of {sorted(command.commands)}"
        path.append(word)
        command = subcommand
    try:
        command.make_context(" ".join(path), list(remaining))  # click consumes the list it parses
    except click.UsageError as error:
        pytest.fail(f"`{' '.join([*path, *remaining])}`: {error.format_message()}")
    return command


@dataclass(frozen=True)
class CeleryCommand:
    app: str
    subcommand: str
    options: list[str]


def parse_celery(args: list[str]) -> CeleryCommand:
    """`celery -A processor worker --loglevel=INFO` without the leading `celery`."""
    app: str | None = None
    remaining = list(args)
    while remaining and remaining[0].startswith("-"):
        option = remaining.pop(0)
        if option in ("-A", "--app"):
            app = remaining.pop(0)
        elif option.startswith(("--app=", "-A=")):
            app = option.partition("=")[2]
        else:
            pytest.fail(f"celery option {option!r} is not one these tests know")
    assert app is not None, f"`celery {' '.join(args)}` does not name the app with -A"
    assert remaining, f"`celery {' '.join(args)}` names no subcommand"
    return CeleryCommand(app, remaining[0], remaining[1:])


def duration_seconds(text: str) -> float:
    """A Compose duration such as 75s or 1m30s."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", text)
    assert parts, f"{text!r} is not a duration"
    assert "".join(number + unit for number, unit in parts) == text, f"{text!r} is not a duration"
    return sum(float(number) * units[unit] for number, unit in parts)


# --- Dockerfile ----------------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def instruction_words(arguments: str) -> list[str]:
    if arguments.startswith("["):
        words = json.loads(arguments)
        assert isinstance(words, list)
        return [str(word) for word in words]
    return shlex.split(arguments)


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in dockerfile_instructions():
        if keyword == "ENV":
            for word in shlex.split(arguments):
                name, _, value = word.partition("=")
                env[name] = value
    return env


@dataclass(frozen=True)
class Image:
    workdir: PurePosixPath
    paths: dict[PurePosixPath, str]  # where each copied source ends up in the image -> that source
    user: str | None
    runs: list[tuple[PurePosixPath, str]]  # each RUN's command and the WORKDIR it runs in


def image_layout() -> Image:
    """Follow WORKDIR, COPY, RUN and USER: a directory source's contents go into the destination, a file goes into a
    destination that ends in / (or takes several sources), otherwise it becomes the destination."""
    workdir = PurePosixPath("/")
    paths: dict[PurePosixPath, str] = {}
    user: str | None = None
    runs: list[tuple[PurePosixPath, str]] = []
    for keyword, arguments in dockerfile_instructions():
        if keyword == "WORKDIR":
            workdir = workdir / arguments
        elif keyword == "USER":
            user = arguments
        elif keyword == "RUN":
            runs.append((workdir, arguments))
        elif keyword in ("COPY", "ADD"):
            words = [word for word in instruction_words(arguments) if not word.startswith("--")]
            assert not any(word.startswith("--from") for word in instruction_words(arguments)), "multi-stage COPY"
            *sources, destination = words
            target = workdir / destination
            into_directory = destination.endswith("/") or destination in (".", "./") or len(sources) > 1
            for source in sources:
                if (ROOT / source).is_dir():
                    paths[target] = source
                else:
                    paths[target / PurePosixPath(source).name if into_directory else target] = source
    return Image(workdir, paths, user, runs)


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def setuptools_config() -> dict[str, Any]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]
    assert isinstance(config, dict)
    return config


def listed_packages() -> list[str]:
    packages = setuptools_config().get("packages")
    assert isinstance(packages, list), "pyproject.toml lists the packages under [tool.setuptools] packages"
    return [str(package) for package in packages]


def package_directory(package: str) -> Path:
    """Where setuptools takes a package from: the longest package-dir mapping that covers it, else its own path."""
    mapping = {str(name): str(path) for name, path in (setuptools_config().get("package-dir") or {}).items()}
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in mapping:
            return ROOT / mapping[prefix] / Path(*parts[cut:])
    return ROOT / Path(*parts)


def needed_in_image() -> list[str]:
    """The top-level paths the image needs: the lock it installs, and what `pip install .` builds from (the packages'
    directories, the migrations among them)."""
    project = tomllib.loads(PYPROJECT.read_text())
    needed = [RUNTIME_LOCK.name, "pyproject.toml", str(project["project"]["readme"])]
    needed += sorted({package_directory(package).relative_to(ROOT).parts[0] for package in listed_packages()})
    return needed


def pip_installs(image: Image) -> list[tuple[PurePosixPath, list[str]]]:
    """The arguments of each `pip install` the Dockerfile runs, with the WORKDIR it runs in."""
    found: list[tuple[PurePosixPath, list[str]]] = []
    for workdir, command in image.runs:
        for step in re.split(r"&&|;", command):
            words = shlex.split(step)
            if words[:2] == ["pip", "install"] or words[:4] == ["python", "-m", "pip", "install"]:
                found.append((workdir, words[words.index("install") + 1 :]))
    return found


def lock_pins(path: Path) -> dict[str, Version]:
    """name -> version for each `name==version` in a lock file, each of which must carry at least one hash."""
    pins: dict[str, Version] = {}
    requirement: str | None = None
    hashes: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and not line.startswith("#"):
            name, separator, version = stripped.rstrip("\\").strip().partition("==")
            assert separator, f"{path.name}: {stripped!r} is not pinned with =="
            requirement = canonicalize_name(name)
            pins[requirement] = Version(version)
            hashes[requirement] = 0
        elif stripped.startswith("--hash=sha256:") and requirement is not None:
            hashes[requirement] += 1
    unhashed = sorted(name for name, count in hashes.items() if count == 0)
    assert not unhashed, f"{path.name}: no hash for {unhashed}"
    return pins


def assert_pins_satisfy(requirements: list[str], pins: dict[str, Version], lock: Path) -> None:
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock.name} pins no {requirement.name} (pyproject.toml asks for {text}): make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock.name} pins {requirement.name}=={pins[name]}, outside {text} (pyproject.toml): make lock"
        )


# --- Commands ------------------------------------------------------------------------------------------------------


def test_every_service_command_is_a_console_script_of_this_project_or_celery_or_gunicorn() -> None:
    scripts = console_scripts()
    for name, spec in app_services().items():
        program = command_of(spec)[0]
        assert program in ("celery", "gunicorn") or program in scripts, (
            f"service {name} runs {program!r}, which is neither celery, gunicorn nor in [project.scripts]"
        )


def test_web_runs_the_app_factory_under_gunicorn_on_the_port_it_publishes_and_checks_healthz() -> None:
    from gunicorn.config import Config
    from gunicorn.util import import_app

    command = command_of(service("web"))
    assert command[0] == "gunicorn"
    parsed = Config().parser().parse_args(command[1:])
    (target,) = parsed.args
    app = import_app(target)
    assert {rule.rule for rule in app.url_map.iter_rules()} >= {"/healthz", "/api/v1/openapi.json"}
    host, _, port = parsed.bind[0].rpartition(":")
    assert host == "0.0.0.0", "inside the container gunicorn must listen on every interface"
    assert f"127.0.0.1:{port}:{port}" in service("web")["ports"]
    args = healthcheck_of("web")
    assert args[:2] == ["python", "-c"], "the image has Python, not curl: the check should be a python -c"
    assert f"http://127.0.0.1:{port}/healthz" in args[2]
    assert "web" in BROKER_USERS


@pytest.mark.parametrize("script", ["processor", "submit"])
def test_cli_commands_name_real_cli_commands(script: str) -> None:
    found = list(commands(script))
    assert found or script == "submit", "no service runs the operator CLI (migrate runs `processor db upgrade`)"
    group = script_group(script)
    for _name, args in found:
        # `submit --help` is a tools service's default: what precedes --help must exist.
        words = args[1 : args.index("--help")] if "--help" in args else args[1:]
        if words or "--help" not in args:
            resolve_click_command(script, group, words)


def test_migrate_runs_the_alembic_upgrade() -> None:
    from processor.cli import db_upgrade

    command = resolve_click_command("processor", script_group("processor"), command_of(service("migrate"))[1:])
    assert command is db_upgrade, f"the migrate service runs `{command.name}`, not `processor db upgrade`"


def test_the_roles_service_makes_the_roles() -> None:
    from processor.cli import db_roles

    command = resolve_click_command("processor", script_group("processor"), command_of(service("roles"))[1:])
    assert command is db_roles, f"the roles service runs `{command.name}`, not `processor db roles`"


def test_tools_services_start_only_when_run() -> None:
    for name in ("operator", "submit"):
        assert service(name).get("profiles") == ["tools"], f"{name} is for `docker compose run`, not for `up`"


def test_celery_commands_load_this_projects_app() -> None:
    import celery

    found = list(commands("celery"))
    assert found, "no service runs celery"
    for name, args in found:
        parsed = parse_celery(args[1:])
        module = importlib.import_module(parsed.app)
        # Celery's own lookup for a module: an attribute named app, then one named celery.
        app = getattr(module, "app", None)
        if app is None:
            app = getattr(module, "celery", None)
        assert isinstance(app, celery.Celery), f"service {name}: `-A {parsed.app}` finds no Celery app"
        assert app is processor.app


def test_celery_subcommands_are_worker_or_flower_with_options_they_accept() -> None:
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery as celery_cli
    from flower.options import options as flower_options  # type: ignore[import-untyped]

    assert importlib.util.find_spec("flower") is not None, "flower is not installed"
    for name, args in commands("celery"):
        parsed = parse_celery(args[1:])
        assert parsed.subcommand in CELERY_SUBCOMMANDS, f"service {name} runs celery {parsed.subcommand!r}"
        assert parsed.subcommand in celery_cli.commands, f"celery has no {parsed.subcommand!r} command here"
        if parsed.subcommand == "worker":
            context = CLIContext(app=processor.app, no_color=True, workdir=None, quiet=True)
            try:
                celery_cli.commands["worker"].make_context("worker", parsed.options, obj=context)
            except click.UsageError as error:
                pytest.fail(f"service {name}: celery worker {' '.join(parsed.options)}: {error.format_message()}")
        else:
            for option in parsed.options:
                assert option.startswith("--"), f"service {name}: flower takes --name=value options, not {option!r}"
                option_name = option[2:].partition("=")[0]
                assert option_name in flower_options, f"service {name}: flower has no option --{option_name}"


def test_flower_listens_on_the_port_it_publishes() -> None:
    flower = service("flower")
    options = dict(option[2:].partition("=")[::2] for option in parse_celery(command_of(flower)[1:]).options)
    published = {str(mapping).rsplit(":", 1)[-1] for mapping in flower.get("ports") or []}
    assert options.get("port") == "5555", "flower should listen on 5555"
    assert options.get("address", "") not in ("127.0.0.1", "localhost"), "flower must listen beyond the container"
    assert published == {"5555"}, f"flower publishes {published}, not its port 5555"


def healthcheck_of(name: str) -> list[str]:
    check = service(name).get("healthcheck") or {}
    test = check.get("test") or []
    assert test, f"{name} needs a healthcheck"
    assert test[0] in ("CMD", "CMD-SHELL"), f"{name}'s healthcheck should be CMD or CMD-SHELL, not {test[0]}"
    return shlex.split(test[1]) if test[0] == "CMD-SHELL" else [str(part) for part in test[1:]]


def test_worker_is_healthy_when_its_own_worker_answers_a_ping() -> None:
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery as celery_cli

    args = healthcheck_of("worker")
    assert args[0] == "celery", "the worker's healthcheck should be `celery -A processor inspect ping -d ...`"
    parsed = parse_celery(args[1:])
    assert importlib.import_module(parsed.app).app is processor.app
    assert (parsed.subcommand, parsed.options[:1]) == ("inspect", ["ping"])
    context = CLIContext(app=processor.app, no_color=True, workdir=None, quiet=True)
    try:
        inspect = celery_cli.commands["inspect"].make_context("inspect", list(parsed.options), obj=context)
    except click.UsageError as error:
        pytest.fail(f"celery inspect {' '.join(parsed.options)}: {error.format_message()}")
    # Only this container's worker, by the name Celery gives it (celery@ its hostname): not any worker at all.
    # Compose turns $$ into $, for the container's shell to expand.
    assert inspect.params["destination"] == ["celery@$$HOSTNAME"]
    worker_options = parse_celery(command_of(service("worker"))[1:]).options
    assert not any(o in ("-n", "--hostname") or o.startswith("--hostname=") for o in worker_options), (
        "the worker must keep Celery's default name, celery@HOSTNAME, which the healthcheck pings"
    )


def test_flower_is_healthy_when_its_healthcheck_page_answers() -> None:
    from flower.urls import handlers  # type: ignore[import-untyped]

    args = healthcheck_of("flower")
    port = dict(option[2:].partition("=")[::2] for option in parse_celery(command_of(service("flower"))[1:]).options)
    assert args[:2] == ["python", "-c"], "the image has Python, not curl: the check should be a python -c"
    assert f"http://127.0.0.1:{port['port']}/healthcheck" in args[2]
    patterns = {(h.regex.pattern if hasattr(h, "regex") else h[0]).rstrip("$") for h in handlers}
    assert "/healthcheck" in patterns, "this Flower has no /healthcheck page"


# --- Redis and PostgreSQL ------------------------------------------------------------------------------------------


def test_redis_keeps_every_queued_message() -> None:
    redis = service("redis")
    args = command_of(redis)
    assert args[0] == "redis-server", "the redis service must run redis-server with its durability flags"
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags.get("--appendonly") == "yes", "Redis must write an append-only file"
    assert flags.get("--appendfsync") == "everysec", "the append-only file must be synced every second"
    assert flags.get("--maxmemory-policy") == "noeviction", "Redis must never evict a queued message"
    targets = {str(volume).split(":")[1] for volume in redis.get("volumes") or [] if ":" in str(volume)}
    assert "/data" in targets, "the append-only file (in /data) must be on a volume"
    assert "test" in (redis.get("healthcheck") or {}), "redis needs a healthcheck for the services that wait for it"


def test_postgres_has_a_healthcheck_and_keeps_its_data_on_a_volume() -> None:
    postgres = service("postgres")
    assert "pg_isready" in " ".join(map(str, (postgres.get("healthcheck") or {}).get("test") or [])), (
        "postgres needs a pg_isready healthcheck"
    )
    named = set(compose().get("volumes") or {})
    mounts = [str(volume).split(":") for volume in postgres.get("volumes") or []]
    assert any(source in named and target == "/var/lib/postgresql/data" for source, target, *_ in mounts), (
        "postgres must keep /var/lib/postgresql/data on a named volume"
    )


# The role each service connects to PostgreSQL as (None: it never does), and the variable holding its password.
DATABASE_ROLES = {
    "roles": Kind.OWNER,  # stands for the superuser here: see database_user()
    "migrate": Kind.OWNER,
    "worker": Kind.WORKER,
    "operator": Kind.OPERATOR,
    "submit": Kind.READER,
    "flower": None,
    # The HTTP API and the console read everything and change statuses, as the operator CLI does.
    "web": Kind.OPERATOR,
}
BROKER_USERS = {"worker", "flower", "submit", "web"}
REDIS_URL = re.compile(r"^redis://:\$\{REDIS_PASSWORD:\?[^}]+\}@redis:6379/0$")


def password_variables() -> dict[Kind, str]:
    """The variables `processor db roles` reads the roles' passwords from, by default."""
    from processor.cli import db_roles

    defaults = {str(param.name): str(param.default) for param in db_roles.params}
    return {kind: defaults[f"{kind.value}_password_env"] for kind in Kind}


def database_user(service_name: str) -> tuple[str, str]:
    """The PostgreSQL user a service must connect as, and the variable its password must come from."""
    if service_name == "roles":
        return environment_of(service("postgres"))["POSTGRES_USER"], "POSTGRES_PASSWORD"
    kind = DATABASE_ROLES[service_name]
    assert kind is not None
    role = Settings.model_fields[f"db_{kind.value}_role"].default
    return str(role), password_variables()[kind]


def test_every_app_service_has_a_database_role_decided() -> None:
    assert set(app_services()) == set(DATABASE_ROLES), "say in DATABASE_ROLES which role a new service connects as"


def test_app_services_connect_as_their_own_role_with_a_password_from_the_environment() -> None:
    postgres_db = environment_of(service("postgres")).get("POSTGRES_DB")
    for name, spec in app_services().items():
        environment = environment_of(spec)
        if DATABASE_ROLES[name] is None:
            assert "DATABASE_URL" not in environment, f"service {name} never uses the database: give it no URL"
            assert "PGPASSWORD" not in environment, f"service {name} never uses the database: give it no password"
            continue
        settings = Settings.model_validate({"DATABASE_URL": environment["DATABASE_URL"]})
        database = make_url(settings.database_url)
        user, variable = database_user(name)
        assert database.drivername == "postgresql+psycopg2"
        assert (database.host, database.port, database.database) == ("postgres", 5432, postgres_db), (
            f"service {name}: DATABASE_URL should name the postgres service's database {postgres_db}"
        )
        assert database.username == user, f"service {name} connects as {database.username}, not {user}"
        # In PGPASSWORD (libpq reads it), never in the URL: any character may be in it, and no log prints it.
        assert database.password is None, f"service {name}: no password in DATABASE_URL (PGPASSWORD holds it)"
        match = REQUIRED.match(environment.get("PGPASSWORD", ""))
        assert match is not None, f"service {name}: PGPASSWORD must be ${{{variable}:?...}}"
        assert match["name"] == variable, f"service {name}: PGPASSWORD comes from {match['name']}, not {variable}"


def test_the_broker_url_carries_the_redis_password() -> None:
    for name, spec in app_services().items():
        broker = environment_of(spec).get("CELERY_BROKER_URL")
        if name not in BROKER_USERS:
            assert broker is None, f"service {name} never uses the broker: give it no URL"
            continue
        assert broker is not None, f"service {name} sets no CELERY_BROKER_URL"
        assert REDIS_URL.match(broker), f"service {name}: {broker!r} is not redis://:${{REDIS_PASSWORD:?...}}@redis"
        # As Compose would fill it in: a URL the settings accept, with the password where Redis expects it.
        filled = Settings.model_validate({"CELERY_BROKER_URL": REQUIRED_VALUE.sub("pw", broker)}).celery_broker_url
        assert make_url(filled).password == "pw"


def test_app_services_set_only_settings_the_project_reads() -> None:
    from flower.options import options as flower_options

    # Besides the settings: libpq's PGPASSWORD, and the roles' passwords that `processor db roles` reads.
    known = {env_name(field) for field in Settings.model_fields} | {"PGPASSWORD", *password_variables().values()}
    for name, spec in app_services().items():
        for variable in environment_of(spec):
            if variable.startswith("FLOWER_"):
                option = variable.removeprefix("FLOWER_").lower()
                assert option in flower_options, f"service {name}: {variable} is not a Flower option"
            else:
                assert variable in known, f"service {name}: {variable} is not a setting (processor/config.py)"


def test_only_the_roles_service_has_the_superuser_and_the_roles_passwords() -> None:
    secrets = {"POSTGRES_PASSWORD", *password_variables().values()}
    for name, spec in app_services().items():
        given = {m["name"] for value in environment_of(spec).values() for m in REQUIRED_VALUE.finditer(value)}
        if name == "roles":
            assert given == secrets, f"roles needs exactly {sorted(secrets)}, has {sorted(given)}"
        else:
            _, own = database_user(name) if DATABASE_ROLES[name] else ("", "")
            assert given & secrets <= {own}, f"service {name} is given {sorted(given & secrets - {own})}"


def test_postgres_requires_a_password_for_every_connection() -> None:
    environment = environment_of(service("postgres"))
    assert "POSTGRES_HOST_AUTH_METHOD" not in environment, "no POSTGRES_HOST_AUTH_METHOD: a password, not trust"
    match = REQUIRED.match(environment.get("POSTGRES_PASSWORD", ""))
    assert match is not None, "POSTGRES_PASSWORD must be ${POSTGRES_PASSWORD:?...}: required, with no default"
    initdb = environment.get("POSTGRES_INITDB_ARGS", "").split()
    assert {"--auth-host=scram-sha-256", "--auth-local=scram-sha-256"} <= set(initdb), (
        "initdb must ask for scram-sha-256 on the network and on the container's socket"
    )
    assert not any("trust" in value for value in environment.values()), "no trust authentication"


def test_redis_requires_a_password() -> None:
    redis = service("redis")
    args = command_of(redis)
    assert "--requirepass" in args, "Redis must require a password (--requirepass)"
    match = REQUIRED.match(args[args.index("--requirepass") + 1])
    assert match is not None, "--requirepass must be ${REDIS_PASSWORD:?...}"
    assert match["name"] == "REDIS_PASSWORD"
    assert environment_of(redis).get("REDISCLI_AUTH") == args[args.index("--requirepass") + 1], (
        "the healthcheck's redis-cli reads the password from REDISCLI_AUTH"
    )
    check = " ".join(map(str, (redis.get("healthcheck") or {}).get("test") or []))
    assert "PONG" in check, "redis-cli exits 0 on NOAUTH too: the healthcheck must look for PONG"
    assert "REDIS_PASSWORD" not in check, "the healthcheck must not put the password on a command line"


def test_env_example_lists_what_compose_requires() -> None:
    required = {m["name"] for m in REQUIRED_VALUE.finditer(COMPOSE_FILE.read_text())}
    lines = [line for line in (ROOT / ".env.example").read_text().splitlines() if line and not line.startswith("#")]
    listed = {line.partition("=")[0] for line in lines}
    assert listed == required, f".env.example should list {sorted(required)}"


def test_every_secret_is_required_and_has_no_default() -> None:
    text = COMPOSE_FILE.read_text()
    for variable in re.finditer(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?P<rest>[^}]*)\}", text):
        if "PASSWORD" in variable["name"] or "AUTH" in variable["name"]:
            assert variable["rest"].startswith(":?"), f"{variable.group()} must be required: ${{NAME:?message}}"


# --- Start order, scaling, credentials -----------------------------------------------------------------------------


def test_workers_start_after_healthy_postgres_and_redis_the_roles_and_a_successful_migration() -> None:
    assert depends_on(service("worker")) == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    assert depends_on(service("migrate")) == {"postgres": "service_healthy", "roles": "service_completed_successfully"}
    assert depends_on(service("roles")) == {"postgres": "service_healthy"}
    for one_shot in ("roles", "migrate"):
        assert service(one_shot).get("restart") == "no", f"{one_shot} is one-shot (and `no` is quoted in YAML)"
    assert depends_on(service("flower")) == {"redis": "service_healthy", "worker": "service_started"}


def test_a_service_waited_for_as_healthy_has_a_healthcheck() -> None:
    for name, spec in services().items():
        for dependency, condition in depends_on(spec).items():
            assert dependency in services(), f"service {name} depends on {dependency}, which is not a service"
            if condition == "service_healthy":
                assert "healthcheck" in service(dependency), f"{name} waits for {dependency} to be healthy"


def test_flower_requires_basic_auth_from_the_environment() -> None:
    value = environment_of(service("flower")).get("FLOWER_BASIC_AUTH", "")
    match = REQUIRED.match(value)
    assert match is not None, f"FLOWER_BASIC_AUTH is {value!r}, not ${{FLOWER_BASIC_AUTH:?...}}"
    assert match["name"] == "FLOWER_BASIC_AUTH"


def test_worker_can_be_scaled() -> None:
    worker = service("worker")
    for fixed in ("container_name", "hostname", "ports"):
        assert fixed not in worker, f"worker sets {fixed}, so `docker compose up --scale worker=3` cannot work"


def test_worker_has_time_for_a_warm_shutdown() -> None:
    grace = duration_seconds(str(service("worker").get("stop_grace_period", "10s")))
    time_limit = processor.app.conf.task_time_limit
    assert isinstance(time_limit, int | float)
    assert grace >= max(30.0, float(time_limit)), (
        f"stop_grace_period {grace:g} s is shorter than the task time limit {time_limit} s: a worker stopped "
        "mid-task is killed and its messages wait out the visibility timeout"
    )


# --- The image ------------------------------------------------------------------------------------------------------


def test_image_copies_everything_the_package_and_migrations_need() -> None:
    image = image_layout()
    copied = set(image.paths.values())
    for path in needed_in_image():
        assert (ROOT / path).exists(), f"{path} is needed but missing from the project"
        assert path in copied, f"the Dockerfile does not COPY {path}"
        ignored = [pattern for pattern in dockerignore_patterns() if fnmatch.fnmatch(path, pattern)]
        assert not ignored, f".dockerignore excludes {path} ({ignored})"


def test_image_installs_the_lock_with_hashes_then_the_project_without_dependencies() -> None:
    image = image_layout()
    installs = pip_installs(image)
    locked = [index for index, (_, args) in enumerate(installs) if "-r" in args]
    assert len(locked) == 1, f"the Dockerfile should install one lock file with -r: {installs}"
    workdir, args = installs[locked[0]]
    assert "--require-hashes" in args, f"the lock must be installed with --require-hashes: pip install {args}"
    lock_path = workdir / args[args.index("-r") + 1]
    assert image.paths.get(lock_path) == RUNTIME_LOCK.name, f"{lock_path} is not the copied {RUNTIME_LOCK.name}"

    project = [index for index, (_, args) in enumerate(installs) if "." in args]
    assert len(project) == 1, f"the Dockerfile should `pip install --no-deps .` once: {installs}"
    workdir, args = installs[project[0]]
    assert project[0] > locked[0], "the project is installed after its locked dependencies"
    assert "--no-deps" in args, "the project must bring in nothing the lock does not pin: pip install --no-deps ."
    assert image.paths.get(workdir / "pyproject.toml") == "pyproject.toml", f"no pyproject.toml in {workdir}"
    assert len(installs) == 2, f"nothing but the lock and the project is installed: {installs}"


def test_image_needs_no_source_tree_on_the_path() -> None:
    # The migrations are installed with the package (processor.migrations), so the installed copy is the only one.
    assert "PYTHONPATH" not in dockerfile_env(), "the installed package needs no PYTHONPATH"
    assert "alembic.ini" not in set(image_layout().paths.values()), "`processor db upgrade` does not read alembic.ini"


def test_every_package_directory_is_listed_in_pyproject() -> None:
    # pyproject.toml lists the packages (the migrations map to processor.migrations), so a new package directory that
    # is not listed would be left out of the installed copy while the editable install still found it.
    listed = listed_packages()
    found: set[str] = set()
    for top, directory in (("processor", ROOT / "processor"), ("submit", ROOT / "submit")):
        for init in directory.rglob("__init__.py"):
            found.add(".".join([top, *init.parent.relative_to(directory).parts]))
    found.add("processor.migrations")
    found.add("processor.migrations.versions")  # no __init__.py: the revisions are loaded by Alembic, not imported
    assert sorted(found) == sorted(listed), f"[tool.setuptools] packages should be {sorted(found)}"
    for package in listed:
        assert package_directory(package).is_dir(), f"{package}: no directory {package_directory(package)}"
    assert package_directory("processor.migrations") == ROOT / "migrations", "processor.migrations is migrations/"
    data = setuptools_config().get("package-data") or {}
    assert "script.py.mako" in data.get("processor.migrations", []), "the revision template ships with the package"


def test_lock_files_pin_what_pyproject_asks_for_and_agree() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    runtime = lock_pins(RUNTIME_LOCK)
    dev = lock_pins(DEV_LOCK)
    assert_pins_satisfy([str(text) for text in project["dependencies"]], runtime, RUNTIME_LOCK)
    assert_pins_satisfy(
        [str(text) for text in [*project["dependencies"], *project["optional-dependencies"]["dev"]]], dev, DEV_LOCK
    )
    differing = {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version}
    assert not differing, f"the image would run other versions than the tests: {differing} (make lock)"
    assert not {"pytest", "ruff", "mypy"} & set(runtime), "dev tools in the runtime lock"


def test_image_runs_as_a_non_root_user_without_dev_dependencies() -> None:
    image = image_layout()
    assert image.user not in (None, "root", "0"), "the image must switch to a non-root USER"
    bases = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "FROM"]
    assert bases == ["python:3.11-slim"], f"base image {bases}"
    installs = [arguments for keyword, arguments in dockerfile_instructions() if "pip install" in arguments]
    assert installs, "the Dockerfile does not pip install the project"
    assert all("[dev]" not in install and "-e " not in install for install in installs), installs
    assert all(DEV_LOCK.name not in install for install in installs), installs
    env = dockerfile_env()
    assert env.get("PYTHONUNBUFFERED") == "1", "logs must not sit in a buffer"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PROCESSOR_ENV_FILE") == "", "the image's processes read their settings from the environment only"
