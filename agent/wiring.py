"""The agent assembled in one place: every part the configuration asks for, and
how the parts are connected to each other and to the agent that coordinates them.

:func:`build_parts` makes the outbox, state, MQTT link, recorder, evidence
store, the tamper, health and episode reporters, early exits, command handlers,
the door contact, the chime and check-ins; the agent (agent/service.py) is
reached only through :class:`AgentHooks`. :func:`build_camera` makes the camera
source and pipeline: backends are imported only when chosen
(:func:`sensors.sources.open_source`); an unusable backend is an error at
start, never a silent fallback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agent.camera import CameraPipeline
from agent.checkin import CheckinWatch
from agent.classify import EpisodeWindow
from agent.early_exit import EarlyExitHost, EarlyExits
from agent.episode_report import EpisodeReporter
from agent.episodes import EpisodeTracker
from agent.evidence import EvidenceStore
from agent.handlers import CommandHandlers, CommandTarget
from agent.health_report import HealthReporter
from agent.link import AgentLink
from agent.outbox import Outbox
from agent.recorder import Recorder
from agent.state import DeviceState
from agent.tamper_report import TamperReporter
from firmware_config.device_config import DeviceConfig
from firmware_config.scene import Scene
from ground.errors import ConfigError
from sensors.chime import Chime
from sensors.door import DoorContact, DoorTransition
from sensors.frames import FrameSource
from sensors.source_synthetic import Scenario, SyntheticSource
from sensors.sources import open_source

__all__ = ["AgentHooks", "AgentParts", "build_camera", "build_parts", "source_opener",
           "synthetic_source"]


class AgentHooks(EarlyExitHost, CommandTarget, Protocol):
    """What the parts call back on the agent that coordinates them."""

    def door_changed(self, transition: DoorTransition) -> None:
        """The door (or, without a reed switch, the doorway) opened or closed; any thread."""
        ...

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` in the background, kept until it ends."""
        ...

    def on_command(self, command: Any) -> None:
        """A command arrived from the server (on the event loop)."""
        ...

    async def episode_started(self, started: float) -> None:
        """A door episode began at monotonic ``started``."""
        ...

    async def episode_ended(self, window: EpisodeWindow) -> None:
        """A door episode ended: judge and report it."""
        ...


@dataclass(frozen=True, slots=True)
class AgentParts:
    """Everything an agent runs, built and connected by :func:`build_parts`."""

    outbox: Outbox
    state: DeviceState
    link: AgentLink
    recorder: Recorder
    evidence_store: EvidenceStore
    tamper: TamperReporter
    health: HealthReporter
    episodes: EpisodeTracker
    door: DoorContact | None
    reporter: EpisodeReporter
    early: EarlyExits
    commands: CommandHandlers
    chime: Chime | None
    checkins: CheckinWatch


def build_parts(config: DeviceConfig, agent: AgentHooks, *, pin_factory: Any,
                camera: CameraPipeline | None) -> AgentParts:
    """The parts of ``agent`` for ``config``, connected to each other, the camera and it.

    Nothing here runs yet: the outbox is opened by the agent on its event loop,
    and the parts call ``agent`` only once it runs.
    """
    outbox = Outbox(config.data_dir / "outbox.db", budget_bytes=_mb(config.outbox.disk_budget_mb))
    state = DeviceState(config.data_dir / "state.json", config.armed_default)
    link = AgentLink(config.device_id, config.mqtt, outbox, on_command=agent.on_command)
    recorder = Recorder(config.device_id, outbox, link, backlog=config.outbox.memory_backlog)
    evidence_store = EvidenceStore(
        config.data_dir / "evidence", budget_bytes=_mb(config.evidence.disk_budget_mb),
        keep_days=config.evidence.keep_days)
    tamper = TamperReporter(config.device_id, state, recorder, agent.spawn)
    health = HealthReporter(
        lambda: agent.config, state=state, outbox=outbox, recorder=recorder,
        evidence=evidence_store, link=link, tamper=tamper, camera=camera)
    episodes = EpisodeTracker(
        config.door.quiet_s, agent.episode_ended, max_open_s=config.door.max_open_s,
        stuck_open_s=config.door.stuck_open_s, on_start=agent.episode_started,
        # Long movement in front of the camera is no disconnected sensor.
        **({"on_stuck": tamper.door_stuck} if config.door.fitted else {}))
    door = None
    if config.door.fitted:
        door = DoorContact(
            config.door.gpio_pin, pin_factory=pin_factory, pull_up=config.door.pull_up,
            bounce_s=config.door.bounce_s, on_change=agent.door_changed)
    early = EarlyExits(agent)
    reporter = EpisodeReporter(
        lambda: agent.config, state=state, recorder=recorder, outbox=outbox,
        evidence=evidence_store, report_final=early.report_final)
    chime = None
    if config.chime.fitted:
        chime = Chime(config.chime.gpio_pin, pin_factory=pin_factory,
                      beeps=config.chime.beeps, beep_s=config.chime.beep_s)
    if camera is not None:
        if not config.door.fitted:
            # No reed switch: movement in the doorway opens and closes the "door".
            camera.on_doorway = agent.door_changed
        if camera.on_tamper is None:
            camera.on_tamper = tamper.camera_finding
        camera.on_passage = early.passage_seen
    return AgentParts(
        outbox=outbox, state=state, link=link, recorder=recorder,
        evidence_store=evidence_store, tamper=tamper, health=health, episodes=episodes,
        door=door, reporter=reporter, early=early, commands=CommandHandlers(agent),
        chime=chime, checkins=CheckinWatch(config.device_id, state, recorder, chime))


def _mb(value: float) -> int:
    return int(value * 1_000_000)


def synthetic_source(config: DeviceConfig) -> SyntheticSource:
    """An endless, real-time synthetic corridor for simulation."""
    cam = config.camera
    return SyntheticSource(Scenario((), None), seed=cam.synthetic_seed,
                           size=(cam.width, cam.height), fps=cam.fps, realtime=True)


def source_opener(config: DeviceConfig,
                  synthetic: SyntheticSource | None = None) -> Callable[[], FrameSource]:
    """A function that opens the configured camera (called again after a failure)."""
    cam = config.camera
    if cam.backend == "picamera2":
        return lambda: open_source("picamera2", lores_size=(cam.width, cam.height),
                                   main_size=(cam.main_width, cam.main_height), fps=cam.fps)
    if cam.backend == "opencv":
        return lambda: open_source("opencv", cam.source)
    if cam.backend == "synthetic":
        source = synthetic or synthetic_source(config)
        return lambda: source
    raise ConfigError("no camera configured", field="camera.backend")


def scene_for(config: DeviceConfig, synthetic: SyntheticSource | None) -> Scene | None:
    """The configured scene, or the synthetic corridor's own; None until a line is drawn.

    A real camera's door line is drawn in the dashboard after commissioning and
    arrives as a configuration update; until then the camera runs without
    analysis and every episode is unverified (agent/camera.py).
    """
    if config.camera.scene is not None:
        return config.camera.scene
    if synthetic is not None:
        return synthetic.scene
    return None


def build_camera(config: DeviceConfig, synthetic: SyntheticSource | None = None,
                 ) -> CameraPipeline | None:
    """The camera pipeline for ``config`` (None for ``camera.backend = "none"``)."""
    if config.camera.backend == "none":
        return None
    if config.camera.backend == "synthetic" and synthetic is None:
        synthetic = synthetic_source(config)
    return CameraPipeline(
        source_opener(config, synthetic), scene_for(config, synthetic), fps=config.camera.fps,
        ring_s=config.evidence.pre_event_s, analysis_wait_s=config.camera.analysis_wait_s,
        tamper_checks=config.tamper.camera,
        # picamera2's main stream (main_width x main_height) for evidence pictures.
        main_stream=config.camera.backend == "picamera2", device_id=config.device_id)
