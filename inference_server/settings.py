"""The live settings: one frozen ``Settings``, its wire form, and the choices each field allows.

The OBS panel, the live client and server, the schedulers, ``redact``'s options and the
masking options all take their keys, allowed values and defaults from here.  A settings dict
from the wire goes through ``Settings.from_dict`` once, at the protocol edge: a malformed value
is refused there with a ``ProtocolError`` naming its field, so nothing behind the edge ever
sees one.  OBS's embedded Python imports this module, so it uses the standard library only.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ProtocolError

TARGETS = ("faces", "plates", "text", "speech")
STYLES = ("pixelate", "blur", "fill")
STYLE_KINDS = ("face", "text", "plate")
"""The region kinds whose cover the streamer chooses (style_<kind>, strength_<kind>)."""
BLEEP_MODES = ("beep", "silence")
"""How spoken PII is replaced: a sound that carries nothing of what it hides, or nothing at all."""
FAIL_POLICIES = ("closed", "open")
MODEL_CHOICES = ("whisper-tiny.en", "whisper-base")
"""Speech recognisers, cheapest first: tiny.en is fast, base more accurate (the live server takes the richest
that decodes in time here: governor.speech_model)."""
DELAY_RANGE_S = (0.2, 3.0)
"""D, the time the server has to decide, for every client and the server alike.  The upper end is
the OBS filter's: its GPU delay line holds D x fps frames, and 3 s of 1080p60 is already about
1.5 GB, so a longer D is one no OBS filter can show.  The lower end leaves a detection run and
the trip back some room; below it every frame would be an estimate made at its deadline."""
CUSTOM_REGEX_PREFIX = "re:"
"""A custom term that starts with this is a regular expression (pii.classifier compiles it)."""
MAX_ENTRIES = 256
"""Custom terms or followed audio sources: far more than anyone types into a panel."""


@dataclass(frozen=True)
class Targets:
    """What is looked for; every target is on unless turned off."""

    faces: bool = True
    plates: bool = True
    text: bool = True
    speech: bool = True

    def __post_init__(self) -> None:
        for target in TARGETS:
            _bool(f"targets.{target}", getattr(self, target))


@dataclass(frozen=True)
class Settings:
    """One client's live settings.  Wire form: ``to_dict()``; the tuples travel as JSON lists."""

    targets: Targets = field(default_factory=Targets)
    style_face: str = "pixelate"
    style_text: str = "fill"
    """Even strongly blurred text can be read back: a solid fill by default."""
    style_plate: str = "fill"
    strength_face: float = 0.7
    """0..1: the coarseness of pixelate and blur."""
    strength_text: float = 0.7
    strength_plate: float = 0.7
    delay_s: float = 2.0
    mouth_blur: bool = True
    """Cover mouths while speech from the stream's audio is bleeped."""
    mouth_audio_sources: tuple[str, ...] = ()
    """The audio sources whose bleeps blur mouths (empty: every audio source of the stream)."""
    custom_terms: tuple[str, ...] = ()
    """The streamer's own words and phrases to hide, one entry each; "re:" starts a regular expression."""
    bleep_mode: str = "beep"
    fail_policy: str = "closed"
    """What a filter shows when it cannot get a decision: "closed" covers everything."""

    def __post_init__(self) -> None:
        # The dataclass itself is the check, so a Settings built in code is held to the same rules
        # as one that came from the wire.
        if not isinstance(self.targets, Targets):
            raise ProtocolError(f"settings field 'targets' must be a Targets (got {type(self.targets).__name__})")
        for kind in STYLE_KINDS:
            _choice(f"style_{kind}", getattr(self, f"style_{kind}"), STYLES)
            _number(f"strength_{kind}", getattr(self, f"strength_{kind}"), 0.0, 1.0)
        _number("delay_s", self.delay_s, *DELAY_RANGE_S)
        _choice("bleep_mode", self.bleep_mode, BLEEP_MODES)
        _choice("fail_policy", self.fail_policy, FAIL_POLICIES)
        _entries("mouth_audio_sources", self.mouth_audio_sources)
        _entries("custom_terms", self.custom_terms)
        for index, term in enumerate(self.custom_terms):
            term = term.strip()  # as pii.classifier reads it
            if term.startswith(CUSTOM_REGEX_PREFIX):
                try:
                    re.compile(term[len(CUSTOM_REGEX_PREFIX):])
                except re.error as exc:
                    # The index, not the term: the term itself may be the private thing.
                    raise ProtocolError(f"settings field 'custom_terms' entry #{index + 1} is not a valid "
                                        f"regular expression ({exc})") from None
        _bool("mouth_blur", self.mouth_blur)

    @classmethod
    def from_dict(cls, d: Any) -> "Settings":
        """The settings a wire dict describes; missing keys take their defaults.  ProtocolError names the
        field of an unknown key or of a value of the wrong type or out of range."""
        if not isinstance(d, dict):
            raise ProtocolError(f"settings must be a JSON object (got {type(d).__name__})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k)[:40] for k in d if k not in known)
        if unknown:
            raise ProtocolError(f"settings field {unknown[0]!r} is not a setting (known: {', '.join(sorted(known))})")
        kwargs: dict[str, Any] = dict(d)
        if "targets" in d:
            kwargs["targets"] = _targets(d["targets"])
        for name in ("mouth_audio_sources", "custom_terms"):
            if name in d:
                kwargs[name] = _entry_list(name, d[name])
        for name in ("delay_s", *(f"strength_{k}" for k in STYLE_KINDS)):
            if name in d:
                kwargs[name] = _number(name, d[name], -math.inf, math.inf)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The wire dict; ``Settings.from_dict(s.to_dict()) == s``."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def updated(self, changes: dict[str, Any]) -> "Settings":
        """These settings with the fields ``changes`` names replaced (a wire dict, checked like from_dict)."""
        return Settings.from_dict({**self.to_dict(), **changes})

    def style(self, kind: str) -> str:
        return str(getattr(self, f"style_{kind}"))

    def strength(self, kind: str) -> float:
        return float(getattr(self, f"strength_{kind}"))

    def targeted(self, target: str) -> bool:
        return bool(getattr(self.targets, target))

    @property
    def fails_open(self) -> bool:
        """The streamer chose to show the raw stream when no decision comes (fail_policy "open")."""
        return self.fail_policy == "open"


def check_delay(delay_s: float) -> float:
    """``delay_s`` if it lies in DELAY_RANGE_S, else ProtocolError."""
    return _number("delay_s", delay_s, *DELAY_RANGE_S)


def _field(name: str) -> str:
    return f"settings field {name!r}"


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"{_field(name)} must be true or false (got {type(value).__name__})")
    return value


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed or not isinstance(value, str):
        raise ProtocolError(f"{_field(name)} must be one of {', '.join(allowed)} (got {str(value)[:40]!r})")
    return value


def _number(name: str, value: Any, low: float, high: float) -> float:
    # bool is an int in Python: a JSON true must not pass as a strength of 1.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"{_field(name)} must be a number (got {type(value).__name__})")
    try:
        number = float(value)
    except OverflowError:  # a huge JSON int
        number = math.inf
    if not math.isfinite(number):
        raise ProtocolError(f"{_field(name)} must be a finite number (got {str(value)[:40]})")
    if not low <= number <= high:
        raise ProtocolError(f"{_field(name)} must be between {low:g} and {high:g} (got {str(value)[:40]})")
    return number


def _entry_list(name: str, value: Any) -> tuple[str, ...]:
    # One string is refused, not split: whether it was one term or several is not ours to guess,
    # and taken as a sequence it would become one term per character.
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ProtocolError(f"{_field(name)} must be a list of strings, one entry each "
                            f"(got {type(value).__name__})")
    return tuple(value)


def _entries(name: str, value: tuple[str, ...]) -> None:
    if not isinstance(value, tuple):
        raise ProtocolError(f"{_field(name)} must be a tuple of strings (got {type(value).__name__})")
    if len(value) > MAX_ENTRIES:
        raise ProtocolError(f"{_field(name)} has {len(value)} entries, more than {MAX_ENTRIES}")
    for index, entry in enumerate(value):
        if not isinstance(entry, str) or not entry.strip():
            raise ProtocolError(f"{_field(name)} entry #{index + 1} must be a non-empty string")


def _targets(value: Any) -> Targets:
    if not isinstance(value, dict):
        raise ProtocolError(f"{_field('targets')} must be an object of {', '.join(TARGETS)} (got {type(value).__name__})")
    unknown = sorted(str(k)[:40] for k in value if k not in TARGETS)
    if unknown:
        raise ProtocolError(f"{_field('targets')} has an unknown target {unknown[0]!r} (known: {', '.join(TARGETS)})")
    return Targets(**value)


def as_settings(value: Settings | dict[str, Any] | None) -> Settings:
    """``value`` as Settings: code and tests may pass the wire dict (or None: the defaults) instead."""
    if isinstance(value, Settings):
        return value
    return Settings.from_dict(value or {})
