"""Build the parts the configuration asks for: camera source and pipeline.

Backends are imported only when chosen (:func:`sensors.sources.open_source`);
an unusable backend is an error at start, never a silent fallback.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.camera import CameraPipeline
from firmware_config.device_config import DeviceConfig
from firmware_config.scene import Scene
from ground.errors import ConfigError
from sensors.frames import FrameSource
from sensors.source_synthetic import Scenario, SyntheticSource
from sensors.sources import open_source

__all__ = ["build_camera", "source_opener", "synthetic_source"]


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
        main_stream=config.camera.backend == "picamera2")
