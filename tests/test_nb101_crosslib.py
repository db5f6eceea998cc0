"""NAS-Bench-101 files against independent libraries (issue 19, dev extras): our writer's
TFRecord framing read by the ``tfrecord`` package and checked with its CRC32C (the ``crc32c``
package), a file framed by that package read by our reader, and our protobuf records
decoded and encoded by the ``protobuf`` runtime with message classes built at run time from
a descriptor (no generated code), so the reader is not only tested against our own writer.
Also: ``google-crc32c`` and the numpy fallback agree."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from nasbench_eval.nb101 import tfrecord as tfr
from nasbench_eval.nb101.records import (EvaluationData, ModelMetrics, decode_metrics,
                                         decode_record, encode_metrics)
from nasbench_eval.nb101.synthetic import synthetic_nasbench101


@pytest.fixture(scope="module")
def nb101_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("nb101") / "synthetic.tfrecord"
    n, _ = synthetic_nasbench101(path, n_models=12, budgets=(4, 108), repeats=2,
                                 checkpoint=True)
    return path, n


def test_tfrecord_package_reads_our_writers_file_and_its_crcs_match(nb101_file):
    reader = pytest.importorskip("tfrecord.reader")
    writer = pytest.importorskip("tfrecord.writer")
    path, n = nb101_file
    theirs = [bytes(r) for r in reader.tfrecord_iterator(str(path))]
    ours = list(tfr.read_records(path))
    assert len(theirs) == n and theirs == ours
    # the whole file, framed again with the tfrecord package's masked CRC32C (crc32c package)
    framed = b"".join(len(r).to_bytes(8, "little") + writer.TFRecordWriter.masked_crc(
        len(r).to_bytes(8, "little")) + r + writer.TFRecordWriter.masked_crc(r) for r in theirs)
    assert framed == path.read_bytes()


def test_our_reader_reads_a_file_framed_by_the_tfrecord_package(nb101_file, tmp_path):
    writer = pytest.importorskip("tfrecord.writer")
    path, _ = nb101_file
    records = list(tfr.read_records(path))
    other = tmp_path / "theirs.tfrecord"
    with open(other, "wb") as f:
        for r in records:
            head = len(r).to_bytes(8, "little")
            f.write(head + writer.TFRecordWriter.masked_crc(head) + r
                    + writer.TFRecordWriter.masked_crc(r))
    assert list(tfr.read_records(other, check_crc=True)) == records
    data = bytearray(other.read_bytes())
    data[40] ^= 1  # one flipped bit inside the first record's data: its CRC must catch it
    other.write_bytes(bytes(data))
    with pytest.raises(tfr.TFRecordError):
        list(tfr.read_records(other, check_crc=True))


def _message_classes():
    """ModelMetrics / EvaluationData built from a descriptor at run time (proto2, the field
    numbers and types of NAS-Bench-101's model_metrics.proto)."""
    descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
    from google.protobuf import descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="nb101_model_metrics_test.proto",
                                               package="nb101test", syntax="proto2")
    ev = proto.message_type.add(name="EvaluationData")
    for number, name, kind in ((1, "current_epoch", F.TYPE_DOUBLE),
                               (2, "training_time", F.TYPE_DOUBLE),
                               (3, "train_accuracy", F.TYPE_DOUBLE),
                               (4, "validation_accuracy", F.TYPE_DOUBLE),
                               (5, "test_accuracy", F.TYPE_DOUBLE),
                               (6, "checkpoint_path", F.TYPE_STRING)):
        ev.field.add(name=name, number=number, type=kind, label=F.LABEL_OPTIONAL)
    mm = proto.message_type.add(name="ModelMetrics")
    mm.field.add(name="evaluation_data", number=1, type=F.TYPE_MESSAGE,
                 label=F.LABEL_REPEATED, type_name=".nb101test.EvaluationData")
    mm.field.add(name="trainable_parameters", number=2, type=F.TYPE_INT32,
                 label=F.LABEL_OPTIONAL)
    mm.field.add(name="total_time", number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("nb101test.ModelMetrics"))


FIELDS = ("current_epoch", "training_time", "train_accuracy", "validation_accuracy",
          "test_accuracy", "checkpoint_path")


def test_protobuf_runtime_decodes_our_records_and_we_decode_its(nb101_file):
    Metrics = _message_classes()
    path, n = nb101_file
    for raw in tfr.read_records(path):
        ours = decode_record(raw)
        blob = base64.b64decode(json.loads(raw)[4])
        theirs = Metrics.FromString(blob)
        assert theirs.trainable_parameters == ours.metrics.trainable_parameters
        assert theirs.total_time == ours.metrics.total_time
        assert len(theirs.evaluation_data) == len(ours.metrics.evaluation_data) == 3
        for t, o in zip(theirs.evaluation_data, ours.metrics.evaluation_data):
            for name in FIELDS:
                assert (getattr(t, name) if t.HasField(name) else None) == getattr(o, name)
        assert theirs.SerializeToString() == blob  # our encoder writes protobuf's bytes
    # the other way, with values our writer never produces (negative int32, missing fields)
    m = Metrics(trainable_parameters=-5, total_time=1.5)
    m.evaluation_data.add(current_epoch=0.0, test_accuracy=0.25)
    m.evaluation_data.add(checkpoint_path="/ckpt/x", train_accuracy=1.0)
    decoded = decode_metrics(m.SerializeToString())
    assert decoded == ModelMetrics([EvaluationData(current_epoch=0.0, test_accuracy=0.25),
                                    EvaluationData(train_accuracy=1.0,
                                                   checkpoint_path="/ckpt/x")],
                                   trainable_parameters=-5, total_time=1.5)
    assert encode_metrics(decoded) == m.SerializeToString()


def test_google_crc32c_and_the_numpy_fallback_agree():
    pytest.importorskip("google_crc32c")
    assert tfr.CRC_BACKEND == "google-crc32c"
    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(0, 600, 300), [0, 1, 3, 4, 5, 70_000]])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    buf = rng.integers(0, 256, int(lengths.sum()), dtype=np.uint8)
    assert np.array_equal(tfr.crc32c_many(buf, starts, lengths),
                          tfr.crc32c_many_numpy(buf, starts, lengths))
    raw = buf.tobytes()
    for s, k in zip(starts[:50].tolist(), lengths[:50].tolist()):
        assert tfr.crc32c(raw[s:s + k]) == tfr.crc32c_python(raw[s:s + k])
    assert tfr.crc32c(b"123456789") == tfr.crc32c_python(b"123456789") == 0xE3069283
    assert tfr.crc32c(b"56789", tfr.crc32c(b"1234")) == 0xE3069283  # continuing a CRC
