//! Message ids: the client's unique id (`UNIQ_KEY`, Java's `MessageClientIDSetter`, PROTOCOL
//! §6.1) and the broker's offset message id (§6.2).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::hex;

const DAY_MS: i64 = 86_400_000;

/// Generates `UNIQ_KEY` values with the layout of Java's `MessageClientIDSetter`.
///
/// Bytes: the IP (4 or 16), the low 16 bits of the pid, a 4-byte "class loader hash" (any
/// stable per-process value; random by default), the milliseconds since the start of the
/// current month (4 bytes, truncated to 32 bits like Java's `(int)` cast), and the low 16
/// bits of a counter starting at 0. Written as uppercase hex: 32 characters for IPv4, 56 for
/// IPv6.
///
/// **Difference from Java:** the month start is computed in **UTC**, not in the local time
/// zone (no time-zone database in a pure crate). The id stays unique; only the
/// "nearly time" a tool would derive from it is shifted by the zone offset.
///
/// Thread-safe: [`next_id`](Self::next_id) takes `&self` (one atomic counter).
///
/// ```
/// use rmq_common::message_id::UniqIdGenerator;
/// use std::net::{IpAddr, Ipv4Addr};
/// let ids = UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)), 12345)
///     .with_class_loader_hash(0x1B6D_3586)
///     .with_counter_start(1);
/// // 2024-01-01T00:00:00Z plus 0x0A1B2C3D ms
/// let id = ids.next_id_at(1_704_067_200_000 + 0x0A1B_2C3D);
/// assert_eq!(id, "C0A8010A30391B6D35860A1B2C3D0001");
/// assert_eq!(ids.next_id().len(), 32);
/// ```
#[derive(Debug)]
pub struct UniqIdGenerator {
    ip: IpAddr,
    pid: u32,
    prefix: String,
    counter: AtomicU32,
    /// The month of the last id ([`Month`] packed), so that the month start is computed once a
    /// month, not per id (Java keeps `startTime`/`nextStartTime` the same way).
    month: AtomicU64,
}

/// A month as days since 1970-01-01 of its first day (low 32 bits) and its length in days (the
/// next 8), packed into one word so that it is read and replaced whole; 0 is no month.
#[derive(Clone, Copy)]
struct Month(u64);

impl Month {
    /// The month containing day `days` (computed).
    fn of_day(days: i64) -> Option<Self> {
        let first = days - (civil_day_of_month(days) - 1);
        let next = first + 31 - (civil_day_of_month(first + 31) - 1);
        let first = u32::try_from(first).ok()?;
        let len = u64::try_from(next - i64::from(first)).ok()?;
        Some(Self(u64::from(first) | len << 32))
    }

    /// The start of this month in epoch milliseconds, if it contains day `days`.
    fn start_if_contains(self, days: i64) -> Option<i64> {
        let first = i64::from(self.0 as u32);
        let len = (self.0 >> 32) as i64;
        (self.0 != 0 && days >= first && days < first + len).then_some(first * DAY_MS)
    }
}

impl UniqIdGenerator {
    /// A generator for this host's `ip` and process id, with a random class-loader hash.
    #[must_use]
    pub fn new(ip: IpAddr, pid: u32) -> Self {
        // A per-process random value (std seeds RandomState from the OS), like Java's
        // identity hash code of the class loader.
        let hash = RandomState::new().hash_one((ip, pid)) as u32;
        Self::build(ip, pid, hash, 0)
    }

    /// Replaces the 4-byte class-loader hash (for reproducible ids).
    #[must_use]
    pub fn with_class_loader_hash(self, hash: i32) -> Self {
        let counter = self.counter.load(Ordering::Relaxed);
        Self::build(self.ip, self.pid, hash as u32, counter)
    }

    /// Sets the next counter value (Java starts at 0; tests inject one).
    #[must_use]
    pub fn with_counter_start(self, start: u16) -> Self {
        self.counter.store(u32::from(start), Ordering::Relaxed);
        self
    }

    fn build(ip: IpAddr, pid: u32, hash: u32, counter: u32) -> Self {
        let mut raw = Vec::with_capacity(22);
        match ip {
            IpAddr::V4(v4) => raw.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => raw.extend_from_slice(&v6.octets()),
        }
        raw.extend_from_slice(&(pid as u16).to_be_bytes());
        raw.extend_from_slice(&hash.to_be_bytes());
        let mut prefix = String::with_capacity(raw.len() * 2 + 12);
        hex::encode_upper_into(&raw, &mut prefix);
        Self {
            ip,
            pid,
            prefix,
            counter: AtomicU32::new(counter),
            month: AtomicU64::new(0),
        }
    }

    /// The constant hex prefix (IP, pid, hash): 24 characters for IPv4, 48 for IPv6.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A new id for the current wall-clock time.
    #[must_use]
    pub fn next_id(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.next_id_at(now)
    }

    /// A new id for the given time (epoch milliseconds): the clock is injected.
    #[must_use]
    pub fn next_id_at(&self, now_ms: i64) -> String {
        let diff = now_ms.wrapping_sub(self.month_start(now_ms));
        let counter = self.counter.fetch_add(1, Ordering::Relaxed) as u16;
        let mut tail = [0u8; 6];
        tail[..4].copy_from_slice(&(diff as u32).to_be_bytes());
        tail[4..].copy_from_slice(&counter.to_be_bytes());
        let mut id = String::with_capacity(self.prefix.len() + 12);
        id.push_str(&self.prefix);
        hex::encode_upper_into(&tail, &mut id);
        id
    }
}

impl UniqIdGenerator {
    /// [`month_start_utc_ms`] of `now_ms`, from the month of the last id when it contains it.
    fn month_start(&self, now_ms: i64) -> i64 {
        let days = now_ms.div_euclid(DAY_MS);
        let cached = Month(self.month.load(Ordering::Relaxed));
        if let Some(start) = cached.start_if_contains(days) {
            return start;
        }
        match Month::of_day(days) {
            Some(month) => {
                self.month.store(month.0, Ordering::Relaxed);
                month
                    .start_if_contains(days)
                    .unwrap_or_else(|| month_start_utc_ms(now_ms))
            }
            // Before 1970 or past 2^32 days: computed each time.
            None => month_start_utc_ms(now_ms),
        }
    }
}

/// Epoch milliseconds of 00:00:00.000 UTC on the first day of the month containing `ms`.
///
/// ```
/// use rmq_common::message_id::month_start_utc_ms;
/// // 2024-02-29T12:00:00Z -> 2024-02-01T00:00:00Z
/// assert_eq!(month_start_utc_ms(1_709_208_000_000), 1_706_745_600_000);
/// ```
#[must_use]
pub fn month_start_utc_ms(ms: i64) -> i64 {
    let days = ms.div_euclid(DAY_MS);
    let day_of_month = civil_day_of_month(days);
    (days - (day_of_month - 1)) * DAY_MS
}

/// Day of month (1..=31) of the proleptic Gregorian date `days` after 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_day_of_month(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    doy - (153 * mp + 2) / 5 + 1
}

/// A message id could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageIdError {
    /// The id is neither 32 (IPv4) nor 56 (IPv6) hex characters long.
    #[error("an offset message id has 32 or 56 hex characters, not {len}")]
    BadLength {
        /// The length received.
        len: usize,
    },
    /// A character is not a hex digit.
    #[error("invalid hex character at index {index}")]
    BadHex {
        /// Index of the first bad character.
        index: usize,
    },
    /// The port does not fit 0..=65535.
    #[error("invalid port {port}")]
    BadPort {
        /// The decoded port.
        port: i32,
    },
}

/// The broker's offset message id: store host address and commit-log offset
/// (`MessageDecoder.createMessageId` / `decodeMessageId`).
///
/// ```
/// use rmq_common::message_id::OffsetMessageId;
/// let id = OffsetMessageId::decode("C0A8011400002A9F0000000000001234")?;
/// assert_eq!(id.addr.to_string(), "192.168.1.20:10911");
/// assert_eq!(id.commit_log_offset, 0x1234);
/// assert_eq!(id.encode(), "C0A8011400002A9F0000000000001234");
/// # Ok::<(), rmq_common::message_id::MessageIdError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffsetMessageId {
    /// The store host (`ip:port`).
    pub addr: SocketAddr,
    /// The commit-log physical offset.
    pub commit_log_offset: i64,
}

impl OffsetMessageId {
    /// An id for `addr` and `commit_log_offset`.
    #[must_use]
    pub const fn new(addr: SocketAddr, commit_log_offset: i64) -> Self {
        Self {
            addr,
            commit_log_offset,
        }
    }

    /// Uppercase hex: IP (4 or 16 bytes), port (i32), offset (i64).
    #[must_use]
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(28);
        match self.addr.ip() {
            IpAddr::V4(v4) => raw.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => raw.extend_from_slice(&v6.octets()),
        }
        raw.extend_from_slice(&i32::from(self.addr.port()).to_be_bytes());
        raw.extend_from_slice(&self.commit_log_offset.to_be_bytes());
        let mut out = String::with_capacity(raw.len() * 2);
        hex::encode_upper_into(&raw, &mut out);
        out
    }

    /// Decodes 32 hex characters (IPv4) or 56 (IPv6), in either case.
    ///
    /// # Errors
    /// [`MessageIdError`] for a wrong length, a non-hex character or an impossible port.
    pub fn decode(id: &str) -> Result<Self, MessageIdError> {
        let ip_len = match id.len() {
            32 => 4,
            56 => 16,
            len => return Err(MessageIdError::BadLength { len }),
        };
        let raw = hex::decode(id).map_err(|index| MessageIdError::BadHex { index })?;
        let ip = if ip_len == 4 {
            IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
        } else {
            let mut o = [0u8; 16];
            o.copy_from_slice(&raw[..16]);
            IpAddr::V6(Ipv6Addr::from(o))
        };
        let mut port = [0u8; 4];
        port.copy_from_slice(&raw[ip_len..ip_len + 4]);
        let port = i32::from_be_bytes(port);
        let port = u16::try_from(port).map_err(|_| MessageIdError::BadPort { port })?;
        let mut off = [0u8; 8];
        off.copy_from_slice(&raw[ip_len + 4..ip_len + 12]);
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            commit_log_offset: i64::from_be_bytes(off),
        })
    }
}

impl fmt::Display for OffsetMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl FromStr for OffsetMessageId {
    type Err = MessageIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::decode(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn month_start_table() {
        // (instant, month start), all UTC
        let cases = [
            (0, 0),                                 // 1970-01-01
            (1_704_067_200_000, 1_704_067_200_000), // 2024-01-01T00:00Z exactly
            (1_704_067_199_999, 1_701_388_800_000), // 2023-12-31T23:59:59.999Z -> 2023-12-01
            (1_709_251_199_999, 1_706_745_600_000), // 2024-02-29T23:59:59.999Z -> 2024-02-01
            (1_709_251_200_000, 1_709_251_200_000), // 2024-03-01
            (951_782_400_000, 949_363_200_000),     // 2000-02-29 -> 2000-02-01
            (-1, -2_678_400_000),                   // 1969-12-31T23:59:59.999Z -> 1969-12-01
        ];
        for (ms, want) in cases {
            assert_eq!(month_start_utc_ms(ms), want, "{ms}");
        }
    }

    #[test]
    fn the_cached_month_start_is_the_computed_one_at_every_boundary_and_backwards() {
        let g = UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        // Every month boundary from 1999 to 2101 (leap years, 2000, 2100), each side of it,
        // visited forwards then backwards (a wall clock set back), and before 1970.
        let mut instants = Vec::new();
        let mut day = 10_592; // 1999-01-01
        while day < 48_000 {
            let start = month_start_utc_ms(day * DAY_MS);
            instants.extend([start - 1, start, start + 1, start + 12 * 3_600_000]);
            day += 27;
        }
        let back: Vec<i64> = instants.iter().rev().copied().collect();
        instants.extend(back);
        instants.extend([-1, 0, -DAY_MS * 400, i64::MIN / 2, 5_000_000_000 * DAY_MS]);
        for ms in instants {
            assert_eq!(g.month_start(ms), month_start_utc_ms(ms), "{ms}");
            assert_eq!(g.month_start(ms), month_start_utc_ms(ms), "{ms} cached");
        }
    }

    #[test]
    fn ipv6_ids_are_56_chars_and_counter_wraps() {
        let g = UniqIdGenerator::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0x1_0002)
            .with_class_loader_hash(-1)
            .with_counter_start(u16::MAX);
        assert_eq!(g.prefix(), "000000000000000000000000000000010002FFFFFFFF");
        let a = g.next_id_at(1_704_067_200_005);
        let b = g.next_id_at(1_704_067_200_005);
        assert_eq!(a.len(), 56);
        assert!(a.ends_with("00000005FFFF"), "{a}");
        assert!(b.ends_with("000000050000"), "{b}");
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
    }

    #[test]
    fn long_month_diff_truncates_like_java_int_cast() {
        let g = UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1).with_class_loader_hash(0);
        // 2024-01-31T23:59:59.999Z: 2_678_399_999 ms into the month, > i32::MAX
        let id = g.next_id_at(1_706_745_599_999);
        assert_eq!(&id[20..28], format!("{:08X}", 2_678_399_999_u32));
    }

    #[test]
    fn concurrent_ids_are_distinct() {
        let g = Arc::new(UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let g = Arc::clone(&g);
                std::thread::spawn(move || {
                    (0..1000).map(|_| g.next_id_at(1_000)).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<String> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 4000);
    }

    #[test]
    fn offset_id_decode_errors() {
        assert_eq!(
            OffsetMessageId::decode("ABC"),
            Err(MessageIdError::BadLength { len: 3 })
        );
        assert_eq!(
            OffsetMessageId::decode("C0A8011400002A9F000000000000123Z"),
            Err(MessageIdError::BadHex { index: 31 })
        );
        assert_eq!(
            OffsetMessageId::decode("C0A8011400012A9F0000000000001234"),
            Err(MessageIdError::BadPort { port: 0x12A9F })
        );
    }

    #[test]
    fn offset_id_ipv6_round_trip_and_lowercase() {
        let id = OffsetMessageId::new("[2001:db8::1]:10911".parse().expect("addr"), i64::MAX);
        let s = id.encode();
        assert_eq!(s.len(), 56);
        assert_eq!(OffsetMessageId::decode(&s.to_lowercase()), Ok(id));
        assert_eq!(s.parse::<OffsetMessageId>(), Ok(id));
    }
}
