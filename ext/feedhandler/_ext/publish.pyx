# Record batches -> Kafka messages, one per (kind, symbol) run, with no Python step per record
# or per message: grouping in C++, and the per-message slicing, headers and produce() calls in
# one C loop. The Kafka sink (feedhandler/sinks/kafka.py) decides what goes where.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memset
from libcpp.vector cimport vector

import numpy as np
from confluent_kafka import KafkaException

cimport feedhandler._ext.core as core
cimport numpy as cnp


cdef extern from "<string.h>" nogil:
    size_t strnlen(const char* s, size_t maxlen)

cnp.import_array()
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


@cython.cdivision(True)
cdef inline bytes _decimal(int64_t value):
    """`value` in decimal, written backwards by hand: snprintf's format parsing cost about a
    microsecond a call on a cold cache, two calls a message (the sequence range)."""
    cdef char text[20]  # 19 digits and a sign: -9223372036854775808
    cdef Py_ssize_t at = 20
    cdef uint64_t rest = <uint64_t>value if value >= 0 else <uint64_t>0 - <uint64_t>value
    while True:
        at -= 1
        text[at] = <char>(48 + rest % 10)  # '0' + the last digit
        rest //= 10
        if rest == 0:
            break
    if value < 0:
        at -= 1
        text[at] = 45  # '-'
    return PyBytes_FromStringAndSize(text + at, 20 - at)


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


cdef class Counts:
    """What produce_messages or produce_records did, counted as they go (so the counts hold
    even if a callback raises): messages produced, their records, times the queue was found
    full."""
    cdef readonly int64_t produced, records, buffer_full


cdef class MessageBatch(Counts):
    """The messages of one record batch, and what became of them (its Counts).

    Message i: values[i] keyed keys[i] to topics[i], carrying counts[i] records (sequence ids
    firsts[i]..lasts[i] when given). Headers: `fixed_headers`, count, epoch, the sequence range,
    then extra_headers[i] when given."""
    cdef list topics, keys, values, extra_headers
    cdef const int64_t[::1] counts, firsts, lasts
    cdef bint sequenced
    cdef tuple fixed_headers
    cdef bytes epoch

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
    cdef list headers
    cdef tuple epoch = (H_EPOCH, batch.epoch)
    for i in range(len(batch.values)):
        headers = _headers(outlet, batch.fixed_headers, batch.counts[i], epoch, batch.sequenced,
                           batch.firsts[i] if batch.sequenced else 0,
                           batch.lasts[i] if batch.sequenced else 0)
        if batch.extra_headers is not None:
            headers += batch.extra_headers[i]
        full = _send(outlet, batch, batch.topics[i], batch.keys[i], batch.values[i],
                     batch.counts[i], headers, full)


cdef class RecordLayout:
    """Where produce_records finds a kind's symbol and sequence range in its records, and
    which byte ranges no field covers (the schema's layout, read once per kind)."""
    cdef readonly Py_ssize_t itemsize, symbol_offset, symbol_width, first_offset, last_offset
    cdef vector[uint8_t] _keep  # per byte of a row: 0xff, or 0 where padding is

    def __init__(self, dtype not None, tuple sequence=None, padding=()):
        symbol, offset = dtype.fields["symbol"][:2]
        if symbol.kind != "S":
            raise ValueError("the symbol field must be fixed-width bytes")
        self.itemsize, self.symbol_offset = dtype.itemsize, offset
        self._keep.assign(self.itemsize, 0xff)
        for start, end in padding:
            if not 0 <= start < end <= self.itemsize:
                raise ValueError(f"padding ({start}, {end}) outside a {self.itemsize}-byte row")
            memset(&self._keep[start], 0, end - start)
        self.symbol_width = symbol.itemsize
        self.first_offset = self.last_offset = -1
        if sequence is not None:
            first, last = dtype.fields[sequence[0]], dtype.fields[sequence[1]]
            if first[0] != np.int64 or last[0] != np.int64:
                raise ValueError("sequence fields must be int64")
            self.first_offset, self.last_offset = first[1], last[1]


def produce_records(Outlet outlet not None, RecordLayout layout not None,
                    cnp.ndarray records not None, Py_ssize_t most, dict topics not None,
                    new_topic not None, tuple fixed_headers not None, bytes epoch not None,
                    bint full, Counts counts not None):
    """One record batch in the binary encoding, in one call: rows grouped by symbol (groups in
    order of first appearance, rows in order within each), each group cut into messages of at
    most `most` records whose bytes are gathered straight into the value, keyed by the symbol,
    to topics[symbol] (new_topic(symbol) when missing), with produce_messages' headers and
    backlog rule, counted in `counts`. `records`: C-contiguous rows of layout.itemsize bytes;
    the layout's padding is zero in the messages, whatever it holds in `records`."""
    cdef Py_ssize_t n = cnp.PyArray_DIM(records, 0) if cnp.PyArray_NDIM(records) == 1 else -1
    if n < 0 or cnp.PyArray_ITEMSIZE(records) != layout.itemsize \
            or not cnp.PyArray_IS_C_CONTIGUOUS(records):
        raise ValueError("records: a C-contiguous 1-D array of the layout's rows")
    if most < 1:
        raise ValueError("most: at least one record per message")
    if n == 0:
        return
    cdef const char* data = <const char*>cnp.PyArray_DATA(records)
    cdef size_t width = layout.itemsize
    cdef vector[int64_t] order = vector[int64_t](n)
    cdef vector[int64_t] bounds = vector[int64_t](n + 1)
    cdef size_t groups = core.group_rows(data + layout.symbol_offset, n, width,
                                         layout.symbol_width, order.data(), bounds.data())
    cdef tuple epoch_header = (H_EPOCH, epoch)
    cdef bint sequenced = layout.first_offset >= 0
    cdef Py_ssize_t g, start, stop
    cdef int64_t count
    cdef const char* row
    cdef bytes key, value
    for g in range(<Py_ssize_t>groups):
        row = data + order[bounds[g]] * width + layout.symbol_offset
        key = PyBytes_FromStringAndSize(row, strnlen(row, layout.symbol_width))
        topic = topics.get(key)
        if topic is None:
            topic = new_topic(key)
        start = bounds[g]
        while start < bounds[g + 1]:
            stop = start + min(most, bounds[g + 1] - start)
            count = stop - start
            value = PyBytes_FromStringAndSize(NULL, count * width)
            core.gather_rows(data, width, &order[start], count, layout._keep.data(),
                             PyBytes_AS_STRING(value))
            headers = _headers(
                outlet, fixed_headers, count, epoch_header, sequenced,
                (<const int64_t*>(data + order[start] * width + layout.first_offset))[0]
                if sequenced else 0,
                (<const int64_t*>(data + order[stop - 1] * width + layout.last_offset))[0]
                if sequenced else 0)
            full = _send(outlet, counts, topic, key, value, count, headers, full)
            start = stop


cdef list _headers(Outlet outlet, tuple fixed_headers, int64_t count, tuple epoch,
                   bint sequenced, int64_t first, int64_t last):
    """A data message's headers: the fixed ones, count, epoch, then the sequence range."""
    cdef list headers = [*fixed_headers, outlet.count_header(count), epoch]
    if sequenced:
        headers.append((H_SEQ_FIRST, _decimal(first)))
        headers.append((H_SEQ_LAST, _decimal(last)))
    return headers


cdef int _send(Outlet outlet, Counts batch, topic, key, value, int64_t count,
               list headers, bint full) except -1:
    """One message through `outlet`, or to its backlog once `full`; returns `full` after it."""
    if not full:
        try:
            # Positional, keywords would cost a dict per message: topic, value, key, partition
            # (-1: the partitioner's), callback, on_delivery (its alias: unset), timestamp (0:
            # now), headers
            outlet.produce(topic, value, key, -1, outlet.callback(count), None, 0, headers)
        except BufferError:
            full = True
            batch.buffer_full += 1
        except KafkaException as exc:  # e.g. too large: retrying cannot help
            outlet.failed(topic, key, count, exc.args[0])
            return full
        else:
            batch.produced += 1
            batch.records += count
            return full
    outlet.backlog(topic, key, value, headers, count)
    return full
