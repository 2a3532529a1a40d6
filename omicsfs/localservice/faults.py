"""Reproducible fault injection: one flag line describes a scenario.

Spec: rules separated by ``;``. Each rule is ``KIND[@Op1,Op2,...]=VALUE``; without ``@`` a rule
applies to every operation, the S3 access subset's included. Operations are named as their API
names them: the HealthOmics ones (``GetReadSet``) and the S3 ones (``GetObject``, ``HeadObject``,
``ListObjectsV2``, ``ListObjects``, ``GetObjectTagging``, ``HeadBucket``, and the refused writes
such as ``PutObject``); the two APIs share no name. On the S3 endpoint a throttle is answered as
``SlowDown`` (503) and an error as ``InternalError`` (500), in S3's XML. Kinds:

==========  ===============================================================================
seed=N      seed of the random generator (default 0): the same spec and the same request
            sequence give the same faults
throttle=P  ThrottlingException (429) with probability P
error=P     InternalServerException (500) with probability P
latency=D   added latency before answering: ``20ms``, ``5-50ms`` (uniform), ``0.1s``
short=P     data operations only: a body that is shorter than the part (or the range) but has
            a consistent Content-Length (only a client that checks lengths notices)
cut=P       data operations only: the full Content-Length is declared, the connection closes
            after half the body
reset=P     data operations only: the connection closes right after the headers; for
            UploadReadSetPart, after the part was stored and before the answer (the client
            cannot tell whether it arrived, and must upload it again)
rate=N      ThrottlingException above N requests per second (per operation, sliding 1 s window)
bandwidth=B data operations only: each response body is paced to B per second, per connection
            (``100MiB``, ``50MB``, ``1.5GiB``, or bytes); see pacing.py
preset=aws  ``rate`` rules at the real service's published limits (api-quotas, see
            research/healthomics-ecosystem.md §2.4)
==========  ===============================================================================

P is a probability (``0.2``), a percentage (``20%``) or ``1/N``: every Nth matching call,
counted per operation, which stays deterministic under concurrency.

Example: ``seed=7;throttle=0.2;error@GetReadSet=1/5;cut@GetReadSet=0.1;latency=5-20ms``, or
``bandwidth=100MiB`` for benchmarks that should look like a network, not like loopback.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from omicsfs.localservice.errors import InternalServerException, ThrottlingException

#: Operations whose answer is file bytes: the body faults and ``bandwidth`` apply to them.
DATA_OPERATIONS = frozenset({"GetReadSet", "GetReference", "GetObject"})
#: Operations a ``reset`` rule also applies to: the upload body is stored, the answer is lost.
RESET_OPERATIONS = DATA_OPERATIONS | {"UploadReadSetPart"}

#: Published transactions per second (api-quotas.html).
AWS_LIMITS: dict[str, float] = {
    "CreateMultipartReadSetUpload": 1,
    "CompleteMultipartReadSetUpload": 1,
    "AbortMultipartReadSetUpload": 1,
    "UploadReadSetPart": 10,
    "GetReadSet": 30,
    "GetReference": 10,
    "GetReadSetMetadata": 5,
    "ListReadSets": 5,
    "ListReferences": 5,
    "GetReferenceMetadata": 5,
    "ListMultipartReadSetUploads": 5,
    "ListReadSetUploadParts": 5,
}

_KINDS = {"throttle", "error", "latency", "short", "cut", "reset", "rate", "bandwidth"}
_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9,
               "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30}  # fmt: skip


class FaultSpecError(ValueError):
    """The --faults text is malformed; the message says where."""


@dataclass
class Rule:
    kind: str
    operations: frozenset[str] | None
    probability: float = 0.0
    every: int = 0
    low: float = 0.0
    high: float = 0.0

    def applies(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations


@dataclass
class Faults:
    """The parsed spec plus its counters; ``decide`` is called once per request."""

    spec: str = ""
    seed: int = 0
    rules: list[Rule] = field(default_factory=list)
    injected: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _calls: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    _windows: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _random: random.Random = field(default_factory=random.Random)

    @classmethod
    def parse(cls, spec: str) -> Faults:
        faults = cls(spec=spec)
        for raw in filter(None, (part.strip() for part in spec.split(";"))):
            head, sep, value = raw.partition("=")
            if not sep:
                raise FaultSpecError(f"'{raw}': expected KIND=VALUE")
            kind, _, ops_text = head.strip().partition("@")
            operations = frozenset(o.strip() for o in ops_text.split(",") if o.strip()) or None
            value = value.strip()
            if kind == "seed":
                faults.seed = _int(value, raw)
            elif kind == "preset":
                if value != "aws":
                    raise FaultSpecError(f"'{raw}': the only preset is 'aws'")
                for op, tps in AWS_LIMITS.items():
                    faults.rules.append(Rule("rate", frozenset({op}), low=tps))
            elif kind == "latency":
                low, high = _duration_range(value, raw)
                faults.rules.append(Rule(kind, operations, low=low, high=high))
            elif kind == "rate":
                faults.rules.append(Rule(kind, operations, low=_float(value, raw)))
            elif kind == "bandwidth":
                faults.rules.append(Rule(kind, operations, low=_bytes(value, raw)))
            elif kind in _KINDS:
                probability, every = _probability(value, raw)
                faults.rules.append(Rule(kind, operations, probability=probability, every=every))
            else:
                raise FaultSpecError(f"'{raw}': unknown kind '{kind}' (one of {sorted(_KINDS)})")
        faults._random = random.Random(faults.seed)
        return faults

    def _fires(self, index: int, rule: Rule, operation: str) -> bool:
        if rule.every:
            self._calls[(index, operation)] += 1
            return self._calls[(index, operation)] % rule.every == 0
        return rule.probability > 0 and self._random.random() < rule.probability

    async def before(self, operation: str) -> str | None:
        """Applies latency and error rules; returns the body fault for data operations."""
        body_fault = None
        for index, rule in enumerate(self.rules):
            if not rule.applies(operation):
                continue
            if rule.kind == "latency":
                delay = rule.low if rule.high <= rule.low else self._random.uniform(rule.low, rule.high)
                await asyncio.sleep(delay)
            elif rule.kind == "rate":
                if self._over_rate(operation, rule.low):
                    self._count("throttle", operation)
                    raise ThrottlingException(
                        f"Rate exceeded: {operation} is limited to {rule.low:g} requests per second."
                    )
            elif rule.kind == "throttle" and self._fires(index, rule, operation):
                self._count("throttle", operation)
                raise ThrottlingException("Rate exceeded (injected fault).")
            elif rule.kind == "error" and self._fires(index, rule, operation):
                self._count("error", operation)
                raise InternalServerException("Internal failure (injected fault).")
            elif (
                rule.kind in ("short", "cut", "reset")
                and operation in (RESET_OPERATIONS if rule.kind == "reset" else DATA_OPERATIONS)
                and body_fault is None
                and self._fires(index, rule, operation)
            ):
                self._count(rule.kind, operation)
                body_fault = rule.kind
        return body_fault

    def bandwidth(self, operation: str) -> float | None:
        """Bytes per second one response body of ``operation`` may go at (the first rule wins)."""
        if operation not in DATA_OPERATIONS:
            return None
        for rule in self.rules:
            if rule.kind == "bandwidth" and rule.applies(operation):
                self._count("bandwidth", operation)
                return rule.low
        return None

    def _over_rate(self, operation: str, per_second: float) -> bool:
        now = time.monotonic()
        window = self._windows[operation]
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= per_second:
            return True
        window.append(now)
        return False

    def _count(self, kind: str, operation: str) -> None:
        self.injected[f"{kind}:{operation}"] += 1


def _int(value: str, raw: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise FaultSpecError(f"'{raw}': '{value}' is not an integer") from None


def _float(value: str, raw: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise FaultSpecError(f"'{raw}': '{value}' is not a number") from None


def _bytes(value: str, raw: str) -> float:
    number = value.rstrip("BbIiKkMmGg")
    unit = value[len(number) :].strip().upper()
    if unit not in _SIZE_UNITS:
        raise FaultSpecError(f"'{raw}': unknown unit '{unit}' (one of B, KB, MB, GB, KiB, MiB, GiB)")
    amount = _float(number.strip(), raw) * _SIZE_UNITS[unit]
    if amount <= 0:
        raise FaultSpecError(f"'{raw}': a bandwidth is positive")
    return amount


def _probability(value: str, raw: str) -> tuple[float, int]:
    if value.startswith("1/"):
        every = _int(value[2:], raw)
        if every < 1:
            raise FaultSpecError(f"'{raw}': 1/N needs N >= 1")
        return 0.0, every
    probability = _float(value[:-1], raw) / 100 if value.endswith("%") else _float(value, raw)
    if not 0 <= probability <= 1:
        raise FaultSpecError(f"'{raw}': a probability is between 0 and 1")
    return probability, 0


def _duration(text: str, raw: str) -> float:
    if text.endswith("ms"):
        return _float(text[:-2], raw) / 1000
    if text.endswith("s"):
        return _float(text[:-1], raw)
    return _float(text, raw) / 1000


def _duration_range(value: str, raw: str) -> tuple[float, float]:
    unit = "ms" if value.endswith("ms") else ("s" if value.endswith("s") else "ms")
    if "-" in value:
        low, high = value.split("-", 1)
        if not low.endswith(("ms", "s")):
            low += unit
        return _duration(low, raw), _duration(high, raw)
    delay = _duration(value, raw)
    return delay, delay
