"""Every wire message of protocol v1 as a pydantic model.

Nothing outside ``broker/`` parses or dumps message JSON: agents build these
models and call :func:`encode`; the server calls :func:`decode_device_message`
and gets a validated model or a :class:`~ground.errors.PayloadError` whose
``reason`` goes into the rejected-messages table.

Every message carries a ``type`` tag (the discriminator) and ``v``, the schema
version. Device records (events and command acks) also carry the device's
monotonically increasing ``seq`` and a unique ``event_id``: the server stores
``(device_id, seq)`` uniquely, so redelivery is harmless and gaps are visible.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from uuid import UUID, uuid4

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import SchemaValidator, core_schema

from broker.door_line import DoorLine
from broker.topics import DEVICE_ID_PATTERN, Channel, TopicInfo
from ground.errors import PayloadError

__all__ = [
    "EVENT_SCHEMA_VERSION",
    "MAX_PAYLOAD_BYTES",
    "MAX_SEQ",
    "SCHEMA_VERSION",
    "ArmCommand",
    "CheckinCommand",
    "Command",
    "CommandAck",
    "CommandName",
    "ConfigUpdateCommand",
    "DeviceIdMismatchError",
    "DeviceMessage",
    "DeviceRecord",
    "DeviceState",
    "DisarmCommand",
    "EpisodeInfo",
    "Event",
    "EventKind",
    "Heartbeat",
    "PassageInfo",
    "PingCommand",
    "RotateCredentialsCommand",
    "Snapshot",
    "SnapshotCommand",
    "Status",
    "TamperKind",
    "decode_command",
    "decode_device_message",
    "decode_record_fields",
    "encode",
    "episode_report_problem",
    "json_schemas",
    "utc_now",
]

SCHEMA_VERSION: Literal[1] = 1
# Events may be version 2: an episode report (early exit, then the episode's final
# verdict) carries ``episode_id``, ``report`` and, when final, ``verdict``. Every other
# message, and every v1 event, stays version 1; the server accepts both.
EVENT_SCHEMA_VERSION: Literal[2] = 2
# Events and heartbeats are small; snapshots are JPEGs (base64) of a few
# hundred kB at most. Anything larger is refused before JSON parsing.
MAX_EVENT_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 2 * 1024 * 1024

DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN, description="Device id (= MQTT user)")]

# seq is stored as an SQL BIGINT: a larger one would validate here and then fail
# the whole database batch it arrived in.
MAX_SEQ = 2**63 - 1
# The server stores times as UTC text and subtracts rule windows from them, so a
# time that cannot be converted to UTC (year 1 with a positive offset) or sits at
# the calendar's edge would fail deep inside a transaction. A Pi without a
# real-time clock may well say 1970, so that stays valid.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _utc_text(value: datetime) -> str:
    """A wire time as UTC text: offsets with seconds (e.g. LMT) do not survive JSON."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# The range is checked by pydantic-core itself (comparing instants, offsets included,
# so year 1 at +01:00 is simply "too early"), and the UTC normalization happens when a
# model is written as JSON: no Python call per time on the server's ingest path.
WireTime = Annotated[
    AwareDatetime,
    Field(ge=_EARLIEST, lt=_LATEST),
    PlainSerializer(_utc_text, return_type=str, when_used="json"),
]


# The version as a strict integer equal to 1: a ``Literal[1]`` also matches JSON ``true``
# and ``1.0`` (they compare equal to 1), even in strict mode.
SchemaVersion = Annotated[int, Strict(), Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION),
                          WithJsonSchema({"const": SCHEMA_VERSION, "type": "integer"})]
EventVersion = Annotated[
    int, Strict(), Field(ge=SCHEMA_VERSION, le=EVENT_SCHEMA_VERSION),
    WithJsonSchema({"enum": [SCHEMA_VERSION, EVENT_SCHEMA_VERSION], "type": "integer"})]


class _Wire(BaseModel):
    """Base of every wire message: strict about unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: SchemaVersion = Field(SCHEMA_VERSION, description="Wire schema version")


class EventKind(StrEnum):
    """What a device event reports (see DESIGN.md, "Event semantics")."""

    DOOR_OPEN = "door_open"
    DOOR_CLOSE = "door_close"
    EXIT = "exit"
    ENTRY = "entry"
    HANDOVER = "handover"
    DOOR_OPEN_UNVERIFIED = "door_open_unverified"
    TAMPER = "tamper"
    COMMISSIONING = "commissioning"
    HEALTH_ALARM = "health_alarm"
    CHECKIN = "checkin"  # the outcome of a presence check-in (see CheckinCommand)


class TamperKind(StrEnum):
    """Kinds of tampering a device can detect about itself."""

    CAMERA_COVERED = "camera_covered"
    CAMERA_BLINDED = "camera_blinded"
    CAMERA_MOVED = "camera_moved"
    CAMERA_FROZEN = "camera_frozen"
    CAMERA_FAILED = "camera_failed"
    DOOR_SENSOR_DISCONNECTED = "door_sensor_disconnected"
    CLOCK_JUMP = "clock_jump"


class PassageInfo(BaseModel):
    """One crossing of the doorway threshold seen by the camera."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Bounded so that a forged or corrupt value is refused at the boundary (recorded as a
    # rejected message) instead of overflowing a datetime later and failing the whole batch;
    # an episode is at most minutes long, a day is far beyond any real one.
    t: float = Field(ge=-86_400.0, le=86_400.0,
                     description="Seconds since the episode started (within one day)")
    direction: Literal["out", "in"] = Field(description="out = leaving the household")
    track: int = Field(ge=0, description="Analyzer track id")
    confidence: float = Field(ge=0.0, le=1.0)
    box: tuple[float, float, float, float] | None = Field(
        None, description="Optional (added in session 6; a server before it refuses it): "
        "where the person was at the crossing in the event's snapshot, normalized "
        "[x1, y1, x2, y2] in 0..1; the server crops the alert's picture to it, else to the "
        "door line")

    @model_validator(mode="after")
    def _box(self) -> Self:
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            if not (0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0):
                raise ValueError("box is [x1, y1, x2, y2] with 0 <= x1 < x2 <= 1 and "
                                 "0 <= y1 < y2 <= 1")
        return self


class EpisodeInfo(BaseModel):
    """A door episode: from the door opening until it stayed closed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    started_at: WireTime
    ended_at: WireTime
    door_sensor: bool = Field(description="Whether a reed switch started the episode")
    passages: list[PassageInfo] = Field(default_factory=list, max_length=200)
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence of the classification")
    camera_ok: bool = Field(True, description="False when the camera could not judge")


class DeviceRecord(_Wire):
    """Fields common to everything a device sends through its durable outbox."""

    device_id: DeviceId
    seq: int = Field(ge=1, le=MAX_SEQ,
                     description="Per-device sequence number, persisted across reboots")
    event_id: UUID = Field(default_factory=uuid4, description="Globally unique id")
    time: WireTime = Field(description="Device clock when the record was made")


class Event(DeviceRecord):
    """Something happened at the door (or to the device).

    Version 2 adds episode reports: ``report="early"`` is an exit sent while the
    door may still be open, as soon as the camera is confident; ``report="final"``
    (same ``episode_id``) is the episode's verdict once the door has closed:
    ``verdict`` confirmed (kind exit) or withdrawn as a handover or a re-entry
    (kind handover). The server updates the early report's incident with it.
    """

    # Only events have a version 2; widening the base's here keeps every other message
    # at version 1 (strict like the base's: JSON true or 1.0 is no version).
    v: EventVersion = Field(
        SCHEMA_VERSION, description="Wire schema version (2: episode reports)")
    type: Literal["event"] = "event"
    kind: EventKind
    armed: bool = Field(description="Whether the device was armed when this happened")
    episode: EpisodeInfo | None = None
    tamper: TamperKind | None = None
    detail: str | None = Field(None, max_length=2000, description="Free text for humans")
    snapshot: bool = Field(False, description="Whether a snapshot message follows")
    episode_id: UUID | None = Field(None, description="v2: the door episode this reports")
    report: Literal["early", "final"] | None = Field(
        None, description="v2: early = exit reported while the episode is open; final = "
        "the episode's verdict")
    verdict: Literal["confirmed", "handover", "reentry"] | None = Field(
        None, description="v2, final reports: the early exit confirmed, or withdrawn as a "
        "handover or a re-entry")
    door_line: DoorLine | None = Field(
        None, description="Commissioning: the door line the device uses (its snapshot is the "
        "aim picture the line is drawn on)")
    checkin: Literal["present", "absent", "left"] | None = Field(
        None, description="Kind checkin: a person came to the doorway after the chime and "
        "did not go out (present), nobody came within the window (absent), or a person went "
        "out (left). Presence only: nobody is identified")
    command_id: UUID | None = Field(
        None, description="Kind checkin: the checkin command this answers")


def episode_report_problem(fields: dict[str, Any] | Event) -> str | None:
    """Why an event's version and episode-report fields do not fit together, or None.

    v2 events carry ``episode_id`` and ``report``; a final report also its
    ``verdict``; a v1 event carries none of them.
    """
    get = fields.get if isinstance(fields, dict) else (lambda k: getattr(fields, k, None))
    v, episode, report, verdict = get("v"), get("episode_id"), get("report"), get("verdict")
    if v != EVENT_SCHEMA_VERSION:
        if episode is not None or report is not None or verdict is not None:
            return f"episode_id/report/verdict need schema version {EVENT_SCHEMA_VERSION}"
        return None
    if episode is None or report is None:
        return "a version 2 event needs episode_id and report"
    if (report == "final") != (verdict is not None):
        return "verdict goes with report 'final', and only with it"
    if report == "early" and get("kind") != EventKind.EXIT:
        return "an early report is an exit"
    return None


class CommandAck(DeviceRecord):
    """A device's answer to a command, sent through its durable outbox."""

    type: Literal["command_ack"] = "command_ack"
    command_id: UUID
    command: str = Field(max_length=64)
    ok: bool
    reason: str | None = Field(None, max_length=2000)


class DeviceState(StrEnum):
    """Retained presence state on the status topic."""

    ONLINE = "online"
    OFFLINE = "offline"


class Status(_Wire):
    """Retained online/offline; the agent registers ``offline`` as its Last Will."""

    type: Literal["status"] = "status"
    device_id: DeviceId
    state: DeviceState
    time: WireTime


class Heartbeat(_Wire):
    """Periodic health of a device."""

    type: Literal["heartbeat"] = "heartbeat"
    device_id: DeviceId
    time: WireTime
    uptime_s: float = Field(ge=0)
    armed: bool
    last_seq: int = Field(ge=0, description="Highest seq the device has produced")
    outbox_depth: int = Field(ge=0)
    camera_fps: float | None = Field(None, ge=0)
    cpu_temp_c: float | None = None
    free_disk_mb: float | None = Field(None, ge=0)
    clock_offset_s: float | None = None
    firmware_version: str = Field(max_length=64)
    alarms: list[str] = Field(
        default_factory=list, max_length=20,
        description="Health alarms the device raises about itself (outbox exhausted or "
        "unwritable, events kept in memory or lost, camera failing)",
    )


class Snapshot(_Wire):
    """A JPEG taken as evidence for an event."""

    type: Literal["snapshot"] = "snapshot"
    device_id: DeviceId
    event_id: UUID = Field(description="The event this snapshot belongs to")
    taken_at: WireTime
    jpeg_b64: str = Field(max_length=MAX_PAYLOAD_BYTES)


DeviceMessage = Annotated[
    Event | CommandAck | Heartbeat | Status | Snapshot, Field(discriminator="type")
]
_DEVICE_MESSAGE: TypeAdapter[DeviceMessage] = TypeAdapter(DeviceMessage)

# Fields with a default for whoever builds a model (an agent) that a received payload must
# carry all the same: a missing version is not "version 1"; a missing type tag fails the
# union; and a record without its event_id would get a fresh random one on every
# delivery, so its redelivered copy would look like another record reusing the seq.
_REQUIRED_ON_THE_WIRE = ("v", "type", "event_id")


def _fields_schema(model: type[BaseModel]) -> core_schema.CoreSchema:
    """``model``'s own field schemas as a typed dict: validated values in a dict.

    The very schemas pydantic built for the model (one source of truth), without
    the model instance: building that costs more than parsing and checking the
    JSON, and the server's ingest path only reads a few fields of each record
    before storing its payload text. Fields with a default that a payload must
    nevertheless carry (``_REQUIRED_ON_THE_WIRE``) are required here, as they are
    on the full path. The schema comes through the public ``TypeAdapter.core_schema``
    (its parts are pydantic-core's public ``core_schema`` types).
    """
    schema = TypeAdapter(model).core_schema
    if schema["type"] != "model" or schema["schema"]["type"] != "model-fields":
        raise TypeError(f"{model.__name__}: not a plain model schema ({schema['type']})")
    fields: dict[str, core_schema.TypedDictField] = {}
    for name, field in schema["schema"]["fields"].items():
        inner = field["schema"]
        required = inner["type"] != "default"
        if name in _REQUIRED_ON_THE_WIRE and inner["type"] == "default":
            inner, required = inner["schema"], True
        fields[name] = core_schema.typed_dict_field(inner, required=required)
    return core_schema.typed_dict_schema(fields, extra_behavior="forbid",
                                         config=schema.get("config"))


# Events and command acks (the event channel's records) validated into dicts; see
# decode_record_fields.
_RECORD_FIELDS = SchemaValidator(core_schema.tagged_union_schema(
    {"event": _fields_schema(Event), "command_ack": _fields_schema(CommandAck)},
    discriminator="type",
))


# Which message types may arrive on which channel.
_CHANNEL_TYPES: dict[Channel, tuple[type[BaseModel], ...]] = {
    Channel.EVENT: (Event, CommandAck),
    Channel.HEARTBEAT: (Heartbeat,),
    Channel.STATUS: (Status,),
    Channel.SNAPSHOT: (Snapshot,),
}


class CommandName(StrEnum):
    """Commands the server can send a device."""

    ARM = "arm"
    DISARM = "disarm"
    SNAPSHOT = "snapshot"
    CONFIG_UPDATE = "config_update"
    PING = "ping"
    ROTATE_CREDENTIALS = "rotate_credentials"
    CHECKIN = "checkin"


class _CommandBase(_Wire):
    type: Literal["command"] = "command"
    command_id: UUID = Field(default_factory=uuid4)
    device_id: DeviceId
    issued_at: WireTime


class ArmCommand(_CommandBase):
    """Arm the device (retained, so a rebooted device knows)."""

    name: Literal["arm"] = "arm"


class DisarmCommand(_CommandBase):
    """Disarm the device (retained)."""

    name: Literal["disarm"] = "disarm"


class SnapshotCommand(_CommandBase):
    """Take a snapshot now and publish it."""

    name: Literal["snapshot"] = "snapshot"


class PingCommand(_CommandBase):
    """Answer with an ack; used by commissioning to prove the round trip."""

    name: Literal["ping"] = "ping"


class ConfigUpdateCommand(_CommandBase):
    """Replace parts of the device configuration (validated on the device)."""

    name: Literal["config_update"] = "config_update"
    config: dict[str, Any]


class RotateCredentialsCommand(_CommandBase):
    """Take up a new broker password (sent over TLS to the device's own command topic).

    The device stores it beside the current one and acknowledges; the server
    switches the broker to it only after that acknowledgement, and the device,
    refused with the old password, reconnects with the new one. Never retained.
    """

    name: Literal["rotate_credentials"] = "rotate_credentials"
    password: str = Field(min_length=16, max_length=256, repr=False,
                          description="The device's new broker password")


class CheckinCommand(_CommandBase):
    """Presence check-in: sound the chime, then watch the doorway for ``window_s``.

    Acknowledged at once (chime sounded or not); the outcome follows as an event
    of kind ``checkin`` carrying this command's id. Never retained.
    """

    name: Literal["checkin"] = "checkin"
    window_s: float = Field(300.0, ge=5.0, le=3600.0,
                            description="How long a person has to come to the door")


Command = Annotated[
    ArmCommand | DisarmCommand | SnapshotCommand | PingCommand | ConfigUpdateCommand
    | RotateCredentialsCommand | CheckinCommand,
    Field(discriminator="name"),
]
_COMMAND: TypeAdapter[Command] = TypeAdapter(Command)


def encode(message: BaseModel) -> bytes:
    """Serialize a wire model to its JSON payload."""
    return message.model_dump_json(exclude_none=True).encode()


# Received payloads are validated in pydantic's strict JSON mode: a number must be a
# JSON number of the field's kind (``"seq": "12"``, ``12.0`` and ``true`` are refused),
# a boolean a JSON boolean (not ``"true"`` or ``1``), a time an RFC 3339 string (not a
# number). Lax mode would store the coerced value as if the device had sent it. The
# schema always said so (JSON Schema ``integer`` / ``boolean`` / ``date-time``) and
# our agents always sent these types, so this stays protocol v1 (see
# docs/security.md, "Rejected input").
# Strict JSON mode still reads UUIDs and enum values from their strings, and an
# integer where a float is expected.


def _summarize(error: ValidationError) -> str:
    """One line per problem: 'field.path: message'."""
    parts = []
    for item in error.errors()[:5]:
        loc = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{loc}: {item['msg']}")
    more = error.error_count() - 5
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _load_json(payload: bytes, topic: str, limit: int, device_id: str | None = None) -> Any:
    """The payload's JSON; ``device_id`` (the topic's) goes into the error, so junk is
    counted against the device that sent it (server/ingest/rejections.py)."""
    if len(payload) > limit:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds {limit}", topic=topic,
                           device_id=device_id)
    try:
        # Decode first: json.loads would also accept UTF-16/32, which the server
        # cannot store as the event's text payload.
        return json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PayloadError(f"not JSON: not UTF-8 ({exc})", topic=topic,
                           device_id=device_id) from None
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers beyond Python's digit limit;
        # RecursionError comes from deeply nested arrays or objects.
        raise PayloadError(f"not JSON: {exc}", topic=topic, device_id=device_id) from None


class DeviceIdMismatchError(PayloadError):
    """A device published a payload claiming another device's id: a security event."""

    def __init__(self, topic: str, topic_device_id: str, claimed_device_id: str):
        self.claimed_device_id = claimed_device_id
        super().__init__(
            f"device_id {claimed_device_id!r} in payload differs from topic's "
            f"{topic_device_id!r}",
            topic=topic,
            device_id=topic_device_id,
        )


def decode_device_message(info: TopicInfo, topic: str, payload: bytes) -> DeviceMessage:
    """Validate a payload received on a device topic.

    Checks, in order: size, JSON, schema version, the model, the channel/type
    pairing and that the payload's device id is the topic's (a device must not
    speak for another). Every failure is a :class:`PayloadError` with a reason
    fit for the rejected-messages table.
    """
    limit = MAX_PAYLOAD_BYTES if info.channel is Channel.SNAPSHOT else MAX_EVENT_BYTES
    if len(payload) <= limit:
        # Fast path for the common, valid message: pydantic parses the JSON itself
        # (twice as fast as json.loads + validate_python). Anything it refuses goes
        # the slow way below, which explains precisely what is wrong.
        try:
            fast = _DEVICE_MESSAGE.validate_json(payload, strict=True)
        except ValidationError:
            pass
        else:
            if (
                isinstance(fast, _CHANNEL_TYPES[info.channel])
                and fast.device_id == info.device_id
                and "v" in fast.model_fields_set  # a missing version is not a default
                and (not isinstance(fast, DeviceRecord) or "event_id" in fast.model_fields_set)
                and (not isinstance(fast, Event) or episode_report_problem(fast) is None)
            ):
                return fast
    raw = _load_json(payload, topic, limit, info.device_id)
    if not isinstance(raw, dict):
        raise PayloadError("payload is not a JSON object", topic=topic, device_id=info.device_id)
    if raw.get("v") != SCHEMA_VERSION and not (
            raw.get("v") == EVENT_SCHEMA_VERSION and raw.get("type") == "event"
    ):
        raise PayloadError(
            f"unsupported schema version {raw.get('v')!r} (expected {SCHEMA_VERSION})",
            topic=topic,
            device_id=info.device_id,
        )
    try:
        # From the text again, strictly (see above _summarize): the reason names the field.
        message = _DEVICE_MESSAGE.validate_json(payload, strict=True)
    except ValidationError as exc:
        raise PayloadError(_summarize(exc), topic=topic, device_id=info.device_id) from None
    if not isinstance(message, _CHANNEL_TYPES[info.channel]):
        raise PayloadError(
            f"message type {message.type!r} not allowed on channel {info.channel.value!r}",
            topic=topic,
            device_id=info.device_id,
        )
    if message.device_id != info.device_id:
        raise DeviceIdMismatchError(topic, info.device_id, message.device_id)
    if isinstance(message, DeviceRecord) and "event_id" not in raw:
        raise PayloadError("event_id: Field required (every record carries its own)",
                           topic=topic, device_id=info.device_id)
    if isinstance(message, Event) and (problem := episode_report_problem(message)):
        raise PayloadError(problem, topic=topic, device_id=info.device_id)
    return message


def decode_record_fields(info: TopicInfo, payload: bytes) -> dict[str, Any] | None:
    """The validated fields of an event or command ack from this topic's device, or None.

    The server's fast path: the same checks as :func:`decode_device_message`
    (schema, field constraints, channel, device id), with the values in a dict
    (``event_id`` a UUID, ``time`` an aware datetime, ``kind`` an EventKind).
    None means anything else (another channel, an invalid payload, another
    device's id): :func:`decode_device_message` then gives the model or the
    precise reason.
    """
    if info.channel is not Channel.EVENT or len(payload) > MAX_EVENT_BYTES:
        return None
    try:
        fields: dict[str, Any] = _RECORD_FIELDS.validate_json(payload, strict=True)
    except ValidationError:
        return None
    if fields["device_id"] != info.device_id:
        return None
    if fields["type"] == "event" and episode_report_problem(fields) is not None:
        return None
    return fields


def decode_command(topic: str, payload: bytes) -> Command:
    """Validate a command received by a device."""
    _load_json(payload, topic, MAX_EVENT_BYTES)  # size and JSON errors, in our words
    try:
        return _COMMAND.validate_json(payload, strict=True)
    except ValidationError as exc:
        raise PayloadError(_summarize(exc), topic=topic) from None


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every wire message, keyed by message name."""
    models: dict[str, type[BaseModel]] = {
        "Event": Event,
        "CommandAck": CommandAck,
        "Heartbeat": Heartbeat,
        "Status": Status,
        "Snapshot": Snapshot,
    }
    schemas: dict[str, Any] = {name: m.model_json_schema() for name, m in models.items()}
    schemas["Command"] = _COMMAND.json_schema()
    return schemas


def utc_now() -> datetime:
    """The current time as an aware UTC datetime (wire times are always aware)."""
    from datetime import UTC

    return datetime.now(UTC)
