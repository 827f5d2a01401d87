# Record batches -> Kafka messages, one per (kind, symbol) run, with no Python step per record
# or per message: rows copied into their symbol's message in C++ (grouping.h), and the
# per-message headers and librdkafka calls (producer.pyx) in one C loop. The Kafka sink
# (feedhandler/sinks/kafka.py) decides what goes where.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_AsUTF8
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free
from libc.string cimport memcpy, memset
from libcpp.vector cimport vector

import numpy as np
from confluent_kafka import KafkaError

cimport feedhandler._ext.core as core
cimport numpy as cnp
from feedhandler._ext.producer cimport (MAX_HEADERS, Header, Producer, add_headers,
                                        header_list)
from feedhandler._ext.rdkafka cimport RD_KAFKA_RESP_ERR__QUEUE_FULL


cnp.import_array()
from feedhandler.contract import H_COUNT, H_EPOCH, H_SEQ_FIRST, H_SEQ_LAST, H_SYMBOL

# The per-message header names, UTF-8 held by the module's str constants
cdef const char* _H_COUNT = PyUnicode_AsUTF8(H_COUNT)
cdef const char* _H_EPOCH = PyUnicode_AsUTF8(H_EPOCH)
cdef const char* _H_SEQ_FIRST = PyUnicode_AsUTF8(H_SEQ_FIRST)
cdef const char* _H_SEQ_LAST = PyUnicode_AsUTF8(H_SEQ_LAST)
cdef const char* _H_SYMBOL = PyUnicode_AsUTF8(H_SYMBOL)


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
cdef Py_ssize_t _decimal(char* text, int64_t value) noexcept:
    """`value` in decimal into text[0:20], returns its length; written backwards by hand:
    snprintf's format parsing cost about a microsecond a call on a cold cache."""
    cdef char digits[20]  # 19 digits and a sign: -9223372036854775808
    cdef Py_ssize_t at = 20
    cdef uint64_t rest = <uint64_t>value if value >= 0 else <uint64_t>0 - <uint64_t>value
    while True:
        at -= 1
        digits[at] = <char>(48 + rest % 10)  # '0' + the last digit
        rest //= 10
        if rest == 0:
            break
    if value < 0:
        at -= 1
        digits[at] = 45  # '-'
    memcpy(text, digits + at, 20 - at)
    return 20 - at


cdef class Outlet:
    """Where produce_messages and produce_records send messages, for the life of a producer:
    `producer`. A message librdkafka refuses up front goes to failed(topic, key, count,
    KafkaError); one that must wait (queue full, or behind a backlog) to backlog(topic, key,
    value, headers, count)."""
    cdef readonly Producer producer
    cdef readonly object backlog, failed

    def __init__(self, Producer producer not None, backlog, failed):
        self.producer, self.backlog, self.failed = producer, backlog, failed


cdef struct Digits:  # a data message's numeric header values, written in place
    char count[20]
    char epoch[20]
    char first[20]
    char last[20]


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
    cdef int64_t epoch

    def __init__(self, list topics not None, list keys not None, list values not None,
                 const int64_t[::1] counts not None, tuple fixed_headers not None,
                 int64_t epoch, const int64_t[::1] firsts=None,
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
    cdef Header headers[MAX_HEADERS]
    cdef Digits digits
    cdef Py_ssize_t i, n, fixed = _fixed(headers, batch.fixed_headers)
    cdef bytes value
    for i in range(len(batch.values)):
        n = _numbers(headers, fixed, &digits, batch.counts[i], batch.epoch, batch.sequenced,
                     batch.firsts[i] if batch.sequenced else 0,
                     batch.lasts[i] if batch.sequenced else 0)
        if batch.extra_headers is not None:
            n = add_headers(headers, n, batch.extra_headers[i])
        value = batch.values[i]
        full = _send(outlet, batch, batch.topics[i], batch.keys[i], PyBytes_AS_STRING(value),
                     len(value), False, value, headers, n, batch.counts[i], full)


cdef class RecordLayout:
    """Where produce_records finds a kind's symbol and sequence range in its records, and
    which byte ranges no field covers (the schema's layout, read once per kind); how much of
    a row a message carries (`row_bytes`: all of it, or for the compact encoding the row's
    first bytes, which leave the symbol out: `compact`); and the kind's rows not yet sent
    (`held`), one open message per symbol."""
    cdef readonly Py_ssize_t itemsize, row_bytes, symbol_offset, symbol_width
    cdef readonly Py_ssize_t first_offset, last_offset
    cdef readonly bint compact
    cdef vector[uint8_t] _keep  # per byte of a row: 0xff, or 0 where padding is
    cdef core.OpenMessages _open

    def __init__(self, dtype not None, tuple sequence=None, padding=(), Py_ssize_t row_bytes=-1):
        symbol, offset = dtype.fields["symbol"][:2]
        if symbol.kind != "S":
            raise ValueError("the symbol field must be fixed-width bytes")
        self.itemsize, self.symbol_offset = dtype.itemsize, offset
        self.row_bytes = self.itemsize if row_bytes < 0 else row_bytes
        self.compact = self.row_bytes < self.itemsize
        if self.compact and not 0 < self.row_bytes <= offset:
            raise ValueError("row_bytes: whole rows, or rows cut before their symbol")
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
            if max(first[1], last[1]) + 8 > self.row_bytes:
                raise ValueError("sequence fields must be in the bytes a message carries")

    @property
    def held(self):
        """Rows given to produce_records and not yet sent (held)."""
        return self._open.held()


def produce_records(Outlet outlet not None, RecordLayout layout not None,
                    cnp.ndarray records, Py_ssize_t most, dict topics not None,
                    new_topic not None, tuple fixed_headers not None, int64_t epoch,
                    bint full, Counts counts not None, bint hold=False):
    """Record batches in the binary encoding, with no Python step per record or message.

    Each row of `records` (C-contiguous rows of layout.itemsize bytes; None: none), of
    connection epoch `epoch`, is copied in one pass in row order into its symbol's open
    message, which the layout keeps from call to call (a message of another epoch is finished
    first); the layout's padding is zero in the messages, whatever it holds in `records`.
    A message carries layout.row_bytes of each row: with a compact layout the rows stop before
    their symbol, which an H_SYMBOL header after the sequence range carries once.
    Then the finished messages (`most` records, the same in every call, or of an earlier
    epoch), and unless `hold` every open one too, are sent: symbol by symbol in order of first
    appearance, each symbol's in row order, keyed by the symbol, to topics[symbol]
    (new_topic(symbol) when missing), with produce_messages' headers and backlog rule, counted
    in `counts`."""
    if most < 1:
        raise ValueError("most: at least one record per message")
    cdef Py_ssize_t n = 0
    if records is not None:
        n = cnp.PyArray_DIM(records, 0) if cnp.PyArray_NDIM(records) == 1 else -1
        if n < 0 or cnp.PyArray_ITEMSIZE(records) != layout.itemsize \
                or not cnp.PyArray_IS_C_CONTIGUOUS(records):
            raise ValueError("records: a C-contiguous 1-D array of the layout's rows")
    cdef Header headers[MAX_HEADERS]
    cdef Digits digits
    cdef Py_ssize_t fixed = _fixed(headers, fixed_headers), count_headers, i
    # librdkafka takes a value as it is (no copy) and frees it once delivered; behind a
    # backlog it is copied into the backlog's bytes instead. What a raise leaves is freed.
    cdef vector[core.HeldMessage] messages
    cdef bint sequenced = layout.first_offset >= 0
    cdef size_t width = layout.row_bytes
    cdef int32_t symbol = -1
    cdef const char* key_bytes
    cdef char* value
    cdef int64_t count, first = 0, last = 0
    cdef bytes key
    cdef str topic  # (checked here, before a value is sent to it)
    try:
        if n:
            try:
                layout._open.append(<const char*>cnp.PyArray_DATA(records), n,
                                    layout.itemsize, layout.row_bytes,
                                    layout.symbol_offset, layout.symbol_width,
                                    layout._keep.data(), most, epoch)
            except Exception:
                # the batch leaves whole or not at all (nor later under another's epoch):
                # what it left open is taken, and freed below
                if not hold:
                    layout._open.take(True, most, messages)
                raise
        layout._open.take(not hold, most, messages)
        for i in range(<Py_ssize_t>messages.size()):
            if messages[i].key != symbol:  # (a symbol's messages come one after another)
                symbol = messages[i].key
                key_bytes = layout._open.key(symbol)
                key = PyBytes_FromStringAndSize(key_bytes,
                                                _key_size(key_bytes, layout.symbol_width))
                topic = topics.get(key)
                if topic is None:
                    topic = new_topic(key)
            value, count = messages[i].value, messages[i].rows
            if sequenced:  # (compact rows leave them unaligned)
                memcpy(&first, value + layout.first_offset, 8)
                memcpy(&last, value + (count - 1) * width + layout.last_offset, 8)
            count_headers = _numbers(headers, fixed, &digits, count, messages[i].epoch,
                                     sequenced, first, last)
            if layout.compact:  # (the rows left their symbol out)
                headers[count_headers].name = _H_SYMBOL
                headers[count_headers].value, headers[count_headers].size = key_bytes, len(key)
                count_headers += 1
            messages[i].value = NULL  # _send frees it or hands it over
            full = _send(outlet, counts, topic, key, value, count * width, True, None,
                         headers, count_headers, count, full)
    finally:  # what a raise left unsent, or took from a batch that failed
        for i in range(<Py_ssize_t>messages.size()):
            free(messages[i].value)


cdef inline Py_ssize_t _key_size(const char* symbol, Py_ssize_t width) noexcept:
    """The symbol up to its last byte that is not NUL, as numpy reads the column (and the
    other encodings key by). The decoder refuses a symbol with a NUL inside; rows made
    otherwise are grouped on all `width` bytes, and one cut at a NUL would share another's
    key, out of order with its messages."""
    while width and symbol[width - 1] == 0:
        width -= 1
    return width


cdef Py_ssize_t _fixed(Header* headers, tuple fixed_headers) except -1:
    """A data message's first headers, the fixed ones; returns how many. The tuples' objects
    hold the bytes for the call."""
    if len(fixed_headers) + 5 > MAX_HEADERS:  # (count, epoch, the sequence range, symbol)
        raise ValueError(f"more than {MAX_HEADERS - 5} fixed headers")
    return add_headers(headers, 0, fixed_headers)


cdef Py_ssize_t _numbers(Header* headers, Py_ssize_t fixed, Digits* digits, int64_t count,
                         int64_t epoch, bint sequenced, int64_t first, int64_t last) except -1:
    """Count and epoch (after the fixed headers), then the sequence range, written into
    `digits`; returns the headers' count."""
    headers[fixed].name = _H_COUNT
    headers[fixed].value, headers[fixed].size = digits.count, _decimal(digits.count, count)
    headers[fixed + 1].name = _H_EPOCH
    headers[fixed + 1].value, headers[fixed + 1].size = digits.epoch, _decimal(digits.epoch,
                                                                               epoch)
    if not sequenced:
        return fixed + 2
    headers[fixed + 2].name = _H_SEQ_FIRST
    headers[fixed + 2].value, headers[fixed + 2].size = digits.first, _decimal(digits.first,
                                                                               first)
    headers[fixed + 3].name = _H_SEQ_LAST
    headers[fixed + 3].value, headers[fixed + 3].size = digits.last, _decimal(digits.last, last)
    return fixed + 4


cdef int _send(Outlet outlet, Counts batch, str topic, bytes key, char* value, size_t size,
               bint owned, bytes kept, const Header* headers, Py_ssize_t n, int64_t count,
               bint full) except -1:
    """One message through `outlet`, or to its backlog once `full`; returns `full` after it.
    `owned`: `value` was malloc'd for librdkafka to free (freed here, whatever is raised, when
    it is not handed over); else `kept`, when given, holds the value's bytes."""
    cdef int code = 0
    cdef bint handed_over = False
    try:
        if not full:
            code = outlet.producer.send(topic, key, len(key), value, size, owned, headers, n,
                                        count)
            if code == 0:
                handed_over = True
                batch.produced += 1
                batch.records += count
                return full
            if code == RD_KAFKA_RESP_ERR__QUEUE_FULL:
                full = True
                batch.buffer_full += 1
        if kept is None and full:  # (a refused value is not kept)
            kept = PyBytes_FromStringAndSize(value, size)
    finally:
        if owned and not handed_over:
            free(value)
    if full:
        outlet.backlog(topic, key, kept, header_list(headers, n), count)
    else:  # refused, e.g. too large: retrying cannot help
        outlet.failed(topic, key, count, KafkaError(code))
    return full
