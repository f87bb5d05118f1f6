//! The wall clock, in the protocol's unit (nanoseconds since the Unix epoch).

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
