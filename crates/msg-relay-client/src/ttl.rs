//! TTLs on the wire.

/// Converts a TTL to the wire's whole milliseconds: rounded up, at least 1, saturating at
/// `u32::MAX` (which any relay rejects as too long).
pub fn ttl_to_wire_ms(ttl: std::time::Duration) -> u32 {
    let ms = ttl.as_nanos().div_ceil(1_000_000).max(1);
    u32::try_from(ms).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    #[test]
    fn ttl_rounds_up_and_saturates() {
        assert_eq!(super::ttl_to_wire_ms(Duration::ZERO), 1);
        assert_eq!(super::ttl_to_wire_ms(Duration::from_micros(1500)), 2);
        assert_eq!(super::ttl_to_wire_ms(Duration::from_secs(60)), 60_000);
        assert_eq!(super::ttl_to_wire_ms(Duration::from_secs(u64::MAX)), u32::MAX);
    }
}
