# Binance frames -> records. The C++ core appends rows straight into numpy memory owned by
# RecordBuffers (which hands batches over); this class feeds it frames and reports bad ones.
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from libcpp.string_view cimport string_view

from collections import deque
from hashlib import blake2b

import numpy as np

from feedhandler.contract.kinds import KINDS, Role
from feedhandler.records import SCHEMAS

cimport feedhandler._ext.core as core

KIND_COUNT = <int>core.KIND_COUNT
SIMD_KERNEL = core.simd_kernel().decode()
KIND_NAMES = tuple(core.kind_desc(<core.Kind>k).name.decode() for k in range(KIND_COUNT))
BOTH_LEGS = <int>core.BOTH_LEGS
# A/B: how long records past a hole wait for the other leg to fill it (the legs' lead is
# milliseconds); then the hole is real. Bounds a stalled peer: the stream is delayed, not lost.
# Records a primary owes wait for it with no time limit: the supervisor ends the wait (the
# primary in step, closed or stuck). Either way at most HOLD_BYTES of frames wait.
HOLD_NS = 1_000_000_000
HOLD_BYTES = 64 << 20
# Two connections (a rollover's, or A/B legs) deliver the exchange's bad frames twice too: a
# frame rejected for the reason, and with the bytes, of one the other connection delivered
# within COPY_WINDOW_NS is that frame's copy, counted in `rejected_copies`, not rejected
# (logged, dead-lettered) a second time. The window is far past the legs' lead (milliseconds);
# digests of the last COPY_DIGESTS rejections at most.
COPY_WINDOW_NS = 10_000_000_000
COPY_DIGESTS = 4096
assert core.LEAD_BUCKETS == 12, "core.pxd: OverlapCounts.lead_buckets size"
LEAD_BOUNDS_NS = tuple(core.LEAD_BOUNDS_NS[i] for i in range(core.LEAD_BUCKETS - 1))
ERROR_NAMES = tuple(core.error_name(<core.Error>e).decode() for e in range(1, <int>core.ERR_COUNT))
_KIND_INDEX = {name: k for k, name in enumerate(KIND_NAMES)}
_DERIVED = tuple(_KIND_INDEX[k.name] for k in KINDS if k.role is Role.DERIVED)

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


def _schema_dtype(layout):
    """The schema's own dtype object, once the compiled layout is found equal to it: batches
    then carry the very object sinks and consumers hold, and an identity test replaces a
    structured-dtype comparison (microseconds) per batch."""
    schema = SCHEMAS[layout["kind"]]
    if _dtype(layout) != schema.dtype:
        raise ImportError(f"the compiled {layout['kind']} layout differs from "
                          "feedhandler.records: rebuild the extension")
    return schema.dtype


DTYPES = tuple(_schema_dtype(layout) for layout in layouts())


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


cdef inline tuple _stream_key(core.Kind kind, string_view symbol):
    """A stream of held frames as Decoder._held keys it: (kind, symbol), the decoder's way."""
    return (<int>kind, symbol.data()[:symbol.size()])


cdef class Decoder:
    """Decodes Binance Spot frames into per-kind record batches.

    on_batch(kind, records) receives each finished batch; the array is the caller's to keep
    (its memory is written again only once nothing references it).
    on_error(reason, field, stream, frame) receives every rejected frame (a copy).
    on_control(frame, leg) receives exchange control messages (subscribe replies, errors,
    serverShutdown) with the leg they came on, which are also recorded in the "control" table.

    batch_rows and linger_ms apply to every kind, or per kind as {kind: value}. A batch is
    handed over when it holds batch_rows rows; with burst=True as soon as the running event
    loop has decoded the current socket read burst (linger_ms then only caps a batch's age
    within a long burst; 0 or None: no cap); without it (offline use) when a frame, or
    flush_expired, finds its first row linger_ms old (0: each frame at once; None: never).
    after_burst() runs once a burst end has handed over every kind's batch. See RecordBuffers
    (feedhandler._ext.buffers).

    capture_frames=True keeps the frames each batch was decoded from (for archival): on_batch
    then gets a third argument (payload: bytes, offsets, rows), int64 arrays of F+1 entries:
    frame i is payload[offsets[i]:offsets[i+1]] and produced records[rows[i]:rows[i+1]].
    """

    def __cinit__(self):
        self._core = new core.Decoder()
        self._held = {}

    def __dealloc__(self):
        del self._core

    def __init__(self, on_batch, on_error=None, on_control=None, *, batch_rows=4096,
                 linger_ms=5.0, max_frame=1 << 20, stream=None, time_unit="ms",
                 capture_frames=False, burst=False, after_burst=None):
        self._on_error = on_error
        self._on_control = on_control
        self._core.set_max_frame(max_frame)
        if time_unit not in ("ms", "us"):
            raise ValueError(f"time_unit must be 'ms' or 'us', not {time_unit!r}")
        self._core.set_time_unit_us(time_unit == "us")
        if stream is not None:
            self.set_stream(stream)
        rows = _per_kind("batch_rows", batch_rows, 4096)
        for k in _DERIVED:  # never decoded (the handler makes them): no table worth memory
            rows[k] = 1
        linger = _per_kind("linger_ms", linger_ms, 5.0)
        # no cap: never (offline), or the burst end alone (burst mode, where 0 means no cap)
        linger_ns = [(0 if burst else INT64_MAX) if ms is None else <int64_t>(ms * 1e6)
                     for ms in linger]
        self.buffers = RecordBuffers(DTYPES, KIND_NAMES, on_batch, rows, linger_ns,
                                     burst=burst, capture_frames=capture_frames,
                                     after_burst=after_burst)
        self.buffers.bind(self._core, self)
        for e in range(<int>core.ERR_COUNT):
            self._error_counts[e] = 0
        self._rejected = {}
        self._rejections = deque()

    def set_stream(self, str stream):
        """Name the stream of a raw /ws/<stream> connection (partial depth has no symbol)."""
        cdef bytes name = stream.encode()
        if not self._core.set_stream_hint(string_view(name, len(name))):
            raise ValueError(f"not a stream this decoder understands: {stream!r}")

    def reset_sequences(self):
        """Forget per-symbol sequence state, e.g. when a new connection starts (frames held
        for the other leg are decoded first)."""
        self._release(True)
        self._core.reset_sequences()

    def set_overlap(self, primary):
        """Two connections ("legs" 0 and 1) feed this decoder from now on, or one again (None).
        While they overlap, a record at or before the last one emitted for its (kind, symbol)
        is dropped and counted in `duplicates`, not reported as a gap. `primary` 0 or 1 (the
        leg being replaced, or the one a redundant leg joins): a jump past the last emitted
        from the other leg is owed by the primary (counted as ahead) until the primary's
        connection passes it: held, and emitted in step once the primary's ids reach it (see
        leg_lost for a primary that stops). BOTH_LEGS (A/B redundancy): the first arrival
        wins, from either leg; a record past a hole the other leg may still fill is held and
        decoded once it did. Held frames wait HOLD_NS at most; they are decoded before the
        overlap changes, and those the primary still owes are then dropped (it delivers
        them). A rejected frame both deliver is rejected once (see COPY_WINDOW_NS)."""
        self._release(True)
        if primary is None:
            self._rejected.clear()
            self._rejections.clear()
        self._core.set_overlap(-1 if primary is None else
                               core.BOTH_LEGS if primary == core.BOTH_LEGS else primary & 1)

    @property
    def overlap(self):
        """The last set_overlap's `primary` (BOTH_LEGS, 0 or 1), or None."""
        cdef int primary = self._core.overlap()
        return None if primary < 0 else primary

    def leg_lost(self, int leg):
        """`leg` delivers no more (its connection ended, or is stuck). If it was the primary
        (then True), the other leg is from now on, and the records held for `leg` to deliver
        the ids before them are emitted now, past a `missing` gap of exactly the ids neither
        leg delivered."""
        if self._core.overlap() != (leg & 1):
            return False
        self._core.set_overlap((leg & 1) ^ 1)
        self._release(True)
        return True

    def leg_connected(self, int leg):
        """A new connection of `leg` (A/B redundancy): under BOTH_LEGS its jumps past the last
        emitted id of a stream are owed by the other leg until its records meet that stream's
        ids (when the other leg's connection has met them)."""
        self._core.leg_connected(leg)

    def leg_counts(self, int leg):
        """(won, lead_count, lead_sum_ns, lead_buckets, behind) of `leg` while two legs
        overlap, over the decoder's life: sequenced records it emitted first; for the other
        leg's copies of them, the lead in buckets by LEAD_BOUNDS_NS (plus one over the last
        bound, not cumulative); `behind`: copies older than the last emitted (both legs)."""
        cdef const core.OverlapCounts* counts = &self._core.overlap_counts()
        leg &= 1
        return (counts.won[leg], counts.lead_count[leg], counts.lead_sum_ns[leg],
                tuple(counts.lead_buckets[leg][b] for b in range(core.LEAD_BUCKETS)),
                counts.behind)

    @property
    def duplicates(self):
        """Records dropped as already emitted by the other connection, over all overlaps."""
        return self._core.overlap_counts().duplicates

    def overlap_counts(self, int leg):
        """(in_step, ahead) of `leg` in the current overlap: its sequenced records at or next to
        the last emitted (delivered or duplicate), and those dropped past a hole."""
        cdef const core.OverlapCounts* counts = &self._core.overlap_counts()
        return counts.in_step[leg & 1], counts.ahead[leg & 1]

    def decode(self, frame, ts_recv=None, bint is_text=True, int leg=0, bytes followed_by=b""):
        """Decode one frame (any bytes-like). For offline use; the listener calls feed().
        `followed_by`: bytes after the frame in the same buffer, as picows's next frames are (with
        64 or more the frame is read in place, as the listener reads it; otherwise a copy)."""
        cdef const unsigned char[::1] view = frame
        cdef int64_t ts = now_ns() if ts_recv is None else ts_recv
        cdef Py_ssize_t size = view.shape[0]
        if followed_by:
            joined = bytes(view) + followed_by
            self.feed(PyBytes_AS_STRING(joined), size, len(followed_by), ts, is_text, leg)
            return
        cdef const char* ptr = <const char*>&view[0] if size else <const char*>""
        self.feed(ptr, size, 0, ts, is_text, leg)

    def decode_many(self, list frames, ts_recv=None, bint is_text=True, int leg=0):
        """Decode a list of frames with one Python call: a C loop over feed(), as the listener
        runs it. `ts_recv` stamps every frame (default: the wall clock at each frame)."""
        cdef bint clock = ts_recv is None
        cdef int64_t ts = 0 if clock else ts_recv
        for frame in frames:  # a callback may mutate the list: iterate, do not index
            if clock:
                ts = now_ns()
            if PyBytes_Check(frame):
                self.feed(PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame), 0, ts, is_text,
                          leg)
            else:
                self.decode(frame, ts, is_text, leg)

    def flush(self):
        """Hand over every open batch (frames held for the other leg decoded first)."""
        self._release(True)
        self.buffers.flush()

    def flush_expired(self, int64_t now=0):
        """Hand over batches whose first row is older than the linger time (and decode frames
        held for A/B's other leg past HOLD_NS, when no frame came since to do it)."""
        now = now or now_ns()
        if self._held and self._held_out(now):
            self._release(True)
        self.buffers.flush_expired(now)

    @property
    def error_counts(self):
        return {ERROR_NAMES[e - 1]: self._error_counts[e]
                for e in range(1, <int>core.ERR_COUNT) if self._error_counts[e]}

    @property
    def row_counts(self):
        return self.buffers.row_counts

    @property
    def pending_rows(self):
        return self.buffers.pending_rows

    @property
    def held(self):
        """Frames held for the other leg (A/B redundancy, or a primary that owes ids)."""
        return self._held_frames

    cdef int feed(self, const char* data, size_t size, size_t readable_after, int64_t ts_recv,
                  bint is_text, int leg) except -1:
        self.frames += 1
        self._feed_one(data, size, readable_after, ts_recv, is_text, leg)
        if self._held:  # (while two legs overlap, after a hole on one)
            if self._held_out(ts_recv) or self._held_bytes > HOLD_BYTES:
                self._release(True)
            elif self._core.release_due():
                self._release(False)
        return 0

    cdef bint _held_out(self, int64_t now):
        """The oldest frame held for A/B's other leg has waited HOLD_NS (or the clock stepped
        back past it). What waits for a primary waits for the supervisor (set_overlap,
        leg_lost)."""
        return self._core.overlap() == core.BOTH_LEGS and (
            now - self._held_since > HOLD_NS or now < self._held_since)

    cdef int _release(self, bint force) except -1:
        """Decode again the held frames of the streams due (`force`: of all streams, a hole
        left being real), each stream's in id order (the legs' frames interleave): those whose
        hole was filled are emitted, the rest held again. Streams with nothing due are not
        touched, so a release costs what the streams that advanced hold."""
        cdef list frames
        cdef Py_ssize_t i
        if self._releasing or not self._held:
            return 0
        self._releasing = True
        self._core.set_release(core.RELEASE_FORCE if force else core.RELEASE_RETRY)
        try:
            streams = list(self._held) if force else self._take_due()
            while streams:  # (a forced pass holds nothing again: one pass)
                for stream in streams:
                    frames = self._held.pop(stream, None)
                    if frames is None:
                        continue
                    frames.sort()  # (first id, arrival: unique)
                    for i in range(len(frames)):
                        _, _, frame, ts, text, leg = frames[i]
                        self._held_frames -= 1  # (the rest stay counted while they wait)
                        self._held_bytes -= PyBytes_GET_SIZE(frame)
                        self.redecoded += 1
                        try:
                            owed = self._feed_one(PyBytes_AS_STRING(frame),
                                                  PyBytes_GET_SIZE(frame), 0, ts, text, leg)
                        except BaseException:  # (a batch callback raised): the rest stay held
                            self._held.setdefault(stream, []).extend(frames[i + 1:])
                            raise
                        if owed:  # still the primary's: so are the later ids, left as they are
                            self._held[stream].extend(frames[i + 1:])
                            break
                streams = [] if force else self._take_due()
        finally:
            self._core.set_release(core.RELEASE_NONE)
            self._releasing = False
            if force:
                self._core.clear_due()
        if self._held:
            self._held_since = min(<int64_t>h[3] for frames in self._held.values()
                                   for h in frames)
        return 0

    cdef bint _copy_of_rejected(self, int error, bytes frame, int leg, int64_t now) except -1:
        """While two connections overlap: whether `frame`, rejected for `error`, is the copy of
        one the other connection delivered within COPY_WINDOW_NS that no copy matched yet (the
        oldest is matched). Remembered: the last COPY_DIGESTS rejections in arrival order,
        (number, arrival, key), and per key [leg, the numbers of its unmatched ones]."""
        cdef object arrivals = self._rejections
        cdef dict rejected = self._rejected
        if arrivals and now < <int64_t>arrivals[len(arrivals) - 1][1]:  # a clock stepped back:
            arrivals.clear()  # none is known to be within the window any more
            rejected.clear()
        while arrivals and (len(arrivals) >= COPY_DIGESTS
                            or now - <int64_t>arrivals[0][1] > COPY_WINDOW_NS):
            number, _, old_key = arrivals.popleft()
            entry = rejected.get(old_key)
            if entry is not None and entry[1][0] == number:  # (else matched already)
                entry[1].popleft()
                if not entry[1]:
                    del rejected[old_key]
        key = (error, blake2b(frame, digest_size=16).digest())
        entry = rejected.get(key)
        if entry is not None and entry[0] != leg:  # (what is left is within the window)
            entry[1].popleft()
            if not entry[1]:
                del rejected[key]
            return True
        self._rejection_count += 1
        if entry is None:
            rejected[key] = [leg, deque([self._rejection_count])]
        else:  # (the same bad frame again on one connection: not a copy)
            entry[1].append(self._rejection_count)
        arrivals.append((self._rejection_count, now, key))
        return False

    cdef list _take_due(self):
        """The streams whose held frames are due, as _held's keys; the decoder's list cleared."""
        cdef size_t i
        cdef list streams = [_stream_key(self._core.due_kind(i), self._core.due_symbol(i))
                             for i in range(self._core.due_streams())]
        self._core.clear_due()
        return streams

    cdef int _feed_one(self, const char* data, size_t size, size_t readable_after,
                       int64_t ts_recv, bint is_text, int leg) except -1:
        cdef core.DecodeResult r
        cdef string_view stream
        while True:
            r = self._core.decode(data, size, readable_after, ts_recv, is_text, leg)
            if r.status != core.STATUS_FULL:
                break
            self.buffers.make_room(r.kind)

        if r.status == core.STATUS_HELD:  # returns 1 when the primary owes the ids before it
            if not self._held:
                self._held_since = ts_recv
            # (first id, arrival: the release order), the frame, how it came
            held = (self._core.held_first(), self._held_count,
                    PyBytes_FromStringAndSize(data, size), ts_recv, is_text, leg)
            self._held.setdefault(_stream_key(r.kind, self._core.held_symbol()), []).append(held)
            self._held_count += 1
            self._held_frames += 1
            self._held_bytes += size
            return self._core.held_owed()
        if r.status == core.STATUS_ERROR:
            frame = PyBytes_FromStringAndSize(data, size)
            if (self._core.overlap() >= 0
                    and self._copy_of_rejected(<int>r.error, frame, leg & 1, ts_recv)):
                self.rejected_copies += 1
                return 0
            self._error_counts[<int>r.error] += 1
            if self._on_error is not None:
                stream = self._core.last_stream()
                self._on_error(core.error_name(r.error).decode(), r.field.decode(),
                               stream.data()[:stream.size()].decode("utf-8", "replace"), frame)
            return 0
        if self._core.table(core.KIND_GAP).size:
            self.buffers.rows_added(core.KIND_GAP, ts_recv)
        if r.kind == core.KIND_NONE:
            return 0
        if r.kind == core.KIND_CONTROL:
            if self._on_control is not None:
                self._on_control(PyBytes_FromStringAndSize(data, size), leg & 1)
            self.buffers.flush_kind(core.KIND_CONTROL)
            return 0
        self.buffers.capture_frame(r.kind, data, size)
        return self.buffers.rows_added(r.kind, ts_recv)
