"""A faithful stand-in for the part of picamera2 that ``sensors.source_picamera2`` uses.

Written from picamera2's own source (``picamera2/picamera2.py``, ``request.py``,
``job.py``, ``controls.py``) and its manual, not copied: every behaviour below
names the picamera2 behaviour it reproduces, so a backend that passes against
this fake meets the same rules it meets on a Pi.

What it reproduces:

* Opening: ``Picamera2(n)`` looks ``n`` up in ``global_camera_info()`` (an
  ``IndexError`` when there is no such camera); a camera another ``Picamera2``
  holds cannot be acquired (``RuntimeError("Camera __init__ sequence did not
  complete.")``).
* ``create_video_configuration``: the documented defaults (main XBGR8888
  1280x720, lores YUV420 at the main size, six buffers, FrameRate 30); only
  ``format``, ``size``, ``stride`` and ``preserve_ar`` are stream keys
  (``ValueError`` otherwise); sizes rounded down to even. ``RuntimeError("Camera
  not opened")`` after ``close``.
* ``configure``: refused while started; the same checks as
  ``check_camera_config`` (known formats, even ``(w, h)`` tuples, lores no
  larger than main and YUV on a Pi 4); controls must be advertised
  (``FrameRate`` is picamera2's virtual control over ``FrameDurationLimits``);
  libcamera fills in each stream's ``stride`` (64-byte aligned rows here).
* ``start``: configures the preview configuration when nothing was
  configured; frames then complete at the configured rate, stamped with
  ``SensorTimestamp`` (ns, the sensor's clock).
* Requests: ``capture_request`` hands over a ``CompletedRequest`` that holds one
  of the ``buffer_count`` buffers until ``release()``; with every buffer held
  the pipeline stalls (no frame completes). ``make_array("lores")`` of YUV420
  is ``(h * 3 // 2, stride)`` (Y rows, then U and V; padding columns past the
  width); ``release`` twice raises; a released request has no streams.
* ``capture_array(name)`` and ``capture_file(out, name, format)``: the next
  frame's array, or its JPEG; a file object without ``format`` raises
  ``RuntimeError("Cannot determine format to save")``; an unknown stream raises
  ``RuntimeError("Stream 'x' is not defined")``.
* Waiting: ``wait=None`` blocks until the frame comes (forever if it never
  does: the fake gives up after ``HANG_LIMIT_S`` with an AssertionError so a
  test cannot hang); ``wait=<seconds>`` raises ``TimeoutError`` as
  ``Job.get_result`` does; ``cancel_all_and_flush`` drops pending jobs.
* ``stop``: a no-op when not started; ``close``: stops, frees the camera for
  the next ``Picamera2``, a no-op the second time.

``RGB888`` is picamera2's name for pixels stored B, G, R (OpenCV's order), so
the main stream here is a BGR array and its JPEG is OpenCV's encoding of it.
"""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["HANG_LIMIT_S", "FakeCameraSystem", "Scene", "make_module"]

HANG_LIMIT_S = 20.0
"""Where picamera2 would block forever, the fake raises AssertionError after this."""

Scene = Callable[[float, tuple[int, int]], NDArray[np.uint8]]
"""``scene(t, (width, height))`` -> BGR image the sensor sees at time ``t`` (s)."""

_YUV = {"YUV420", "YVU420", "YUYV", "YVYU", "UYVY", "VYUY", "NV12", "NV21"}
_RGB = {"RGB888", "BGR888", "XBGR8888", "XRGB8888", "RGB161616", "BGR161616"}
_STREAM_KEYS = ("format", "size", "stride", "preserve_ar")
_ADVERTISED_CONTROLS = {
    "FrameDurationLimits", "ExposureTime", "AnalogueGain", "AeEnable", "AwbEnable",
    "Brightness", "Contrast", "NoiseReductionMode", "ScalerCrop",
}


def default_scene(t: float, size: tuple[int, int]) -> NDArray[np.uint8]:
    """A grey corridor with a white block moving left to right, one width per 2 s."""
    width, height = size
    image = np.full((height, width, 3), 60, np.uint8)
    x = int((t / 2.0) % 1.0 * width)
    cv2.rectangle(image, (x, height // 4), (x + width // 8, 3 * height // 4), (250, 250, 250), -1)
    return image


@dataclass
class FakeSensor:
    """One camera on the CSI connector."""

    camera_id: str = "/base/soc/i2c0mux/i2c@1/imx708@1a"
    model: str = "imx708"
    scene: Scene = default_scene
    held_by: Any = None


@dataclass
class FakeCameraSystem:
    """The cameras the fake libcamera sees, and what tests may do to them."""

    sensors: list[FakeSensor] = field(default_factory=lambda: [FakeSensor()])
    # Set: the ribbon is out; the sensor stops delivering frames (no error, as on a Pi).
    stalled: threading.Event = field(default_factory=threading.Event)
    opened: list[Picamera2] = field(default_factory=list)

    def global_camera_info(self) -> list[dict[str, Any]]:
        """What picamera2's ``Picamera2.global_camera_info`` returns."""
        return [{"Model": s.model, "Location": 2, "Rotation": 180, "Id": s.camera_id, "Num": i}
                for i, s in enumerate(self.sensors)]


class CompletedRequest:
    """One finished frame holding one buffer until released (picamera2.request.CompletedRequest)."""

    def __init__(self, cam: Picamera2, timestamp_ns: int, t: float) -> None:
        self._cam = cam
        self.ref_count = 1
        self.config: dict[str, Any] = dict(cam.camera_config)
        self._stop_count = cam.stop_count
        self._timestamp_ns = timestamp_ns
        self._t = t
        self._metadata = {
            "SensorTimestamp": timestamp_ns,
            "ExposureTime": 20000,
            "FrameDuration": int(1e6 / cam.frame_rate),
            "AnalogueGain": 2.0,
            "DigitalGain": 1.0,
        }

    def acquire(self) -> None:
        """Take another reference."""
        if self.ref_count == 0:
            raise RuntimeError("CompletedRequest: acquiring lock with ref_count 0")
        self.ref_count += 1

    def release(self) -> None:
        """Give the buffer back to the camera (at ref count 0)."""
        self.ref_count -= 1
        if self.ref_count < 0:
            raise RuntimeError("CompletedRequest: lock now has negative ref_count")
        if self.ref_count == 0:
            self._cam._buffer_returned(self)
            self.config = {}

    def get_metadata(self) -> dict[str, Any]:
        """The frame's metadata; the request must still be held (picamera2 asserts it)."""
        assert self.ref_count > 0, "get_metadata on a released request"
        return dict(self._metadata)

    def _stream(self, name: str) -> dict[str, Any]:
        config = self.config.get(name)
        if config is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        return dict(config)

    def make_array(self, name: str) -> NDArray[np.uint8]:
        """A copy of the stream's buffer as picamera2 shapes it."""
        config = self._stream(name)
        width, height = config["size"]
        stride = config["stride"]
        fmt = config["format"]
        sensor_image = self._cam._sensor.scene(self._t, (width, height))
        if fmt in ("YUV420", "YVU420"):
            y = cv2.cvtColor(sensor_image, cv2.COLOR_BGR2GRAY)
            # Padding bytes past the width hold whatever the ISP left there.
            out = np.full((height * 3 // 2, stride), 0xA5, np.uint8)
            out[:height, :width] = y
            out[height:, :] = 128
            return out
        if fmt in ("RGB888", "BGR888"):
            bgr = sensor_image if fmt == "RGB888" else sensor_image[:, :, ::-1]
            return np.ascontiguousarray(bgr)
        if fmt in ("XBGR8888", "XRGB8888"):
            bgr = sensor_image if fmt == "XRGB8888" else sensor_image[:, :, ::-1]
            alpha = np.full((height, width, 1), 255, np.uint8)
            return np.ascontiguousarray(np.concatenate([bgr, alpha], axis=2))
        raise RuntimeError("Format " + fmt + " not supported")

    def save(self, name: str, file_output: Any, format: str | None = None) -> None:
        """Write the stream as JPEG or PNG."""
        self._stream(name)
        if isinstance(format, str):
            fmt = format.lower()
        elif isinstance(file_output, str):
            fmt = file_output.rsplit(".", 1)[-1].lower()
        else:
            raise RuntimeError("Cannot determine format to save")
        array = self.make_array(name)
        if self.config[name]["format"] in ("YUV420", "YVU420"):
            width, height = self.config[name]["size"]
            array = cv2.cvtColor(array[:, :width], cv2.COLOR_YUV2BGR_I420)[:height]
        ext = {"jpg": ".jpg", "jpeg": ".jpg", "png": ".png"}.get(fmt)
        if ext is None:
            raise ValueError(f"unknown file extension: {fmt}")  # what PIL raises
        ok, encoded = cv2.imencode(ext, array[:, :, :3], [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        if isinstance(file_output, str):
            with open(file_output, "wb") as f:
                f.write(encoded.tobytes())
        else:
            file_output.write(encoded.tobytes())


class Picamera2:
    """The picamera2 ``Picamera2`` class, as far as doorwatch uses it."""

    system: FakeCameraSystem  # set by make_module

    def __init__(self, camera_num: int = 0, tuning: Any = None) -> None:
        """Open camera ``camera_num``."""
        self.is_open = False
        self.started = False
        self.camera_config: dict[str, Any] = {}
        self.stop_count = 0
        self.frame_rate = 30.0
        info = self.global_camera_info()
        num = info[camera_num]["Num"]  # IndexError with no such camera, as in picamera2
        self._sensor = self.system.sensors[num]
        if self._sensor.held_by is not None:
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self._sensor.held_by = self
        self.is_open = True
        self.system.opened.append(self)
        self._held = 0
        self._cond = threading.Condition()
        self._frames = 0
        self._start_ns = 0
        self._cancelled = 0

    def global_camera_info(self) -> list[dict[str, Any]]:
        """Every attached camera, one dict each."""
        return self.system.global_camera_info()

    # configuration

    def create_video_configuration(
        self,
        main: dict[str, Any] | None = None,
        lores: dict[str, Any] | None = None,
        raw: dict[str, Any] | None = None,
        transform: Any = None,
        colour_space: Any = None,
        buffer_count: int = 6,
        controls: dict[str, Any] | None = None,
        display: str | None = "main",
        encode: str | None = "main",
        queue: bool = True,
        sensor: dict[str, Any] | None = None,
        use_case: str = "video",
    ) -> dict[str, Any]:
        """A video configuration dict with picamera2's defaults filled in."""
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main_cfg = self._stream_config(
            {"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True}, main or {})
        assert main_cfg is not None
        lores_cfg = self._stream_config(
            {"format": "YUV420", "size": main_cfg["size"], "preserve_ar": False}, lores)
        merged_controls = {"FrameDurationLimits": (33333, 33333)} | (controls or {})
        for name in (display, encode):
            if name is not None and {"main": main_cfg, "lores": lores_cfg}.get(name) is None:
                raise RuntimeError(f"Display stream {name} was not defined")
        return {
            "use_case": use_case, "transform": transform or "identity",
            "colour_space": colour_space or "Rec709", "buffer_count": buffer_count,
            "queue": queue, "main": main_cfg, "lores": lores_cfg, "raw": None,
            "controls": merged_controls, "sensor": sensor, "display": display, "encode": encode,
        }

    def create_preview_configuration(self) -> dict[str, Any]:
        """The preview configuration (what ``start`` uses when nothing was configured)."""
        config = self.create_video_configuration(main={"size": (640, 480)}, buffer_count=4)
        config["use_case"] = "preview"
        return config

    @staticmethod
    def _stream_config(
        defaults: dict[str, Any], updates: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        if updates is None:
            return None
        config = dict(defaults)
        for key, value in updates.items():
            if key not in _STREAM_KEYS:
                raise ValueError(
                    f"Bad key {key!r}: valid stream configuration keys are {_STREAM_KEYS}")
            config[key] = value
        size = config["size"]
        # picamera2's align_stream(optimal=False): round down to even.
        config["size"] = (size[0] - size[0] % 2, size[1] - size[1] % 2)
        return config

    @staticmethod
    def _check_stream(config: Any, name: str) -> None:
        if type(config) is not dict:
            raise RuntimeError(name + " stream should be a dictionary")
        for key in ("format", "size"):
            if key not in config:
                raise RuntimeError(f"{key} not found in {name} stream")
        fmt = config["format"]
        if type(fmt) is not str:
            raise RuntimeError("format in " + name + " stream should be a string")
        if fmt not in _YUV | _RGB | {"MJPEG"}:
            raise RuntimeError("Bad format " + fmt + " in stream " + name)
        size = config["size"]
        if type(size) is not tuple or len(size) != 2:
            raise RuntimeError("size in " + name + " stream should be (width, height)")
        if size[0] % 2 or size[1] % 2:
            raise RuntimeError("width and height should be even")

    def configure(self, camera_config: Any = None) -> None:
        """Apply a configuration (picamera2's ``configure_``)."""
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if camera_config is None or camera_config == "preview":
            camera_config = self.create_preview_configuration()
        if not isinstance(camera_config, dict):
            raise TypeError("Invalid type for `camera_config` given")
        config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in camera_config.items()}
        for key in ("colour_space", "transform", "main", "lores", "raw"):
            if key not in config:
                raise RuntimeError(f"{key!r} key expected in camera configuration")
        self._check_stream(config["main"], "main")
        if config["lores"] is not None:
            self._check_stream(config["lores"], "lores")
            main_w, main_h = config["main"]["size"]
            lores_w, lores_h = config["lores"]["size"]
            if lores_w > main_w or lores_h > main_h:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if config["lores"]["format"] not in _YUV:  # Pi 4 (VC4) rule
                raise RuntimeError("lores stream must be YUV")
        controls = dict(config.get("controls") or {})
        if "FrameRate" in controls:  # picamera2's virtual control
            rate = controls.pop("FrameRate")
            low, high = rate if isinstance(rate, (tuple, list)) else (rate, rate)
            controls["FrameDurationLimits"] = (int(1e6 / high), int(1e6 / low))
        for name in controls:
            if name not in _ADVERTISED_CONTROLS:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
        self.frame_rate = 1e6 / controls.get("FrameDurationLimits", (33333, 33333))[0]
        for name in ("main", "lores"):
            stream = config[name]
            if stream is None:
                continue
            width = stream["size"][0]
            fmt = stream["format"]
            bpp = 1 if fmt in ("YUV420", "YVU420") else (4 if "X" in fmt else 3)
            stream["stride"] = -(-width * bpp // 64) * 64  # libcamera pads rows to 64 bytes
        config["controls"] = controls
        self.camera_config = config

    # running

    def start(self, config: Any = None, show_preview: bool | None = False) -> None:
        """Start delivering frames; configures the preview configuration if none was given."""
        if not self.camera_config and config is None:
            config = "preview"
        if config is not None:
            self.configure(config)
        if self.started:
            return
        with self._cond:
            self.started = True
            self._start_ns = time.monotonic_ns()
            self._frames = 0

    def stop(self) -> None:
        """Stop the camera (a no-op when it is not started)."""
        if not self.started:
            return
        with self._cond:
            self.started = False
            self.stop_count += 1
            self._cond.notify_all()

    def close(self) -> None:
        """Stop and free the camera; a no-op when already closed."""
        if not self.is_open:
            return
        self.stop()
        self.is_open = False
        self.camera_config = {}
        self._sensor.held_by = None

    def cancel_all_and_flush(self) -> None:
        """Cancel every pending capture job."""
        with self._cond:
            self._cancelled += 1
            self._cond.notify_all()

    def _buffer_returned(self, request: CompletedRequest) -> None:
        with self._cond:
            self._held -= 1
            self._cond.notify_all()

    @property
    def held_requests(self) -> int:
        """Buffers the application holds (test inspection)."""
        return self._held

    def _next_request(self, wait: Any) -> CompletedRequest:
        """Wait for the next completed frame, as ``dispatch_functions`` + ``Job.get_result`` do."""
        timeout = None if wait is None or wait is True else float(wait)
        give_up = time.monotonic() + (HANG_LIMIT_S if timeout is None else timeout)
        cancelled = self._cancelled
        with self._cond:
            while True:
                if self._cancelled != cancelled:
                    raise RuntimeError("job cancelled")  # concurrent.futures.CancelledError
                interval_ns = int(1e9 / self.frame_rate)
                due_ns = self._start_ns + self._frames * interval_ns
                now_ns = time.monotonic_ns()
                # A frame completes only while started, with the sensor delivering and at
                # least one buffer still queued to the camera (one stays with libcamera).
                can_complete = (self.started and not self.system.stalled.is_set()
                                and self._held < self.camera_config["buffer_count"] - 1)
                if can_complete and now_ns >= due_ns:
                    # Frames that completed while nobody asked were recycled; take the newest.
                    missed = (now_ns - due_ns) // interval_ns
                    self._frames += int(missed)
                    stamp = self._start_ns + self._frames * interval_ns
                    t = self._frames / self.frame_rate
                    self._frames += 1
                    self._held += 1
                    return CompletedRequest(self, stamp, t)
                left = give_up - time.monotonic()
                if left <= 0:
                    if timeout is None:
                        raise AssertionError(
                            f"picamera2 would block here forever (no frame in {HANG_LIMIT_S} s)")
                    raise TimeoutError()
                pause = max(0.0, (due_ns - now_ns) / 1e9) if can_complete else 0.05
                self._cond.wait(min(left, max(pause, 0.001)))

    def capture_request(self, wait: Any = None, signal_function: Any = None,
                        flush: Any = None) -> CompletedRequest:
        """The next completed request; the caller must ``release()`` it."""
        return self._next_request(wait)

    def capture_array(self, name: str = "main", wait: Any = None,
                      signal_function: Any = None) -> NDArray[np.uint8]:
        """The next frame of stream ``name`` as an array."""
        request = self._next_request(wait)
        try:
            return request.make_array(name)
        finally:
            request.release()

    def capture_file(self, file_output: Any, name: str = "main", format: str | None = None,
                     wait: Any = None, signal_function: Any = None,
                     exif_data: Any = None) -> dict[str, Any]:
        """Encode the next frame of stream ``name`` to ``file_output``; return its metadata."""
        request = self._next_request(wait)
        try:
            request.save(name, file_output, format=format)
            return request.get_metadata()
        finally:
            request.release()


def make_module(system: FakeCameraSystem) -> types.ModuleType:
    """A ``picamera2`` module whose cameras are ``system``'s."""
    module = types.ModuleType("picamera2")
    camera_class = type("Picamera2", (Picamera2,), {"system": system})
    module.Picamera2 = camera_class  # type: ignore[attr-defined]
    return module
