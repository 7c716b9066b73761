"""Unit tests of the Python worker's wire format and policy (no NATS needed).

    python -m unittest discover -s agents/pyworker

cmd/strata/pyworker_test.go runs them, then the worker against a closed loop
whose Go decoder reads what it publishes.
"""

import unittest

import pyarrow as pa

import worker as w

HEADER = w.Header(
    run_id="run-1", layer="tactical", tick=3, tick_start_us=3 * 3600 * 10**6, shard=1, n_shards=2
)


def state_row(**kw):
    r = {
        "app": "a",
        "func": "f",
        "invocations": 10,
        "request_rate": 10 / 3600,
        "peak_rate": 0.2,
        "duration_mean_ms": 120.0,
        "duration_p95_ms": 300.0,
        "latency_mean_ms": None,
        "latency_p95_ms": None,
        "cost_usd": None,
        "carbon_g": None,
        "memory_util": None,
        "cpu_util": None,
        "queue_depth": None,
        "cold_start_rate": None,
        "provider": "aws",
        "region": "eu-west",
        "memory_mb": 1024,
        "trend": 0.0,
        "memory_peak_mb": 0.0,
        "app_peak_hour": -1,
        "hour": 0,
    }
    r.update(kw)
    return r


def encode_state(h, rows, compression=None, layer=None, version=w.STATE_SCHEMA_VERSION, batches=1):
    """A tactical state batch as schemas.EncodeState writes it (LZ4 when
    compression="lz4", as Go does above 256 KiB)."""
    md = h.metadata(version)
    if layer:
        md[w.META_LAYER] = layer
    schema = w.TACTICAL_STATE_SCHEMA.with_metadata(md)
    cols = [pa.array([r[f.name] for r in rows], type=f.type) for f in w.TACTICAL_STATE_SCHEMA]
    b = pa.RecordBatch.from_arrays(cols, schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as wr:
        for _ in range(batches):
            wr.write_batch(b)
    return sink.getvalue().to_pybytes()


class NamesTest(unittest.TestCase):
    def test_bare_and_prefixed(self):
        self.assertEqual(w.Names().stream(w.STREAM_STATE), "STRATA_STATE")
        self.assertEqual(w.Names().state_subject("tactical"), "strata.state.tactical")
        n = w.Names("ci-7")
        self.assertEqual(n.stream(w.STREAM_STATE), "CI_7_STRATA_STATE")
        self.assertEqual(n.stream(w.STREAM_DECISION), "CI_7_STRATA_DECISION")
        self.assertEqual(n.state_subject("tactical"), "ci-7.strata.state.tactical")
        self.assertEqual(n.decision_subject("tactical"), "ci-7.strata.decision.tactical")

    def test_prefix_validation(self):
        for ok in ("", "a", "ci-7", "9x"):
            w.validate_prefix(ok)
        for bad in ("-a", "A", "a.b", "a_b", "x" * 49):
            with self.assertRaises(ValueError, msg=bad):
                w.validate_prefix(bad)

    def test_msg_id(self):
        self.assertEqual(HEADER.msg_id(), "run-1.tactical.3.1.2")


class PolicyTest(unittest.TestCase):
    def one(self, **kw):
        out = w.decide([state_row(**kw)])
        self.assertEqual(len(out), 1)
        return out[0]

    def test_stays_without_utilisation(self):
        d = self.one()
        self.assertEqual((d["region"], d["memory_mb"], d["provider"]), ("eu-west", 1024, "aws"))
        self.assertEqual(d["action"], 2 * 6 + 3)
        self.assertEqual(d["policy"], "py-rightsize")

    def test_rightsizes_to_working_set(self):
        # working set 1024 x 0.09 / 0.5 = 184.3 MB, x 1.25 = 230.4 -> 256 MB
        d = self.one(memory_util=0.09, cpu_util=0.5)
        self.assertEqual((d["memory_mb"], d["action"]), (256, 2 * 6 + 1))
        # a working set above every tier -> 3008
        self.assertEqual(self.one(memory_util=0.9, cpu_util=0.1)["memory_mb"], 3008)
        # cpu_util 0: unknown working set, stay
        self.assertEqual(self.one(memory_util=0.1, cpu_util=0.0)["memory_mb"], 1024)

    def test_latency_guard(self):
        d = self.one(memory_util=0.09, cpu_util=0.5, latency_p95_ms=1500.0)
        self.assertEqual(d["memory_mb"], 2048)
        self.assertEqual(self.one(memory_mb=3008, latency_p95_ms=5000.0)["memory_mb"], 3008)
        self.assertEqual(self.one(latency_p95_ms=1000.0)["memory_mb"], 1024)

    def test_unknown_placement_and_idle_functions(self):
        d = self.one(region="", provider="", memory_mb=0)
        got = (d["region"], d["provider"], d["memory_mb"], d["action"])
        self.assertEqual(got, ("us-east", "aws", 1024, 3))
        self.assertEqual(w.decide([state_row(invocations=0)]), [])

    def test_deterministic_and_ordered(self):
        rows = [state_row(app="a", func=str(i), memory_util=0.01 * i, cpu_util=0.3) for i in range(20)]
        a, b = w.decide(rows), w.decide(list(rows))
        self.assertEqual(a, b)
        self.assertEqual([d["func"] for d in a], [str(i) for i in range(20)])


class WireTest(unittest.TestCase):
    def test_state_round_trip(self):
        rows = [state_row(), state_row(func="g", latency_p95_ms=12.5, memory_util=0.2, cpu_util=0.4)]
        for comp in (None, "lz4"):
            h, got = w.decode_state(encode_state(HEADER, rows, compression=comp))
            self.assertEqual(h, HEADER)
            self.assertEqual(got, rows)
        self.assertEqual(w.peek_run(encode_state(HEADER, rows)), "run-1")

    def test_state_rejects(self):
        rows = [state_row()]
        for name, data in {
            "garbage": b"\x00\x01\x02",
            "empty": b"",
            "other layer": encode_state(HEADER, rows, layer="strategic"),
            "old version": encode_state(HEADER, rows, version="2"),
            "two batches": encode_state(HEADER, rows, batches=2),
            "decision batch": w.encode_decisions(HEADER, []),
        }.items():
            with self.assertRaises(w.BadBatch, msg=name):
                w.decode_state(data)

    def test_decision_round_trip(self):
        rows = [state_row(), state_row(func="g", memory_util=0.1, cpu_util=0.5)]
        dec = w.decide(rows)
        data = w.encode_decisions(HEADER, dec)
        h, got = w.decode_decisions(data)
        self.assertEqual(h, HEADER)
        self.assertEqual(len(got), 2)
        for g, d in zip(got, dec):
            for k, v in d.items():
                self.assertEqual(g[k], v, k)
            self.assertEqual((g["prewarm"], g["keep_warm_ms"]), (0, 0))
            self.assertIsNone(g["log_prob"])
            self.assertIsNone(g["value"])
            self.assertIsNone(g["predicted"])

    def test_decision_wire_format(self):
        data = w.encode_decisions(HEADER, w.decide([state_row()] * 3))
        rd = pa.ipc.open_stream(data)
        md = {k.decode(): v.decode() for k, v in rd.schema.metadata.items()}
        self.assertEqual(
            md,
            {
                "strata.schema_version": "2",
                "strata.run_id": "run-1",
                "strata.layer": "tactical",
                "strata.tick": "3",
                "strata.tick_start_us": str(3 * 3600 * 10**6),
                "strata.shard": "1",
                "strata.n_shards": "2",
                "strata.kind": "decision",
            },
        )
        self.assertTrue(rd.schema.equals(w.DECISION_SCHEMA))
        self.assertEqual([f.nullable for f in rd.schema], [False] * 10 + [True] * 3)
        batches = list(rd)
        self.assertEqual(len(batches), 1)
        b = batches[0]
        # The Go decoder checks every value buffer's size, nulls included.
        for name in ("log_prob", "value", "predicted"):
            col = b.column(name)
            self.assertEqual(col.null_count, 3)
            self.assertGreaterEqual(col.buffers()[1].size, 8 * 3, name)
        # Continuation-marker framing, ended by the end-of-stream marker.
        self.assertEqual(data[:4], b"\xff\xff\xff\xff")
        self.assertEqual(data[-8:], b"\xff\xff\xff\xff\x00\x00\x00\x00")

    def test_empty_decision_batch(self):
        data = w.encode_decisions(HEADER, [])
        h, got = w.decode_decisions(data)
        self.assertEqual((h, got), (HEADER, []))
        self.assertEqual(len(list(pa.ipc.open_stream(data))), 1)

    def test_decision_rejects_state(self):
        with self.assertRaises(w.BadBatch):
            w.decode_decisions(encode_state(HEADER, [state_row()]))

    def test_answer_skips_other_runs(self):
        wk = w.Worker(None, "run-1", w.Names(), w.Params())
        self.assertIsNone(wk.answer(encode_state(w.Header("run-2", "tactical", 0, 0, 0, 1), [state_row()])))
        self.assertIsNone(wk.answer(b"not arrow"))
        h, data = wk.answer(encode_state(HEADER, [state_row()]))
        self.assertEqual(h, HEADER)
        self.assertEqual(len(w.decode_decisions(data)[1]), 1)


if __name__ == "__main__":
    unittest.main()
