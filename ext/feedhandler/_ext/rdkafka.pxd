# The part of librdkafka's C API (librdkafka/rdkafka.h) the producer uses. The header comes
# from Debian's librdkafka-dev (make setup); the library is the one confluent-kafka loads.
from libc.stdint cimport int32_t, int64_t


cdef extern from "librdkafka/rdkafka.h" nogil:
    ctypedef struct rd_kafka_t:
        pass
    ctypedef struct rd_kafka_conf_t:
        pass
    ctypedef struct rd_kafka_topic_t:
        pass
    ctypedef struct rd_kafka_error_t:
        pass
    ctypedef struct rd_kafka_queue_t:
        pass

    ctypedef enum rd_kafka_type_t:
        RD_KAFKA_PRODUCER
    ctypedef enum rd_kafka_conf_res_t:
        RD_KAFKA_CONF_OK
    ctypedef int rd_kafka_resp_err_t
    enum:
        RD_KAFKA_VERSION  # the header's: 0xMMmmrrxx
        RD_KAFKA_RESP_ERR_NO_ERROR
        RD_KAFKA_RESP_ERR__FATAL
        RD_KAFKA_RESP_ERR__QUEUE_FULL
        RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE
        RD_KAFKA_MSG_F_FREE
        RD_KAFKA_MSG_F_COPY
        RD_KAFKA_PURGE_F_QUEUE
        RD_KAFKA_PURGE_F_INFLIGHT

    ctypedef enum rd_kafka_vtype_t:
        RD_KAFKA_VTYPE_TOPIC
        RD_KAFKA_VTYPE_KEY
        RD_KAFKA_VTYPE_VALUE
        RD_KAFKA_VTYPE_OPAQUE
        RD_KAFKA_VTYPE_MSGFLAGS
        RD_KAFKA_VTYPE_HEADER
    ctypedef struct rd_kafka_vu_mem_t:  # (the header's anonymous members: no variable has these types)
        void* ptr
        size_t size
    ctypedef struct rd_kafka_vu_header_t:
        const char* name
        const void* val
        Py_ssize_t size
    ctypedef union rd_kafka_vu_u:
        const char* cstr
        int i
        void* ptr
        rd_kafka_vu_mem_t mem
        rd_kafka_vu_header_t header
    ctypedef struct rd_kafka_vu_t:
        rd_kafka_vtype_t vtype
        rd_kafka_vu_u u

    ctypedef struct rd_kafka_message_t:
        rd_kafka_resp_err_t err
        rd_kafka_topic_t* rkt
        int32_t partition
        void* payload
        size_t len
        void* key
        size_t key_len
        int64_t offset
        void* _private

    int rd_kafka_version()  # the library's, as RD_KAFKA_VERSION
    rd_kafka_conf_t* rd_kafka_conf_new()
    void rd_kafka_conf_destroy(rd_kafka_conf_t* conf)
    rd_kafka_conf_res_t rd_kafka_conf_set(rd_kafka_conf_t* conf, const char* name,
                                          const char* value, char* errstr, size_t errstr_size)
    void rd_kafka_conf_set_opaque(rd_kafka_conf_t* conf, void* opaque)
    void rd_kafka_conf_set_dr_msg_cb(
        rd_kafka_conf_t* conf,
        void (*dr_msg_cb)(rd_kafka_t*, const rd_kafka_message_t*, void*) noexcept nogil)
    void rd_kafka_conf_set_error_cb(
        rd_kafka_conf_t* conf,
        void (*error_cb)(rd_kafka_t*, int, const char*, void*) noexcept nogil)
    void rd_kafka_conf_set_stats_cb(
        rd_kafka_conf_t* conf,
        int (*stats_cb)(rd_kafka_t*, char*, size_t, void*) noexcept nogil)
    void rd_kafka_conf_set_log_cb(
        rd_kafka_conf_t* conf,
        void (*log_cb)(const rd_kafka_t*, int, const char*, const char*) noexcept nogil)

    rd_kafka_t* rd_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t* conf, char* errstr,
                             size_t errstr_size)
    void rd_kafka_destroy(rd_kafka_t* rk)
    const char* rd_kafka_name(const rd_kafka_t* rk)
    void* rd_kafka_opaque(const rd_kafka_t* rk)
    rd_kafka_resp_err_t rd_kafka_set_log_queue(rd_kafka_t* rk, rd_kafka_queue_t* rkqu)
    int rd_kafka_poll(rd_kafka_t* rk, int timeout_ms)
    rd_kafka_resp_err_t rd_kafka_flush(rd_kafka_t* rk, int timeout_ms)
    rd_kafka_resp_err_t rd_kafka_purge(rd_kafka_t* rk, int purge_flags)
    int rd_kafka_outq_len(rd_kafka_t* rk)
    rd_kafka_resp_err_t rd_kafka_fatal_error(rd_kafka_t* rk, char* errstr, size_t errstr_size)

    rd_kafka_error_t* rd_kafka_produceva(rd_kafka_t* rk, const rd_kafka_vu_t* vus, size_t cnt)
    rd_kafka_resp_err_t rd_kafka_error_code(const rd_kafka_error_t* error)
    void rd_kafka_error_destroy(rd_kafka_error_t* error)

    const char* rd_kafka_topic_name(const rd_kafka_topic_t* rkt)
    int64_t rd_kafka_message_latency(const rd_kafka_message_t* rkmessage)
