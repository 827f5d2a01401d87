# Histogram buckets counted in C: the handler observes two latencies for every batch it hands
# over, where numpy's searchsorted + bincount + sum cost ~10 µs a batch and delay the next
# kind's hand-over.
from libc.stdint cimport int64_t


def observe(int64_t[::1] counts not None, const int64_t[::1] bounds not None,
            const int64_t[:] values not None, now=None):
    """Counts each value into `counts` by `bounds` (bucket i holds bounds[i-1] < v <=
    bounds[i], Prometheus `le`; the last bucket is above every bound) and returns their sum.
    With `now`, the values counted are now - values (the time elapsed since each). A negative
    value (clocks apart, or stepped back) counts as 0, so that a Prometheus histogram's _sum
    never falls (it would read as a counter reset)."""
    if counts.shape[0] != bounds.shape[0] + 1:
        raise ValueError("counts must have one bucket more than bounds")
    cdef bint since = now is not None
    cdef int64_t base = now if since else 0
    cdef int64_t value, total = 0
    cdef Py_ssize_t i, lo, hi, mid
    with nogil:
        for i in range(values.shape[0]):
            value = base - values[i] if since else values[i]
            if value < 0:
                value = 0
            total += value
            lo, hi = 0, bounds.shape[0]
            while lo < hi:
                mid = (lo + hi) >> 1
                if bounds[mid] < value:
                    lo = mid + 1
                else:
                    hi = mid
            counts[lo] += 1
    return total
