# Declarations of the C++ core (ext/cpp). Extern only: cimporting this adds no runtime import.
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libcpp cimport bool as cbool
from libcpp.string_view cimport string_view
from libcpp.vector cimport vector


cdef extern from "records.h" namespace "fh" nogil:
    const size_t kSymbolWidth

    # Generated from feedhandler/contract/kinds.py (records_gen.h); only the members Cython
    # code names are declared here, so adding a kind does not touch this file.
    enum Kind:
        KIND_CONTROL
        KIND_GAP
        KIND_COUNT
        KIND_NONE

    enum FieldType:
        FT_I64
        FT_I16
        FT_U8
        FT_I128
        FT_BYTES
        FT_FIXED8

    struct FieldDesc:
        const char* name
        uint32_t offset
        FieldType type
        uint32_t count

    struct KindDesc:
        const char* name
        const char* schema
        uint16_t version
        uint32_t itemsize
        const FieldDesc* fields
        uint32_t field_count

    const KindDesc& kind_desc(Kind kind)


cdef extern from "decoder.h" namespace "fh" nogil:
    enum Error:
        ERR_NONE
        ERR_COUNT

    const char* error_name(Error error)

    struct StreamInfo:
        Kind kind
        cbool is_array
        uint8_t levels
        int16_t utc_offset_min
        char symbol[32]  # kSymbolWidth (Cython needs the literal)

    cbool classify_stream(string_view name, StreamInfo& out)

    enum Status:
        STATUS_OK
        STATUS_ERROR
        STATUS_FULL
        STATUS_HELD

    struct Table:
        char* data
        size_t capacity
        size_t size

    struct DecodeResult:
        Status status
        Kind kind
        Error error
        const char* field

    const int BOTH_LEGS "fh::Decoder::kBothLegs"
    const int RELEASE_NONE "fh::Decoder::kReleaseNone"
    const int RELEASE_RETRY "fh::Decoder::kReleaseRetry"
    const int RELEASE_FORCE "fh::Decoder::kReleaseForce"
    const int LEAD_BUCKETS "fh::Decoder::kLeadBuckets"
    const int64_t* LEAD_BOUNDS_NS "fh::Decoder::kLeadBoundsNs"

    cppclass OverlapCounts "fh::Decoder::OverlapCounts":
        uint64_t duplicates
        uint64_t in_step[2]
        uint64_t ahead[2]
        uint64_t won[2]
        uint64_t lead_count[2]
        int64_t lead_sum_ns[2]
        uint64_t lead_buckets[2][12]  # kLeadBuckets (asserted in decoder.pyx)
        uint64_t behind

    cppclass Decoder:
        Decoder() except +
        void attach(Kind kind, char* data, size_t capacity)
        const Table& table(Kind kind)
        cbool set_stream_hint(string_view stream)
        void set_time_unit_us(cbool microseconds)
        void set_max_frame(size_t size)
        void reset_sequences()
        void set_overlap(int primary)
        int overlap()
        void leg_connected(int leg)
        void set_release(int mode)
        bint release_due()
        size_t due_streams()
        Kind due_kind(size_t i)
        string_view due_symbol(size_t i)
        void clear_due()
        int64_t held_first()
        string_view held_symbol()
        cbool held_owed()
        const OverlapCounts& overlap_counts()
        DecodeResult decode(const char* data, size_t size, size_t readable_after,
                            int64_t ts_recv, cbool is_text, uint8_t leg)
        string_view last_stream()

    const char* simd_kernel()
    Error parse_decimal(const char* data, size_t size, cbool wide, int64_t* lo, int64_t* hi)


cdef extern from "grouping.h" namespace "fh" nogil:
    size_t group_rows(const char* keys, size_t n, size_t stride, size_t width, int64_t* order,
                      int64_t* bounds) except +  # (std::bad_alloc -> MemoryError)
    cdef struct HeldMessage:
        int32_t key
        char* value
        int64_t rows
        int64_t epoch
    cdef cppclass OpenMessages:
        void append(const char* rows, size_t n, size_t width, size_t copied,
                    size_t key_offset, size_t key_width, const uint8_t* keep, size_t most,
                    int64_t epoch) except +
        void take(cbool all, size_t most, vector[HeldMessage]& out) except +
        const char* key(int32_t k)
        int64_t held()
