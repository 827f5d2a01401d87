# librdkafka's producer through its C API (declared in producer.pxd). confluent-kafka's
# Producer costs a Python call, a header list and a copy per message, and takes the GIL back
# for every delivery report, even one it then drops: about 1.8 µs a message against 0.6 here
# (bench/BENCHMARKS.md, Kafka path). Its admin client and consumer are still used elsewhere.
# librdkafka is not linked: its symbols come from the copy confluent-kafka has loaded, made
# global by feedhandler/_ext/__init__.py, so both share one library whatever its version.
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from cpython.unicode cimport PyUnicode_AsUTF8
from libc.stdint cimport int64_t, intptr_t
from libc.stdlib cimport free

import logging

from confluent_kafka import KafkaError, KafkaException

from feedhandler._ext.rdkafka cimport *

cdef enum:
    ERROR_SIZE = 512

_log = logging.getLogger(__name__)

# librdkafka's syslog levels -> logging's
_LEVELS = (logging.CRITICAL, logging.CRITICAL, logging.CRITICAL, logging.ERROR,
           logging.WARNING, logging.INFO, logging.INFO, logging.DEBUG)


# The header the producer was built with, and the library confluent-kafka loaded. A library
# older than the header may lay out or fill the structures the producer shares with it
# differently, or behave otherwise (one lacking a function it calls fails the import already);
# librdkafka keeps its C API compatible going forward, so a newer one is fine. Checked when a
# producer is made, not on import: publish (and through it the whole handler) imports this.
HEADER_VERSION, LIBRARY_VERSION = RD_KAFKA_VERSION, rd_kafka_version()


def version_mismatch(int library, int header):
    """What is wrong, saying what to do, when `library` is older than `header` (0xMMmmrrxx);
    else None."""
    if library >> 8 >= header >> 8:  # (the low byte is a pre-release number)
        return None
    return (f"confluent-kafka's librdkafka {_version(library)} is older than the header the "
            f"Kafka producer was built with ({_version(header)}): upgrade confluent-kafka, or "
            "build against an older librdkafka-dev")


def _version(int number) -> str:
    return f"{number >> 24 & 0xff}.{number >> 16 & 0xff}.{number >> 8 & 0xff}"


def _setting(value) -> bytes:
    """A setting's value as librdkafka takes it (as confluent-kafka writes it: true/false)."""
    if value is True or value is False:
        return b"true" if value else b"false"
    return str(value).encode()


cdef class Producer:
    """A librdkafka producer made from `settings` (librdkafka's names; a setting it refuses:
    KafkaException(KafkaError._INVALID_ARG) with its words). Callbacks, all served by poll()
    and flush() on the calling thread: on_failure(topic, key, count, KafkaError) per message
    that failed for good, on_error(KafkaError), on_statistics(json), librdkafka's log lines to
    `logger` (None: librdkafka prints them on stderr); an acknowledgement is appended to
    `acks` (when a list) and handed to on_acked(topic, partition, offset) (when set), if
    delivery.report.only.error is false. The first exception a callback raises comes out of
    that poll() or flush() once it has served the rest (a later one is logged). A librdkafka
    older than the header the producer was built with is refused like a setting.
    Producer.capturing(): no librdkafka, messages kept in `captured` (tests, benchmarks)."""

    def __init__(self, dict settings, *, logger=None, on_failure=None, on_error=None,
                 on_statistics=None):
        if self._rk != NULL or self.captured is not None:
            raise RuntimeError("a Producer is made once")
        self.logger, self.on_failure = logger, on_failure
        self.on_error, self.on_statistics = on_error, on_statistics
        self._shared.owner = <void*>self
        self._room = self._max_bytes = -1
        self.on_acked = None
        if settings is None:
            self.captured = []
            return
        mismatch = version_mismatch(LIBRARY_VERSION, HEADER_VERSION)
        if mismatch is not None:
            raise _invalid("Failed to create producer: " + mismatch)
        cdef char error[ERROR_SIZE]
        cdef rd_kafka_conf_t* conf = rd_kafka_conf_new()
        cdef rd_kafka_t* rk
        try:
            # log lines wait on the poll()ed queue: none from librdkafka's own threads
            for name, value in {**settings, "log.queue": logger is not None}.items():
                if rd_kafka_conf_set(conf, str(name).encode(), _setting(value), error,
                                     ERROR_SIZE) != RD_KAFKA_CONF_OK:
                    raise _invalid(error.decode(errors="replace"))
        except BaseException:
            rd_kafka_conf_destroy(conf)
            raise
        rd_kafka_conf_set_opaque(conf, &self._shared)
        rd_kafka_conf_set_dr_msg_cb(conf, _delivered)
        rd_kafka_conf_set_error_cb(conf, _errored)
        rd_kafka_conf_set_stats_cb(conf, _statistics)
        if logger is not None:
            rd_kafka_conf_set_log_cb(conf, _logged)
        with nogil:
            rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, ERROR_SIZE)
        if rk == NULL:  # (the configuration is still ours)
            rd_kafka_conf_destroy(conf)
            raise _invalid("Failed to create producer: " + error.decode(errors="replace"))
        self._rk = rk
        self._shared.alive = True
        if logger is not None:
            rd_kafka_set_log_queue(rk, NULL)  # the main queue, which poll() serves

    @classmethod
    def capturing(cls, Py_ssize_t room=-1, Py_ssize_t max_bytes=-1):
        """A Producer that keeps each message in `captured` as (topic, key, value, headers):
        the queue is full after `room` messages, a value over `max_bytes` is refused as
        librdkafka refuses one (MSG_SIZE_TOO_LARGE); -1: no bound."""
        cdef Producer producer = cls(None)
        producer._room, producer._max_bytes = room, max_bytes
        return producer

    def __dealloc__(self):
        if self._rk != NULL:
            self._shared.alive = False  # no callback into a Producer being torn down
            with nogil:
                rd_kafka_destroy(self._rk)

    @property
    def name(self) -> str:
        return rd_kafka_name(self._rk).decode() if self._rk != NULL else "capturing"

    cdef int send(self, str topic, const char* key, size_t key_size, char* value, size_t size,
                  bint owned, const Header* headers, Py_ssize_t count_headers,
                  int64_t count) except? -1000:
        if count_headers > MAX_HEADERS:
            raise ValueError(f"{count_headers} headers: at most {MAX_HEADERS}")
        if self._rk == NULL:
            return self._capture(topic, key, key_size, value, size, owned, headers,
                                 count_headers)
        cdef rd_kafka_vu_t vu[MAX_HEADERS + 5]
        cdef Py_ssize_t i
        vu[0].vtype = RD_KAFKA_VTYPE_TOPIC
        vu[0].u.cstr = PyUnicode_AsUTF8(topic)  # (cached in the str)
        vu[1].vtype = RD_KAFKA_VTYPE_KEY
        vu[1].u.mem.ptr, vu[1].u.mem.size = <void*>key, key_size
        vu[2].vtype = RD_KAFKA_VTYPE_VALUE
        vu[2].u.mem.ptr, vu[2].u.mem.size = value, size
        vu[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS
        vu[3].u.i = RD_KAFKA_MSG_F_FREE if owned else RD_KAFKA_MSG_F_COPY
        vu[4].vtype = RD_KAFKA_VTYPE_OPAQUE  # the record count, for the delivery report
        vu[4].u.ptr = <void*><intptr_t>count
        for i in range(count_headers):
            vu[5 + i].vtype = RD_KAFKA_VTYPE_HEADER
            vu[5 + i].u.header.name = headers[i].name
            vu[5 + i].u.header.val = headers[i].value
            vu[5 + i].u.header.size = headers[i].size
        cdef rd_kafka_error_t* error = rd_kafka_produceva(self._rk, vu, 5 + count_headers)
        if error == NULL:
            return 0
        cdef int code = rd_kafka_error_code(error)
        rd_kafka_error_destroy(error)
        return code

    cdef int _capture(self, str topic, const char* key, size_t key_size, char* value,
                      size_t size, bint owned, const Header* headers,
                      Py_ssize_t count_headers) except -1:
        if 0 <= self._max_bytes < <Py_ssize_t>size:
            return RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE
        if 0 <= self._room <= len(self.captured):
            return RD_KAFKA_RESP_ERR__QUEUE_FULL
        self.captured.append((topic, PyBytes_FromStringAndSize(key, key_size),
                              PyBytes_FromStringAndSize(value, size),
                              header_list(headers, count_headers)))
        if owned:  # as librdkafka would once sent
            free(value)
        return 0

    def produce(self, str topic not None, bytes value not None, bytes key not None,
                list headers not None, int64_t count):
        """One message of `count` records (0: not data), copied. BufferError when librdkafka's
        queue is full (try again after a poll); KafkaException when it refuses the message."""
        cdef Header fields[MAX_HEADERS]
        cdef Py_ssize_t n = add_headers(fields, 0, headers)
        _raise_for(self.send(topic, key, len(key), value, len(value), False, fields, n, count))

    def poll(self, double timeout=0.0) -> int:
        """Serves what librdkafka has for us (delivery reports, errors, statistics, log lines),
        waiting up to `timeout` s for the first; returns how many."""
        if self._rk == NULL:
            return 0
        cdef int served, ms = _milliseconds(timeout)
        with nogil:
            served = rd_kafka_poll(self._rk, ms)
        self._raise_pending()
        return served

    def flush(self, double timeout) -> int:
        """Waits up to `timeout` s for every message to be delivered, serving the callbacks;
        returns how many are still in librdkafka. Signals are handled as it waits."""
        if self._rk == NULL:
            return 0
        cdef int left = _milliseconds(timeout), ms
        while True:
            ms = min(left, 200)  # then Python's signal handlers run
            with nogil:
                rd_kafka_flush(self._rk, ms)
            left -= ms
            if left <= 0 or rd_kafka_outq_len(self._rk) == 0:
                break
            PyErr_CheckSignals()
        self._raise_pending()  # (a callback's exception: once the whole wait is done)
        return rd_kafka_outq_len(self._rk)

    def purge(self) -> None:
        """Drops every message not yet acknowledged: each is reported failed (_PURGE_QUEUE,
        _PURGE_INFLIGHT) by the next poll()."""
        if self._rk != NULL:
            with nogil:
                rd_kafka_purge(self._rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT)

    def __len__(self) -> int:
        """Messages (and events waiting for a poll) librdkafka holds."""
        return rd_kafka_outq_len(self._rk) if self._rk != NULL else 0

    cdef _raise_pending(self):
        if self._pending is not None:
            pending, self._pending = self._pending, None
            raise pending

    cdef void _keep(self, exc) noexcept:
        """An exception inside librdkafka's poll: the first waits for the end of that poll()
        or flush(), unless an interrupt or exit comes after it; the other is logged (none
        vanishes)."""
        if self._pending is None:
            self._pending = exc
            return
        if not isinstance(exc, Exception) and isinstance(self._pending, Exception):
            self._pending, exc = exc, self._pending
        (self.logger or _log).error(
            "another exception in a Kafka producer callback during one poll() or flush()",
            exc_info=exc)

    cdef _report(self, const rd_kafka_message_t* message):
        if message.err:
            if self.on_failure is not None:
                key = (PyBytes_FromStringAndSize(<char*>message.key, message.key_len)
                       if message.key != NULL else b"")
                self.on_failure(rd_kafka_topic_name(message.rkt).decode(), key,
                                <int64_t><intptr_t>message._private, KafkaError(message.err))
            return
        if self.acks is None and self.on_acked is None:
            return
        topic = rd_kafka_topic_name(message.rkt).decode()
        cdef int64_t latency = rd_kafka_message_latency(message)  # µs, -1: unknown
        if self.acks is not None:
            self.acks.append((topic, latency / 1e6 if latency >= 0 else None))
        if self.on_acked is not None:
            self.on_acked(topic, message.partition, message.offset)


cdef Py_ssize_t add_headers(Header* headers, Py_ssize_t n, object pairs) except -1:
    """(name, value) pairs written after headers[n - 1], pointing into the pairs' objects (which
    must outlive their use); returns the new count."""
    for name, value in pairs:
        if n == MAX_HEADERS:
            raise ValueError(f"more headers than a message's at most {MAX_HEADERS}")
        headers[n].name = PyUnicode_AsUTF8(name)
        headers[n].value, headers[n].size = PyBytes_AS_STRING(value), len(<bytes?>value)
        n += 1
    return n


cdef list header_list(const Header* headers, Py_ssize_t n):
    """headers[0:n] as (name, value) pairs."""
    return [(headers[i].name.decode(), PyBytes_FromStringAndSize(headers[i].value,
                                                                 headers[i].size))
            for i in range(n)]


cdef object _invalid(str text):
    return KafkaException(KafkaError(KafkaError._INVALID_ARG, text))


cdef int _raise_for(int code) except -1:
    """Nothing for 0; BufferError for a full queue, else KafkaException(KafkaError(code))."""
    if code == 0:
        return 0
    if code == RD_KAFKA_RESP_ERR__QUEUE_FULL:
        raise BufferError("Local: Queue full")
    raise KafkaException(KafkaError(code))


cdef int _milliseconds(double seconds):
    return <int>min(max(seconds, 0.0) * 1000, 2_000_000_000)


# librdkafka's callbacks, run by rd_kafka_poll() or rd_kafka_flush() on the thread that calls
# them (which let the GIL go): anything raised is kept for that poll's end, so a failure report
# cannot vanish into "Exception ignored".
cdef void _delivered(rd_kafka_t* rk, const rd_kafka_message_t* message,
                     void* opaque) noexcept nogil:
    cdef Shared* shared = <Shared*>opaque
    if shared.alive:
        with gil:
            producer = <Producer>shared.owner
            try:
                producer._report(message)
            except BaseException as exc:
                producer._keep(exc)


cdef void _errored(rd_kafka_t* rk, int code, const char* reason, void* opaque) noexcept nogil:
    cdef Shared* shared = <Shared*>opaque
    cdef char text[ERROR_SIZE]
    cdef int underlying
    cdef bint fatal = code == RD_KAFKA_RESP_ERR__FATAL
    text[0] = 0
    if fatal:  # the error under it, as confluent-kafka reports it
        underlying = rd_kafka_fatal_error(rk, text, ERROR_SIZE)
        if underlying:
            code, reason = underlying, text
    if shared.alive:
        with gil:
            producer = <Producer>shared.owner
            try:
                if producer.on_error is not None:
                    producer.on_error(KafkaError(code, reason.decode(errors="replace"),
                                                 fatal=fatal))
            except BaseException as exc:
                producer._keep(exc)


cdef int _statistics(rd_kafka_t* rk, char* json, size_t size, void* opaque) noexcept nogil:
    cdef Shared* shared = <Shared*>opaque
    if shared.alive:
        with gil:
            producer = <Producer>shared.owner
            try:
                if producer.on_statistics is not None:
                    producer.on_statistics(json[:size].decode(errors="replace"))
            except BaseException as exc:
                producer._keep(exc)
    return 0  # librdkafka frees the text


cdef void _logged(const rd_kafka_t* rk, int level, const char* facility,
                  const char* line) noexcept nogil:
    if rk == NULL:  # (a line from before the handle existed: no owner to give it to)
        return
    cdef Shared* shared = <Shared*>rd_kafka_opaque(rk)
    if shared.alive:
        with gil:
            producer = <Producer>shared.owner
            try:
                producer.logger.log(
                    _LEVELS[min(max(level, 0), 7)], "%s [%s] %s", facility.decode(),
                    rd_kafka_name(rk).decode(), line.decode(errors="replace"))
            except BaseException as exc:
                producer._keep(exc)
