# Record batches -> Kafka messages, one per (kind, symbol) run, with no Python step per record
# or per message: grouping in C++, and the per-message slicing, headers and produce() calls in
# one C loop. The Kafka sink (feedhandler/sinks/kafka.py) decides what goes where.
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t
from libc.stdio cimport snprintf
from libc.string cimport memcpy

import numpy as np
from confluent_kafka import KafkaException

cimport feedhandler._ext.core as core
from feedhandler.contract import H_COUNT, H_EPOCH, H_SEQ_FIRST, H_SEQ_LAST


def group_rows(keys not None):
    """A 1-D array of fixed-width byte keys (e.g. the `symbol` column of records, strided) ->
    (order, bounds): rows order[bounds[g]:bounds[g + 1]] have equal keys and form group g, in
    row order; groups in order of first appearance. `order` is None when all rows are one group
    (the batch is one run as it is); no rows: no groups, bounds [0]."""
    if not (isinstance(keys, np.ndarray) and keys.ndim == 1 and keys.dtype.kind in "SV"):
        raise TypeError(f"expected a 1-D array of fixed-width bytes, not {keys!r:.60}")
    cdef Py_ssize_t n = keys.shape[0]
    if n == 0:
        return None, np.zeros(1, np.int64)
    if keys.strides[0] < 0:
        keys = np.ascontiguousarray(keys)
    order = np.empty(n, np.int64)
    bounds = np.empty(n + 1, np.int64)
    cdef int64_t[::1] order_view = order
    cdef int64_t[::1] bounds_view = bounds
    # (`keys` holds its buffer through the call)
    cdef const char* data = <const char*><size_t>keys.__array_interface__["data"][0]
    cdef size_t stride = keys.strides[0], width = keys.dtype.itemsize
    cdef size_t groups
    with nogil:
        groups = core.group_rows(data, n, stride, width, &order_view[0], &bounds_view[0])
    return (None if groups == 1 else order), bounds[:groups + 1]


def record_values(const uint8_t[::1] data not None, Py_ssize_t itemsize,
                  const int64_t[::1] starts not None, const int64_t[::1] ends not None,
                  const int64_t[::1] order=None):
    """The records in `data` (their bytes) -> one bytes per message i: rows starts[i]:ends[i],
    or with `order` rows order[starts[i]:ends[i]], gathered straight into the bytes (one copy,
    where taking the rows first would be two)."""
    cdef Py_ssize_t i, j, rows = data.shape[0] // itemsize if itemsize > 0 else 0
    cdef Py_ssize_t positions = rows if order is None else order.shape[0]
    if starts.shape[0] != ends.shape[0]:
        raise ValueError("starts and ends differ in length")
    # (release builds do not bounds-check the copies below)
    for i in range(starts.shape[0]):
        if not 0 <= starts[i] <= ends[i] <= positions:
            raise ValueError(f"rows {starts[i]}:{ends[i]} outside 0:{positions}")
    if order is not None:
        for j in range(positions):
            if not 0 <= order[j] < rows:
                raise ValueError(f"row {order[j]} outside 0:{rows}")
    cdef list values = []
    cdef bytes value
    cdef char* out
    for i in range(starts.shape[0]):
        if order is None:
            values.append(PyBytes_FromStringAndSize(<const char*>&data[0] + starts[i] * itemsize,
                                                    (ends[i] - starts[i]) * itemsize))
            continue
        value = PyBytes_FromStringAndSize(NULL, (ends[i] - starts[i]) * itemsize)
        out = PyBytes_AS_STRING(value)
        for j in range(starts[i], ends[i]):
            memcpy(out, &data[0] + order[j] * itemsize, itemsize)
            out += itemsize
        values.append(value)
    return values


cdef inline bytes _decimal(int64_t value):
    cdef char text[24]
    return PyBytes_FromStringAndSize(text, snprintf(text, sizeof(text), "%lld", <long long>value))


cdef class Delivery:
    """The delivery callback of the messages of `count` records, one per distinct count (a new
    callable per message would cost a Python object each; confluent_kafka reports neither
    headers nor an opaque value). A failure goes to outlet.on_delivery(count, err, msg); an
    acknowledgement is handled here, with no Python frame: its (topic, produce -> ack seconds)
    appended to outlet.acks when that is a list, and the message to outlet.on_acked if set."""
    cdef readonly int64_t count
    cdef Outlet outlet

    def __init__(self, Outlet outlet not None, int64_t count):
        self.outlet, self.count = outlet, count

    def __call__(self, err, msg):
        cdef Outlet outlet = self.outlet
        if err is not None:
            outlet.on_delivery(self.count, err, msg)
            return
        if outlet.acks is not None:
            outlet.acks.append((msg.topic(), msg.latency()))
        if outlet.on_acked is not None:
            outlet.on_acked(msg)


cdef class Outlet:
    """Where produce_messages sends messages, for the life of a producer.

    produce: confluent_kafka's Producer.produce. Delivery reports come to a Delivery per record
    count, kept in `callbacks`: failures to on_delivery(count, err, msg), acknowledgements
    to `acks` (a list, or None: not kept) and `on_acked`. A message librdkafka refuses up front
    goes to failed(topic, key, count, KafkaError); one that must wait (queue full, or behind a
    backlog) to backlog(topic, key, value, headers, count)."""
    cdef readonly object produce, on_delivery, backlog, failed
    cdef readonly dict callbacks
    cdef dict count_headers  # count -> its (H_COUNT, b"<count>") header
    cdef public list acks
    cdef public object on_acked

    def __init__(self, produce, on_delivery, backlog, failed):
        self.produce, self.on_delivery = produce, on_delivery
        self.backlog, self.failed = backlog, failed
        self.callbacks, self.count_headers = {}, {}
        self.acks, self.on_acked = None, None

    cpdef object callback(self, int64_t count):
        """The Delivery of messages of `count` records."""
        callback = self.callbacks.get(count)
        if callback is None:
            callback = self.callbacks[count] = Delivery(self, count)
        return callback

    cdef tuple count_header(self, int64_t count):
        header = self.count_headers.get(count)
        if header is None:
            header = self.count_headers[count] = (H_COUNT, _decimal(count))
        return header


cdef class MessageBatch:
    """The messages of one record batch, and what became of them.

    Message i: values[i] keyed keys[i] to topics[i], carrying counts[i] records (sequence ids
    firsts[i]..lasts[i] when given). Headers: `fixed_headers`, count, epoch, the sequence range,
    then extra_headers[i] when given. produce_messages counts as it goes (so the counts hold even
    if a callback raises): messages produced, their records, times the queue was found full."""
    cdef list topics, keys, values, extra_headers
    cdef const int64_t[::1] counts, firsts, lasts
    cdef bint sequenced
    cdef tuple fixed_headers
    cdef bytes epoch
    cdef readonly int64_t produced, records, buffer_full

    def __init__(self, list topics not None, list keys not None, list values not None,
                 const int64_t[::1] counts not None, tuple fixed_headers not None,
                 bytes epoch not None, const int64_t[::1] firsts=None,
                 const int64_t[::1] lasts=None, list extra_headers=None):
        cdef Py_ssize_t n = len(values)
        if not (len(topics) == len(keys) == counts.shape[0] == n):
            raise ValueError("topics, keys, values and counts differ in length")
        if (firsts is None) != (lasts is None) or (
                firsts is not None and not firsts.shape[0] == lasts.shape[0] == n):
            raise ValueError("firsts and lasts: both or neither, one per message")
        if extra_headers is not None and len(extra_headers) != n:
            raise ValueError("extra_headers: one list per message")
        self.topics, self.keys, self.values, self.counts = topics, keys, values, counts
        self.sequenced = firsts is not None
        if self.sequenced:
            self.firsts, self.lasts = firsts, lasts
        self.fixed_headers, self.epoch, self.extra_headers = fixed_headers, epoch, extra_headers


def produce_messages(Outlet outlet not None, MessageBatch batch not None, bint full):
    """Produces each message of `batch` through `outlet`; once `full` (behind a backlog, or
    librdkafka's queue is full) every further message goes to outlet.backlog instead, so per-key
    order holds."""
    cdef Py_ssize_t i
    cdef int64_t count
    cdef list headers
    cdef tuple epoch = (H_EPOCH, batch.epoch)
    produce = outlet.produce
    for i in range(len(batch.values)):
        count = batch.counts[i]
        headers = [*batch.fixed_headers, outlet.count_header(count), epoch]
        if batch.sequenced:
            headers.append((H_SEQ_FIRST, _decimal(batch.firsts[i])))
            headers.append((H_SEQ_LAST, _decimal(batch.lasts[i])))
        if batch.extra_headers is not None:
            headers += batch.extra_headers[i]
        if not full:
            try:
                produce(batch.topics[i], batch.values[i], batch.keys[i],
                        on_delivery=outlet.callback(count), headers=headers)
            except BufferError:
                full = True
                batch.buffer_full += 1
            except KafkaException as exc:  # e.g. too large: retrying cannot help
                outlet.failed(batch.topics[i], batch.keys[i], count, exc.args[0])
                continue
            else:
                batch.produced += 1
                batch.records += count
                continue
        outlet.backlog(batch.topics[i], batch.keys[i], batch.values[i], headers, count)
