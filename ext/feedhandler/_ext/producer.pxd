from libc.stdint cimport int64_t

from feedhandler._ext.rdkafka cimport rd_kafka_message_t, rd_kafka_t


cdef enum:
    MAX_HEADERS = 24  # a message's


cdef struct Header:
    const char* name
    const char* value
    Py_ssize_t size


# (name, value) pairs into a Header array / back
cdef Py_ssize_t add_headers(Header* headers, Py_ssize_t n, object pairs) except -1
cdef list header_list(const Header* headers, Py_ssize_t n)


cdef struct Shared:  # what librdkafka's callbacks are handed (rd_kafka_opaque)
    void* owner      # the Producer, borrowed: it outlives its rd_kafka_t
    bint alive       # false once the Producer is being torn down


# librdkafka's producer through its C API, for the Kafka sink: a message is one C call with
# no Python object; delivery reports are served in C and only failures (and acknowledgements
# when asked for) reach Python.
cdef class Producer:
    cdef rd_kafka_t* _rk              # NULL: capturing (tests and benchmarks)
    cdef Shared _shared
    cdef object _pending              # an exception a callback raised, re-raised after the poll
    cdef readonly object logger, on_failure, on_error, on_statistics
    cdef public list acks             # (topic, produce -> ack s | None) per acknowledgement
    cdef public object on_acked       # (topic, partition, offset) per acknowledgement
    cdef readonly list captured       # capturing: (topic, key, value, headers) per message
    cdef Py_ssize_t _room, _max_bytes

    # One message: `value` copied, or owned by librdkafka once sent when `owned` (malloc'd;
    # still the caller's on an error). Returns 0 or librdkafka's error (queue full: wait).
    cdef int send(self, str topic, const char* key, size_t key_size, char* value, size_t size,
                  bint owned, const Header* headers, Py_ssize_t count_headers,
                  int64_t count) except? -1000
    cdef int _capture(self, str topic, const char* key, size_t key_size, char* value,
                      size_t size, bint owned, const Header* headers,
                      Py_ssize_t count_headers) except -1
    cdef _raise_pending(self)
    cdef void _keep(self, exc) noexcept
    cdef _report(self, const rd_kafka_message_t* message)
