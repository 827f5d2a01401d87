# Order books from depth records (ext/cpp/book.h): declarations, and the BookSet class others
# can cimport.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libcpp.string cimport string
from libcpp.string_view cimport string_view
from libcpp.vector cimport vector


cdef extern from "records.h" namespace "fh" nogil:
    struct DepthRecord:
        pass

    struct BookTickerRecord:
        pass

    struct BookRecord:
        pass


cdef extern from "book.h" namespace "fh" nogil:
    const uint8_t DEPTH_SNAPSHOT
    const uint8_t DEPTH_CUT

    struct Int128LE:
        uint64_t lo
        int64_t hi

    struct Level:
        int64_t price
        Int128LE qty

    struct Top:
        int64_t update_id
        int64_t bid_price
        int64_t ask_price
        Int128LE bid_qty
        Int128LE ask_qty

    struct Alert:
        string symbol
        uint64_t crossed
        uint64_t mismatches

    struct Want:
        string symbol
        int64_t first_update_id
        uint8_t kind

    cppclass Book:
        size_t depth(uint8_t side)
        size_t copy_best(uint8_t side, size_t n, Level* out)

    cppclass SymbolBook:
        Book book
        int64_t update_id
        uint8_t state
        int64_t expected
        int64_t received
        int64_t changed_ns
        uint64_t gaps
        uint64_t snapshots
        uint64_t events
        uint64_t shorts
        uint64_t refreshes
        bint recording
        uint64_t crossed
        vector[DepthRecord] buffer
        int64_t ts_event
        int64_t crossed_update_id
        int64_t crossed_bid
        int64_t crossed_ask
        vector[Top] pending
        uint64_t tickers_checked
        uint64_t ticker_mismatches
        uint64_t tickers_uncovered
        Top mismatch_ticker
        Top mismatch_book

    cppclass BookSet:
        BookSet(uint32_t max_levels, size_t max_buffer, uint32_t min_levels,
                uint32_t refresh_levels, bint wants)
        void apply(const DepthRecord* rows, size_t count)
        void check_tickers(const BookTickerRecord* rows, size_t count)
        size_t take_tops(BookRecord* out, uint32_t depth, int64_t now_ns)
        vector[Alert] take_alerts(int64_t now_ns, int64_t min_interval_ns)
        vector[Want] take_wants()
        size_t size()
        const SymbolBook* find(string_view symbol)
        vector[string] symbols()


cdef class Books:
    cdef BookSet* _core
    cdef readonly uint32_t max_levels, min_levels, refresh_levels

    cdef const SymbolBook* _find(self, str symbol) except NULL
