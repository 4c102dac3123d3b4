"""Device-side commands: ``doorwatch agent run`` and ``doorwatch sim``."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from agent.credentials import install_bundle_command

__all__ = ["agent_app", "sim_command"]

agent_app = typer.Typer(help="The device service.", no_args_is_help=True)

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Device TOML file (default: $DOORWATCH_AGENT_CONFIG, "
                 "else /etc/doorwatch/agent.toml, as written by `agent install-bundle`)"),
]


def _run_until_signal(main: Callable[[], Awaitable[T]]) -> T | None:
    """Run ``main`` and cancel it cleanly on SIGINT/SIGTERM."""

    async def wrapper() -> T | None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await main()
        except asyncio.CancelledError:
            return None

    return asyncio.run(wrapper())


@agent_app.command("run")
def run_command(
    config: ConfigOption = None,
    simulate: Annotated[
        bool, typer.Option(envvar="DOORWATCH_AGENT_SIMULATE",
                           help="Mock door, synthetic camera and a simulated household "
                           "(for a machine without the Pi's camera and reed switch)")
    ] = False,
    scripted: Annotated[
        bool,
        typer.Option(
            help="Simulation without the camera: the script decides the verdict "
            "(fast, for many agents on a small machine)"
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Simulation seed")] = 1,
    mean_interval: Annotated[
        float, typer.Option(help="Simulation: mean seconds between door openings")
    ] = 20.0,
    exit_probability: Annotated[
        float, typer.Option(help="Simulation: share of openings that are exits")
    ] = 0.3,
    log_level: Annotated[str, typer.Option(help="Log level")] = "INFO",
) -> None:
    """Run the agent until interrupted."""
    from agent.classify import EpisodeClassifier, ScriptedClassifier
    from agent.config_file import load_agent_config
    from agent.service import Agent, running_agent
    from agent.simulation import CameraHousehold, HouseholdScript, SimulatedHousehold
    from agent.wiring import build_camera, synthetic_source
    from ground.errors import DoorwatchError
    from ground.i18n import cli_language
    from ground.logs import configure_logging
    from sensors.door import make_pin_factory

    configure_logging(log_level)
    try:
        overrides: dict[str, Any] = {}
        if simulate:
            backend = "none" if scripted else "synthetic"
            overrides = {"pin_factory": "mock", "camera": {"backend": backend}}
        settings = load_agent_config(config, cli_language(), **overrides)
        pin_factory = make_pin_factory(settings.pin_factory)
        synthetic = synthetic_source(settings) if settings.camera.backend == "synthetic" else None
        camera = build_camera(settings, synthetic)
    except DoorwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    script = HouseholdScript(
        seed=seed, mean_interval_s=mean_interval, exit_probability=exit_probability
    )

    async def main() -> None:
        classifier: EpisodeClassifier | None = (
            ScriptedClassifier() if simulate and scripted else None
        )
        agent = Agent(settings, pin_factory=pin_factory, classifier=classifier, camera=camera)
        extra: dict[str, Callable[[], Awaitable[None]]] = {}
        if simulate and agent.door is not None:
            agent.door.pin.drive_low()  # the simulated door is shut when the agent starts
            if isinstance(classifier, ScriptedClassifier):
                extra["household"] = SimulatedHousehold(agent.door.pin, classifier, script).run
            elif synthetic is not None:
                extra["household"] = CameraHousehold(agent.door.pin, synthetic, script).run
        async with running_agent(agent, extra):
            await asyncio.Event().wait()

    try:
        _run_until_signal(main)
    except DoorwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@agent_app.command("commission")
def commission_command(
    config: ConfigOption = None,
    aim: Annotated[
        Path, typer.Option(help="Where to write the annotated aim picture (PNG)")
    ] = Path("aim.png"),
    simulate: Annotated[
        bool, typer.Option(envvar="DOORWATCH_AGENT_SIMULATE",
                           help="Mock door (driven automatically) and synthetic camera")
    ] = False,
    simulate_fault: Annotated[
        str | None, typer.Option(help="Simulation only: 'door-unplugged' leaves the sensor open")
    ] = None,
    language: Annotated[
        str | None,
        typer.Option(help="zh_CN or en (default: --lang / DOORWATCH_LANG, else the config's)"),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level")] = "WARNING",
) -> None:
    """The installer's checklist: PASS/FAIL per check with what to do; exit 0 only if all pass."""
    from agent.commission import Commissioning
    from agent.config_file import load_agent_config
    from agent.wiring import scene_for, source_opener, synthetic_source
    from ground.errors import DoorwatchError
    from ground.i18n import cli_language, explicit_language, normalize_language
    from ground.logs import configure_logging
    from sensors.door import make_pin_factory

    configure_logging(log_level)
    try:
        overrides: dict[str, Any] = {}
        if simulate:
            overrides = {"pin_factory": "mock", "camera": {"backend": "synthetic"}}
        # --language, else --lang / DOORWATCH_LANG, else the device's configured language.
        language = language or explicit_language()
        if language:
            overrides["language"] = normalize_language(language)
        settings = load_agent_config(config, language or cli_language(), **overrides)
        pin_factory = make_pin_factory(settings.pin_factory)
        synthetic = synthetic_source(settings) if settings.camera.backend == "synthetic" else None
        opener = None if settings.camera.backend == "none" else source_opener(settings, synthetic)
        scene = None if opener is None else scene_for(settings, synthetic)
    except DoorwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    check = Commissioning(
        settings,
        pin_factory=pin_factory,
        open_source=opener,
        scene=scene,
        aim_path=aim,
        drive_door=simulate,
        door_unplugged=simulate_fault == "door-unplugged",
        say=lambda text: typer.echo(text, err=True),
    )
    results = asyncio.run(check.run())
    typer.echo(check.render(results))
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@agent_app.command("config-schema")
def config_schema_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file")
    ] = None,
) -> None:
    """Print the JSON Schema of the device configuration file."""
    from firmware_config.device_config import device_config_schema

    text = json.dumps(device_config_schema(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


# `doorwatch agent install-bundle FILE` (issue 5 owns the command, in agent/credentials.py).
agent_app.command("install-bundle")(install_bundle_command)


def sim_command(
    credentials: Annotated[Path, typer.Option(help='JSON file {"device-id": "password"}')],
    host: Annotated[str, typer.Option(help="Broker address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Broker port")] = 1883,
    broker: Annotated[
        list[str] | None,
        typer.Option(help="Another node of a clustered broker, host:port (repeatable); devices "
                     "move to the next node when theirs fails"),
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option(help="Connect with TLS, verifying the broker against this CA "
                                  "(the broker directory's ca.crt)")] = None,
    data_dir: Annotated[Path, typer.Option(help="Folder for the fleet's outbox")] = Path(
        "sim-data"
    ),
    events: Annotated[int, typer.Option(help="Records per device (restart-safe total)")] = 100,
    rate: Annotated[
        float, typer.Option(help="Records per second, whole fleet (0 = as fast as possible)")
    ] = 100.0,
    drain_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the last acknowledgements")
    ] = 120.0,
    seed: Annotated[int, typer.Option(help="Random seed")] = 1,
    heartbeat_interval: Annotated[
        float, typer.Option(help="Seconds between each device's heartbeats (0 = none)")
    ] = 0.0,
    duration: Annotated[
        float, typer.Option(help="Keep the fleet connected at least this many seconds")
    ] = 0.0,
    log_level: Annotated[str, typer.Option(help="Log level")] = "WARNING",
) -> None:
    """Fleet simulator: simulated devices publishing events through the real outbox and link."""
    from agent.fleet import load_credentials, run_fleet
    from ground.errors import DoorwatchError
    from ground.logs import configure_logging

    configure_logging(log_level)
    try:
        creds = load_credentials(credentials)
    except DoorwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    result = _run_until_signal(
        lambda: run_fleet(
            credentials=creds,
            host=host,
            port=port,
            brokers=broker or [],
            ca_file=ca_file,
            data_dir=data_dir,
            events=events,
            rate=rate,
            drain_timeout_s=drain_timeout,
            seed=seed,
            heartbeat_interval_s=heartbeat_interval,
            duration_s=duration,
        )
    )
    if result is None:
        raise typer.Exit(130)
    typer.echo(json.dumps(result.__dict__))
    if result.pending:
        raise typer.Exit(1)
