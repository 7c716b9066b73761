#!/usr/bin/env python3
"""A strata policy worker in Python: serves the tactical layer of one run.

It follows the run's tactical state batches on JetStream (subject
strata.state.tactical in stream STRATA_STATE, from the stream's start, with
an ordered consumer), decides each batch with the rule below and publishes
one decision batch per state batch on strata.decision.tactical, under the
state batch's header and with the message id run.layer.tick.shard.n_shards,
so that JetStream drops a republished batch as a duplicate. The wire format
is docs/worker-contract.md; the Go worker it mirrors is agents/worker.

The policy, py-rightsize (deterministic: the same state gives the same
decisions, whatever the timing), decides per function from the row of hour
h-1:

1. A function that started no invocation in hour h-1 is left out of the
   batch: it keeps the placement in force.
2. Region: stay in the metro the function ran in (the row's region);
   us-east when the row names no known metro.
3. Memory tier: with both utilisations known and cpu_util > 0, the working
   set is memory_mb x memory_util / cpu_util (in the twin's telemetry that
   ratio is the busy-time weighted working set over the tier); the tier is
   the smallest of 128, 256, 512, 1024, 2048 and 3008 MB at or above the
   working set x (1 + headroom), 3008 when none is. Otherwise the tier the
   function ran on stays (1024 MB when the row names no known tier).
4. Latency guard: when latency_p95_ms is known and above the limit, the tier
   is at least one step above the one the function ran on (more memory
   brings more CPU share and shorter executions).
5. The provider column copies the row's provider (aws when unknown): the
   twin takes the provider from the strategic layer and only records it.

    python worker.py --nats nats://127.0.0.1:4222 --run-id RUN [--prefix P]

SIGTERM or SIGINT stops it after the batch in hand, exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import pyarrow as pa

# nats is imported where it is used: the wire format and the policy, and
# their tests, need pyarrow only.

log = logging.getLogger("pyworker")

LAYER = "tactical"
POLICY = "py-rightsize"
POLICY_VERSION = "1"

# Versions of the batch schemas this worker reads and writes
# (schemas.StateSchemaVersion, schemas.DecisionSchemaVersion). State version
# 4 added memory_peak_mb, app_peak_hour and hour to the tactical columns;
# 5 added provider, region, memory_mb, memory_peak_mb and app_peak_hour to
# the strategic columns; 6 lets operational batches leave idle rows out
# (this worker serves the tactical layer, whose batches did not change).
STATE_SCHEMA_VERSION = "6"
DECISION_SCHEMA_VERSION = "2"

# Stream and subject bases (schemas/names.go).
STREAM_STATE = "STRATA_STATE"
STREAM_DECISION = "STRATA_DECISION"
SUBJECT_STATE_PREFIX = "strata.state."
SUBJECT_DECISION_PREFIX = "strata.decision."

# Schema metadata keys of tick batches, in the order the Go encoder writes
# them; decision batches add strata.kind = decision.
META_SCHEMA_VERSION = "strata.schema_version"
META_RUN_ID = "strata.run_id"
META_LAYER = "strata.layer"
META_TICK = "strata.tick"
META_TICK_START_US = "strata.tick_start_us"
META_SHARD = "strata.shard"
META_N_SHARDS = "strata.n_shards"
META_KIND = "strata.kind"

MSG_ID_HEADER = "Nats-Msg-Id"

# The tactical action space (cloud/catalog.go): action = metro index x 6 +
# tier index, metro-major.
METROS = ("us-east", "us-west", "eu-west", "ap-southeast")
TIERS_MB = (128, 256, 512, 1024, 2048, 3008)
PROVIDERS = ("aws", "azure", "gcp")
DEFAULT_METRO = "us-east"
DEFAULT_TIER_MB = 1024
DEFAULT_PROVIDER = "aws"

_f64 = pa.float64()

# The tactical state batch's columns (schemas.StateFields(Tactical)).
TACTICAL_STATE_SCHEMA = pa.schema(
    [
        pa.field("app", pa.string(), nullable=False),
        pa.field("func", pa.string(), nullable=False),
        pa.field("invocations", pa.int64(), nullable=False),
        pa.field("request_rate", _f64, nullable=False),
        pa.field("peak_rate", _f64, nullable=False),
        pa.field("duration_mean_ms", _f64, nullable=False),
        pa.field("duration_p95_ms", _f64, nullable=False),
        pa.field("latency_mean_ms", _f64, nullable=True),
        pa.field("latency_p95_ms", _f64, nullable=True),
        pa.field("cost_usd", _f64, nullable=True),
        pa.field("carbon_g", _f64, nullable=True),
        pa.field("memory_util", _f64, nullable=True),
        pa.field("cpu_util", _f64, nullable=True),
        pa.field("queue_depth", _f64, nullable=True),
        pa.field("cold_start_rate", _f64, nullable=True),
        pa.field("provider", pa.string(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("memory_mb", pa.int32(), nullable=False),
        pa.field("trend", _f64, nullable=False),
        pa.field("memory_peak_mb", _f64, nullable=False),
        pa.field("app_peak_hour", pa.int32(), nullable=False),
        pa.field("hour", pa.int32(), nullable=False),
    ]
)

# The decision batch's columns (schemas.DecisionFields()).
DECISION_SCHEMA = pa.schema(
    [
        pa.field("app", pa.string(), nullable=False),
        pa.field("func", pa.string(), nullable=False),
        pa.field("action", pa.int32(), nullable=False),
        pa.field("provider", pa.string(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("memory_mb", pa.int32(), nullable=False),
        pa.field("prewarm", pa.int32(), nullable=False),
        pa.field("keep_warm_ms", pa.int64(), nullable=False),
        pa.field("policy", pa.string(), nullable=False),
        pa.field("policy_version", pa.string(), nullable=False),
        pa.field("log_prob", _f64, nullable=True),
        pa.field("value", _f64, nullable=True),
        pa.field("predicted", _f64, nullable=True),
    ]
)


class BadBatch(ValueError):
    """Input that is not a valid batch of the expected kind."""


@dataclass(frozen=True)
class Names:
    """Broker-side names under a deployment prefix (schemas.Names)."""

    prefix: str = ""

    def _dotted(self, base: str) -> str:
        return f"{self.prefix}.{base}" if self.prefix else base

    def stream(self, base: str) -> str:
        if not self.prefix:
            return base
        return self.prefix.replace("-", "_").upper() + "_" + base

    def state_subject(self, layer: str) -> str:
        return self._dotted(SUBJECT_STATE_PREFIX + layer)

    def decision_subject(self, layer: str) -> str:
        return self._dotted(SUBJECT_DECISION_PREFIX + layer)


def validate_prefix(p: str) -> None:
    """Raises ValueError unless p is a valid --prefix (schemas.ValidatePrefix)."""
    if not p:
        return
    if len(p) > 48:
        raise ValueError(f"name prefix {p!r}: longer than 48 bytes")
    for i, c in enumerate(p):
        if ("a" <= c <= "z") or ("0" <= c <= "9") or (c == "-" and i > 0):
            continue
        raise ValueError(
            f"name prefix {p!r}: character {i} is {c!r}; want lower-case letters, digits and '-' (not first)"
        )


@dataclass(frozen=True)
class Header:
    """The header of a tick batch (schemas.BatchHeader)."""

    run_id: str
    layer: str
    tick: int
    tick_start_us: int
    shard: int
    n_shards: int

    def metadata(self, version: str) -> Dict[str, str]:
        return {
            META_SCHEMA_VERSION: version,
            META_RUN_ID: self.run_id,
            META_LAYER: self.layer,
            META_TICK: str(self.tick),
            META_TICK_START_US: str(self.tick_start_us),
            META_SHARD: str(self.shard),
            META_N_SHARDS: str(self.n_shards),
        }

    def msg_id(self) -> str:
        """The JetStream message id of this header's batch (schemas.BatchMsgID)."""
        return f"{self.run_id}.{self.layer}.{self.tick}.{self.shard}.{self.n_shards}"


def _parse_int(md: Dict[str, str], key: str) -> int:
    s = md[key]
    try:
        return int(s, 10)
    except ValueError:
        raise BadBatch(f"{key}={s!r} is not an integer") from None


def _open(data: bytes) -> pa.ipc.RecordBatchStreamReader:
    try:
        return pa.ipc.open_stream(pa.py_buffer(data))
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        raise BadBatch(f"not an Arrow IPC stream: {e}") from None


def _header(schema: pa.Schema, version: str) -> Header:
    raw = schema.metadata or {}
    md = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in raw.items()}
    for k in (
        META_SCHEMA_VERSION, META_RUN_ID, META_LAYER, META_TICK, META_TICK_START_US, META_SHARD, META_N_SHARDS
    ):
        if k not in md:
            raise BadBatch(f"metadata key {k} missing")
    if md[META_SCHEMA_VERSION] != version:
        raise BadBatch(f"schema version {md[META_SCHEMA_VERSION]}, want {version}")
    return Header(
        run_id=md[META_RUN_ID],
        layer=md[META_LAYER],
        tick=_parse_int(md, META_TICK),
        tick_start_us=_parse_int(md, META_TICK_START_US),
        shard=_parse_int(md, META_SHARD),
        n_shards=_parse_int(md, META_N_SHARDS),
    )


def _one_batch(reader: pa.ipc.RecordBatchStreamReader, what: str) -> pa.RecordBatch:
    try:
        batches = list(reader)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        raise BadBatch(f"{what}: {e}") from None
    if len(batches) != 1:
        raise BadBatch(f"{what}: {len(batches)} record batches, want exactly one")
    b = batches[0]
    try:
        b.validate(full=True)
    except pa.ArrowInvalid as e:
        raise BadBatch(f"{what}: {e}") from None
    return b


def peek_run(data: bytes) -> Optional[str]:
    """The run id in a batch's schema metadata, None when it has none."""
    md = _open(data).schema.metadata or {}
    v = md.get(META_RUN_ID.encode())
    return None if v is None else v.decode("utf-8", "replace")


def decode_state(data: bytes) -> tuple[Header, List[Dict[str, Any]]]:
    """Parses a tactical state batch (schemas.EncodeState): its header and
    its rows as dicts keyed by column, None for a null. Raises BadBatch for
    anything else, including a batch of another layer."""
    reader = _open(data)
    h = _header(reader.schema, STATE_SCHEMA_VERSION)
    if reader.schema.metadata.get(META_KIND.encode()) is not None:
        raise BadBatch("a decision batch, not a state batch")
    if h.layer != LAYER:
        raise BadBatch(f"a {h.layer} state batch, want {LAYER}")
    if not reader.schema.equals(TACTICAL_STATE_SCHEMA):
        raise BadBatch(f"schema does not match tactical state version {STATE_SCHEMA_VERSION}")
    return h, _one_batch(reader, "tactical state batch").to_pylist()


def decode_decisions(data: bytes) -> tuple[Header, List[Dict[str, Any]]]:
    """Parses a decision batch (schemas.EncodeDecisions or encode_decisions)."""
    reader = _open(data)
    md = reader.schema.metadata or {}
    if md.get(META_KIND.encode()) != b"decision":
        raise BadBatch("not a decision batch")
    h = _header(reader.schema, DECISION_SCHEMA_VERSION)
    if not reader.schema.equals(DECISION_SCHEMA):
        raise BadBatch(f"schema does not match decision version {DECISION_SCHEMA_VERSION}")
    return h, _one_batch(reader, "decision batch").to_pylist()


def encode_decisions(h: Header, rows: List[Dict[str, Any]]) -> bytes:
    """Serialises a decision batch as schemas.DecodeDecisions reads it: an
    Arrow IPC stream (uncompressed) holding exactly one record batch, the
    header in the schema metadata with strata.kind = decision. rows are
    dicts keyed by column; a missing nullable column is null, a missing
    prewarm or keep_warm_ms is 0."""
    md = h.metadata(DECISION_SCHEMA_VERSION)
    md[META_KIND] = "decision"
    schema = DECISION_SCHEMA.with_metadata(md)
    defaults = {"prewarm": 0, "keep_warm_ms": 0, "policy": POLICY, "policy_version": POLICY_VERSION}
    cols = []
    for f in DECISION_SCHEMA:
        vals = [r.get(f.name, defaults.get(f.name)) for r in rows]
        if not f.nullable and any(v is None for v in vals):
            raise ValueError(f"decision column {f.name} has no value for some row")
        cols.append(pa.array(vals, type=f.type))
    batch = pa.RecordBatch.from_arrays(cols, schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as w:
        w.write_batch(batch)
    return sink.getvalue().to_pybytes()


@dataclass(frozen=True)
class Params:
    """The rule's parameters (part of the policy version it stamps)."""

    latency_p95_limit_ms: float = 1000.0
    headroom: float = 0.25

    def version(self) -> str:
        return f"{POLICY_VERSION}/p95-limit={self.latency_p95_limit_ms:g}ms/headroom={self.headroom:g}"


def _tier_for(mb: float) -> int:
    for t in TIERS_MB:
        if t >= mb:
            return t
    return TIERS_MB[-1]


def decide(rows: List[Dict[str, Any]], p: Params = Params()) -> List[Dict[str, Any]]:
    """py-rightsize (see the module's doc): one decision per row that saw
    invocations, in the rows' order."""
    out = []
    version = p.version()
    for r in rows:
        if r["invocations"] <= 0:
            continue
        region = r["region"] if r["region"] in METROS else DEFAULT_METRO
        provider = r["provider"] if r["provider"] in PROVIDERS else DEFAULT_PROVIDER
        cur = r["memory_mb"] if r["memory_mb"] in TIERS_MB else DEFAULT_TIER_MB
        mu, cu = r["memory_util"], r["cpu_util"]
        if mu is not None and cu is not None and cu > 0:
            tier = _tier_for(cur * mu / cu * (1 + p.headroom))
        else:
            tier = cur
        lat = r["latency_p95_ms"]
        if lat is not None and lat > p.latency_p95_limit_ms:
            up = TIERS_MB[min(TIERS_MB.index(cur) + 1, len(TIERS_MB) - 1)]
            tier = max(tier, up)
        out.append(
            {
                "app": r["app"],
                "func": r["func"],
                "action": METROS.index(region) * len(TIERS_MB) + TIERS_MB.index(tier),
                "provider": provider,
                "region": region,
                "memory_mb": tier,
                "policy": POLICY,
                "policy_version": version,
            }
        )
    return out


class Worker:
    """Answers every tactical state batch of one run with a decision batch."""

    def __init__(self, js, run_id: str, names: Names, params: Params):
        self.js = js
        self.run_id = run_id
        self.names = names
        self.params = params
        self.decided = 0
        self.duplicates = 0

    def answer(self, data: bytes) -> Optional[tuple[Header, bytes]]:
        """The decision batch for one state batch, or None when the batch is
        another run's or does not decode (logged and skipped)."""
        try:
            if peek_run(data) != self.run_id:
                return None
            h, rows = decode_state(data)
        except BadBatch as e:
            log.warning("skipping a state batch that does not decode: %s", e)
            return None
        return h, encode_decisions(h, decide(rows, self.params))

    async def publish(self, h: Header, data: bytes) -> None:
        """Publishes with the batch's message id and waits for JetStream's
        acknowledgement; a timed-out publish is retried under the same id
        (JetStream keeps one copy)."""
        import nats.errors

        subject = self.names.decision_subject(LAYER)
        for attempt in range(5):
            try:
                ack = await self.js.publish(subject, data, timeout=5, headers={MSG_ID_HEADER: h.msg_id()})
                break
            except nats.errors.TimeoutError:
                if attempt == 4:
                    raise
                log.warning("publishing %s timed out; retrying", h.msg_id())
        self.decided += 1
        if ack.duplicate:
            self.duplicates += 1
        log.debug("published %s (%d bytes%s)", h.msg_id(), len(data), ", duplicate" if ack.duplicate else "")


async def serve(args: argparse.Namespace) -> int:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.js.api import DeliverPolicy

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def on_error(e: Exception) -> None:
        log.warning("nats: %s", e)

    # Connecting retries until the server answers; a signal stops the wait.
    connecting = asyncio.ensure_future(
        nats.connect(
            args.nats, name="strata-pyworker", max_reconnect_attempts=-1, error_cb=on_error, drain_timeout=5
        )
    )
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not connecting.done():
        connecting.cancel()
        log.info("stopped before connecting to %s", args.nats)
        return 0
    try:
        nc = connecting.result()
    except Exception as e:
        log.error("connecting to %s: %s: %s", args.nats, type(e).__name__, e)
        return 1
    names = Names(args.prefix)
    js = nc.jetstream()
    w = Worker(js, args.run_id, names, Params(args.latency_p95_limit_ms, args.headroom))
    stream, subject = names.stream(STREAM_STATE), names.state_subject(LAYER)
    sub = None
    status = 0
    try:
        # The closed loop creates the streams when it starts: wait for them.
        while sub is None and not stop.is_set():
            try:
                sub = await js.subscribe(
                    subject, stream=stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
                )
            except (
                nats.js.errors.NotFoundError,
                nats.js.errors.ServiceUnavailableError,
                nats.errors.TimeoutError,
            ):
                try:
                    await asyncio.wait_for(stop.wait(), 0.25)
                except asyncio.TimeoutError:
                    pass
        if sub is not None:
            log.info(
                "serving %s of run %s from %s on %s as %s", subject, args.run_id, stream, args.nats, POLICY
            )
        while sub is not None and not stop.is_set():
            try:
                msg = await sub.next_msg(timeout=0.25)
            except nats.errors.TimeoutError:
                continue
            out = w.answer(msg.data)
            if out is not None:
                await w.publish(*out)
    except Exception as e:  # a failed publish or a lost stream: stop, non-zero
        log.error("stopping: %s: %s", type(e).__name__, e)
        status = 1
    finally:
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        if nc.is_connected:
            await nc.drain()
        else:
            await nc.close()
    log.info("served %d decision batches (%d duplicates)", w.decided, w.duplicates)
    return status


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        description="Serve strata's tactical layer from Python (policy py-rightsize)."
    )
    ap.add_argument(
        "--nats", default="nats://127.0.0.1:4222", help="NATS URL (the one strata run uses or logs)"
    )
    ap.add_argument("--run-id", required=True, help="the run to serve; batches of other runs are skipped")
    ap.add_argument("--prefix", default="", help="name prefix of the deployment (strata --prefix)")
    ap.add_argument("--latency-p95-limit-ms", type=float, default=Params.latency_p95_limit_ms,
                    help="latency guard: p95 above this moves the function one tier up")
    ap.add_argument("--headroom", type=float, default=Params.headroom,
                    help="memory headroom over the estimated working set")
    ap.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    args = ap.parse_args(argv)
    try:
        validate_prefix(args.prefix)
    except ValueError as e:
        ap.error(str(e))
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
