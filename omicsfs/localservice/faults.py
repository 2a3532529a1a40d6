"""Reproducible fault injection: one flag line describes a scenario.

Spec: rules separated by ``;``. Each rule is ``KIND[@Op1,Op2,...]=VALUE``; without ``@`` a rule
applies to every operation it can apply to, the S3 access subset's included. Operations are
named as their API names them: the HealthOmics ones (``GetReadSet``) and the S3 ones
(``GetObject``, ``HeadObject``, ``ListObjectsV2``, ``ListObjects``, ``GetObjectTagging``,
``HeadBucket``, and the refused writes such as ``PutObject``); the two APIs share no name. On the
S3 endpoint a throttle is answered as ``SlowDown`` (503) and an error as ``InternalError`` (500),
in S3's XML. Kinds:

==========  ===============================================================================
seed=N      seed of the random generator (default 0): the same spec and the same request
            sequence give the same faults
throttle=P  ThrottlingException (429) with probability P
error=P     InternalServerException (500) with probability P
latency=D   added latency before answering: ``20ms``, ``5-50ms`` (uniform), ``0.1s``; at most
            600 s (far past any client's read timeout; botocore's default is 60 s)
short=P     data operations only: a body that is shorter than the part (or the range) but has
            a consistent Content-Length (only a client that checks lengths notices)
cut=P       data operations only: the full Content-Length is declared, the connection closes
            after half the body
reset=P     data operations only: the connection closes right after the headers; for
            UploadReadSetPart, after the part was stored and before the answer (the client
            cannot tell whether it arrived, and must upload it again)
drop=P      HealthOmics operations: the operation runs to the end (CompleteMultipartReadSetUpload
            creates its read set, a Start*Job starts its job), then its answer is lost: the
            connection closes without a response, as when a proxy drops it. The client cannot
            tell whether the call took effect and has to find out (issue 13's lost Complete)
rate=N      ThrottlingException above N requests per second (per operation, sliding 1 s window)
bandwidth=B data operations only: each response body is paced to B per second, per connection
            (``100MiB``, ``50MB``, ``1.5GiB``, or bytes); see pacing.py
preset=aws  ``rate`` rules at the real service's published limits
            (https://docs.aws.amazon.com/omics/latest/dev/api-quotas.html)
==========  ===============================================================================

P is a probability (``0.2``), a percentage (``20%``) or ``1/N``: every Nth matching call,
counted per operation, which stays deterministic under concurrency.

Numbers are plain decimals (``0.25``, ``20``): no sign, exponent, ``nan`` or ``inf``, so
``latency=1e400s`` (a request that never answers) or ``rate=nan`` is a FaultSpecError naming the
rule, and so is an operation name that is not one of the service's, or a data-only kind scoped
to an operation it cannot apply to.

Example: ``seed=7;throttle=0.2;error@GetReadSet=1/5;cut@GetReadSet=0.1;latency=5-20ms``, or
``bandwidth=100MiB`` for benchmarks that should look like a network, not like loopback.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from functools import cache

import botocore.session

from omicsfs.localservice.errors import InternalServerException, ThrottlingException
from omicsfs.localservice.protocol import STORAGE_OPERATIONS

#: Operations whose answer is file bytes: the body faults and ``bandwidth`` apply to them.
DATA_OPERATIONS = frozenset({"GetReadSet", "GetReference", "GetObject"})
#: Operations a ``reset`` rule also applies to: the upload body is stored, the answer is lost.
RESET_OPERATIONS = DATA_OPERATIONS | {"UploadReadSetPart"}
HEALTHOMICS_OPERATIONS = frozenset(STORAGE_OPERATIONS)
#: The kinds that act on a response body, and the operations each can act on.
_BODY_KINDS: dict[str, frozenset[str]] = {
    "short": DATA_OPERATIONS,
    "cut": DATA_OPERATIONS,
    "reset": RESET_OPERATIONS,
    "bandwidth": DATA_OPERATIONS,
    "drop": HEALTHOMICS_OPERATIONS,
}
MAX_LATENCY = 600.0

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

_KINDS = {"throttle", "error", "latency", "short", "cut", "reset", "drop", "rate", "bandwidth"}
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_WHOLE = re.compile(r"[0-9]+")
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
            operations = _operations(kind, ops_text, raw)
            value = value.strip()
            if kind in ("seed", "preset") and operations:
                raise FaultSpecError(f"'{raw}': {kind} applies to the whole spec, not to operations")
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
                per_second = _float(value, raw)
                if per_second <= 0:
                    raise FaultSpecError(f"'{raw}': a rate is a positive number of requests per second")
                faults.rules.append(Rule(kind, operations, low=per_second))
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
        """Applies latency and error rules; returns the fault to apply to the answer (``short``,
        ``cut``, ``reset`` or ``drop``), decided now so that ``1/N`` counts calls."""
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
                rule.kind in ("short", "cut", "reset", "drop")
                and operation in _BODY_KINDS[rule.kind]
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


@cache
def known_operations() -> frozenset[str]:
    """What a rule may name after ``@``: the HealthOmics storage operations and every S3
    operation of botocore's ``s3`` model (the S3 endpoint names the ones it refuses too, so rules
    and counters can name them), plus the two names its router gives that S3's model lacks."""
    s3_model = botocore.session.get_session().get_service_model("s3")
    return HEALTHOMICS_OPERATIONS | frozenset(s3_model.operation_names) | {"PostObject", "UnknownMethod"}


def _operations(kind: str, text: str, raw: str) -> frozenset[str] | None:
    """The operations after ``@`` (None: all), each a service operation the kind can act on."""
    names = frozenset(o.strip() for o in text.split(",") if o.strip())
    unknown = sorted(names - known_operations())
    if unknown:
        raise FaultSpecError(f"'{raw}': no operation named {', '.join(unknown)}")
    applicable = _BODY_KINDS.get(kind)
    if applicable is not None and names - applicable:
        raise FaultSpecError(
            f"'{raw}': {kind} applies only to {', '.join(sorted(applicable))}, not to "
            f"{', '.join(sorted(names - applicable))}"
        )
    return names or None


def _int(value: str, raw: str) -> int:
    if not _WHOLE.fullmatch(value):
        raise FaultSpecError(f"'{raw}': '{value}' is not a whole number (plain digits)")
    return int(value)


def _float(value: str, raw: str) -> float:
    """A plain decimal: Python's float() would also take 'nan', 'inf', '1e400' and ' 1'."""
    if not _DECIMAL.fullmatch(value):
        raise FaultSpecError(f"'{raw}': '{value}' is not a plain decimal number (like 0.25 or 20)")
    number = float(value)
    if not math.isfinite(number):  # 400 digits are still a plain decimal
        raise FaultSpecError(f"'{raw}': '{value[:20]}...' is too large")
    return number


def _bytes(value: str, raw: str) -> float:
    number = value.rstrip("BbIiKkMmGg")
    unit = value[len(number) :].strip().upper()
    if unit not in _SIZE_UNITS:
        raise FaultSpecError(f"'{raw}': unknown unit '{unit}' (one of B, KB, MB, GB, KiB, MiB, GiB)")
    amount = _float(number.strip(), raw) * _SIZE_UNITS[unit]
    if not 0 < amount < math.inf:
        raise FaultSpecError(f"'{raw}': a bandwidth is a positive, finite rate")
    return amount


def _probability(value: str, raw: str) -> tuple[float, int]:
    if value.startswith("1/"):
        every = _int(value[2:], raw)
        if every < 1:
            raise FaultSpecError(f"'{raw}': 1/N needs N >= 1")
        return 0.0, every
    probability = _float(value[:-1], raw) / 100 if value.endswith("%") else _float(value, raw)
    if not 0 <= probability <= 1:
        raise FaultSpecError(f"'{raw}': a probability is between 0 and 1 (or 0% and 100%)")
    return probability, 0


def _duration(text: str, raw: str) -> float:
    if text.endswith("ms"):
        seconds = _float(text[:-2], raw) / 1000
    elif text.endswith("s"):
        seconds = _float(text[:-1], raw)
    else:
        seconds = _float(text, raw) / 1000
    if seconds > MAX_LATENCY:
        raise FaultSpecError(f"'{raw}': a latency is at most {MAX_LATENCY:g} s")
    return seconds


def _duration_range(value: str, raw: str) -> tuple[float, float]:
    unit = "ms" if value.endswith("ms") else ("s" if value.endswith("s") else "ms")
    if value.startswith("-"):
        raise FaultSpecError(f"'{raw}': a latency is not negative")
    if "-" in value:
        low_text, high_text = value.split("-", 1)
        if not low_text.endswith(("ms", "s")):
            low_text += unit
        low, high = _duration(low_text, raw), _duration(high_text, raw)
        if low > high:
            raise FaultSpecError(f"'{raw}': the range {value} runs backwards")
        return low, high
    delay = _duration(value, raw)
    return delay, delay
