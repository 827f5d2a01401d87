# Binance frames -> batches of numpy records. The C++ core appends rows straight into numpy
# memory; this class hands full (or lingering) batches to Python and reports bad frames.
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from libc.string cimport memcpy
from libcpp.string_view cimport string_view

import numpy as np

cimport feedhandler._ext.core as core

KIND_COUNT = <int>core.KIND_COUNT
SIMD_KERNEL = core.simd_kernel().decode()
KIND_NAMES = tuple(core.kind_desc(<core.Kind>k).name.decode() for k in range(KIND_COUNT))
ERROR_NAMES = tuple(core.error_name(<core.Error>e).decode() for e in range(1, <int>core.ERR_COUNT))
_KIND_INDEX = {name: k for k, name in enumerate(KIND_NAMES)}

_FIELD_TYPES = {
    core.FT_I64: "<i8",
    core.FT_FIXED8: "<i8",
    core.FT_I16: "<i2",
    core.FT_U8: "u1",
    core.FT_I128: [("lo", "<u8"), ("hi", "<i8")],
}


def _per_kind(name, value, default):
    """A setting given once for all kinds, or as {kind: value} (missing kinds: default)."""
    if not isinstance(value, dict):
        return [value] * KIND_COUNT
    unknown = set(value) - set(KIND_NAMES)
    if unknown:
        raise ValueError(f"unknown kinds in {name}: {sorted(unknown)}")
    return [value.get(kind, default) for kind in KIND_NAMES]


def layouts():
    """Every table's layout as the C++ core defines it: the single source of the dtypes."""
    result = []
    cdef const core.KindDesc* desc
    cdef const core.FieldDesc* f
    for k in range(KIND_COUNT):
        desc = &core.kind_desc(<core.Kind>k)
        fields = []
        for i in range(desc.field_count):
            f = &desc.fields[i]
            fields.append((f.name.decode(), f.offset, <int>f.type, f.count))
        result.append({
            "kind": desc.name.decode(),
            "schema": desc.schema.decode(),
            "version": desc.version,
            "itemsize": desc.itemsize,
            "fields": fields,
        })
    return result


def _dtype(layout):
    names, formats, offsets = [], [], []
    for name, offset, ftype, count in layout["fields"]:
        if ftype == core.FT_BYTES:
            fmt = f"S{count}"
        elif count > 1:
            fmt = (_FIELD_TYPES[ftype], (count,))
        else:
            fmt = _FIELD_TYPES[ftype]
        names.append(name)
        formats.append(fmt)
        offsets.append(offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": layout["itemsize"]})


DTYPES = tuple(_dtype(layout) for layout in layouts())


def classify_stream(str name):
    """What the decoder makes of a stream name: (kind, SYMBOL, levels, utc_offset_min,
    is_array), or None when it is not a stream it decodes. The grammar is generated from
    feedhandler.contract.kinds, as is feedhandler.contract.streams (which must agree)."""
    cdef bytes raw = name.encode()
    cdef core.StreamInfo info
    if not core.classify_stream(string_view(raw, len(raw)), info):
        return None
    return (KIND_NAMES[<int>info.kind], info.symbol[:core.kSymbolWidth].rstrip(b"\0").decode(),
            info.levels, info.utc_offset_min, info.is_array)


def parse_decimal(bytes text, bint wide=False):
    """Decimal string -> integer count of 1e-8 units, by the decoder's own parser.

    Raises ValueError naming the reason (bad_decimal, too_many_decimals, overflow)."""
    cdef int64_t lo = 0, hi = 0
    cdef core.Error err = core.parse_decimal(text, len(text), wide, &lo, &hi)
    if err != core.ERR_NONE:
        raise ValueError(core.error_name(err).decode())
    if wide:
        return (int(hi) << 64) | int(<uint64_t>lo)
    return lo


cdef class Decoder:
    """Decodes Binance Spot frames into per-kind record batches.

    on_batch(kind, records) receives each finished batch; the array is the caller's to keep.
    on_error(reason, field, stream, frame) receives every rejected frame (a copy).
    on_control(frame) receives exchange control messages (subscribe replies, errors,
    serverShutdown), which are also recorded in the "control" table.

    batch_rows and linger_ms apply to every kind, or per kind as {kind: value}. A batch is
    handed over when it holds batch_rows rows, or when a frame (or flush_expired) finds its
    first row older than linger_ms (None: never; offline use).

    capture_frames=True keeps the frames each batch was decoded from (for archival): on_batch
    then gets a third argument (payload: bytes, offsets, rows), int64 arrays of F+1 entries:
    frame i is payload[offsets[i]:offsets[i+1]] and produced records[rows[i]:rows[i+1]].
    """

    def __cinit__(self):
        self._core = new core.Decoder()

    def __dealloc__(self):
        del self._core

    def __init__(self, on_batch, on_error=None, on_control=None, *, batch_rows=4096,
                 linger_ms=5.0, max_frame=1 << 20, stream=None, time_unit="ms",
                 capture_frames=False):
        self._on_batch = on_batch
        self._on_error = on_error
        self._on_control = on_control
        self._core.set_max_frame(max_frame)
        if time_unit not in ("ms", "us"):
            raise ValueError(f"time_unit must be 'ms' or 'us', not {time_unit!r}")
        self._core.set_time_unit_us(time_unit == "us")
        if stream is not None:
            self.set_stream(stream)
        rows = _per_kind("batch_rows", batch_rows, 4096)
        linger = _per_kind("linger_ms", linger_ms, 5.0)
        self._arrays = [None] * KIND_COUNT
        self._capture = capture_frames
        self._captured.resize(KIND_COUNT)
        self._frame_offsets.resize(KIND_COUNT)
        self._frame_rows.resize(KIND_COUNT)
        for k in range(KIND_COUNT):
            self._batch_rows[k] = max(1, int(rows[k]))
            # None: a batch leaves only when full or flushed (offline use)
            self._linger_ns[k] = INT64_MAX if linger[k] is None else <int64_t>(linger[k] * 1e6)
            self._batch_started[k] = 0
            self._rows[k] = 0
            self._attach(k, self._batch_rows[k])
        for e in range(<int>core.ERR_COUNT):
            self._error_counts[e] = 0

    def set_stream(self, str stream):
        """Name the stream of a raw /ws/<stream> connection (partial depth has no symbol)."""
        cdef bytes name = stream.encode()
        if not self._core.set_stream_hint(string_view(name, len(name))):
            raise ValueError(f"not a stream this decoder understands: {stream!r}")

    def reset_sequences(self):
        """Forget per-symbol sequence state, e.g. when a new connection starts."""
        self._core.reset_sequences()

    def decode(self, frame, ts_recv=None, bint is_text=True):
        """Decode one frame (any bytes-like). For offline use; the listener calls feed()."""
        cdef const unsigned char[::1] view = frame
        cdef int64_t ts = now_ns() if ts_recv is None else ts_recv
        cdef const char* ptr = <const char*>&view[0] if view.shape[0] else <const char*>""
        self.feed(ptr, view.shape[0], 0, ts, is_text)

    def decode_many(self, list frames, ts_recv=None, bint is_text=True):
        """Decode a list of frames with one Python call: a C loop over feed(), as the listener
        runs it. `ts_recv` stamps every frame (default: the wall clock at each frame)."""
        cdef bint clock = ts_recv is None
        cdef int64_t ts = 0 if clock else ts_recv
        for frame in frames:  # a callback may mutate the list: iterate, do not index
            if clock:
                ts = now_ns()
            if PyBytes_Check(frame):
                self.feed(PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame), 0, ts, is_text)
            else:
                self.decode(frame, ts, is_text)

    def flush(self):
        """Hand over every open batch."""
        for k in range(KIND_COUNT):
            self._flush_kind(k)

    def flush_expired(self, int64_t now=0):
        """Hand over batches whose first row is older than the linger time."""
        if now == 0:
            now = now_ns()
        for k in range(KIND_COUNT):
            if self._batch_started[k] and now - self._batch_started[k] >= self._linger_ns[k]:
                self._flush_kind(k)

    @property
    def error_counts(self):
        return {ERROR_NAMES[e - 1]: self._error_counts[e]
                for e in range(1, <int>core.ERR_COUNT) if self._error_counts[e]}

    @property
    def row_counts(self):
        return {KIND_NAMES[k]: self._rows[k] for k in range(KIND_COUNT) if self._rows[k]}

    @property
    def pending_rows(self):
        return sum(self._core.table(<core.Kind>k).size for k in range(KIND_COUNT))

    cdef int _attach(self, int kind, size_t capacity) except -1:
        array = np.empty(capacity, dtype=DTYPES[kind])
        self._arrays[kind] = array
        self._core.attach(<core.Kind>kind, <char*>(<size_t>array.ctypes.data), capacity)
        return 0

    cdef int _flush_kind(self, int kind) except -1:
        cdef size_t size = self._core.table(<core.Kind>kind).size
        if size == 0:
            return 0
        records = self._arrays[kind][:size]
        self._rows[kind] += size
        self._batch_started[kind] = 0
        self._attach(kind, self._batch_rows[kind])
        if not self._capture or self._frame_offsets[kind].empty():
            self._on_batch(KIND_NAMES[kind], records)
            return 0
        frames = (self._captured[kind],  # copied into a bytes object
                  np.array(self._frame_offsets[kind], dtype=np.int64),
                  np.array(self._frame_rows[kind], dtype=np.int64))
        self._captured[kind].clear()
        self._frame_offsets[kind].clear()
        self._frame_rows[kind].clear()
        self._on_batch(KIND_NAMES[kind], records, frames)
        return 0

    cdef int _capture_frame(self, int kind, const char* data, size_t size) except -1:
        if self._frame_offsets[kind].empty():
            self._frame_offsets[kind].push_back(0)
            self._frame_rows[kind].push_back(0)
        self._captured[kind].append(data, size)
        self._frame_offsets[kind].push_back(self._captured[kind].size())
        self._frame_rows[kind].push_back(self._core.table(<core.Kind>kind).size)
        return 0

    cdef int feed(self, const char* data, size_t size, size_t readable_after, int64_t ts_recv,
                  bint is_text) except -1:
        cdef core.DecodeResult r
        cdef const core.Table* table
        cdef string_view stream
        self.frames += 1
        while True:
            r = self._core.decode(data, size, readable_after, ts_recv, is_text)
            if r.status != core.STATUS_FULL:
                break
            table = &self._core.table(r.kind)
            if table.size:
                self._flush_kind(r.kind)
            else:
                # One frame holds more rows than a whole batch: grow this table.
                self._attach(r.kind, 2 * table.capacity)

        if r.status == core.STATUS_ERROR:
            self._error_counts[<int>r.error] += 1
            if self._on_error is not None:
                stream = self._core.last_stream()
                self._on_error(core.error_name(r.error).decode(), r.field.decode(),
                               stream.data()[:stream.size()].decode("utf-8", "replace"),
                               PyBytes_FromStringAndSize(data, size))
            return 0
        if self._core.table(core.KIND_GAP).size:
            self._rows_added(core.KIND_GAP, ts_recv)
        if r.kind == core.KIND_NONE:
            return 0
        if r.kind == core.KIND_CONTROL:
            if self._on_control is not None:
                self._on_control(PyBytes_FromStringAndSize(data, size))
            self._flush_kind(core.KIND_CONTROL)
            return 0
        if self._capture:
            self._capture_frame(r.kind, data, size)
        return self._rows_added(r.kind, ts_recv)

    cdef int _rows_added(self, int kind, int64_t ts_recv) except -1:
        if self._batch_started[kind] == 0:
            self._batch_started[kind] = ts_recv
        if (self._core.table(<core.Kind>kind).size >= self._batch_rows[kind]
                or ts_recv - self._batch_started[kind] >= self._linger_ns[kind]):
            self._flush_kind(kind)
        return 0
