//! Shared by the engine's benches: pgbench-like row keys, a deterministic row picker and the
//! calling thread's CPU clock.

/// Rows in a pgbench scale-10 `pgbench_accounts`.
pub const ROWS: u64 = 1_000_000;

/// Row key of integer `aid`: a fixed 6-byte prefix (tag, table id, non-null marker) and the
/// integer with its sign bit flipped, big-endian; 14 bytes, as `sql::encoding::row_key` builds.
pub fn key(aid: u64) -> [u8; 14] {
    let mut k = [0u8; 14];
    k[0] = 0x10;
    k[1..5].copy_from_slice(&16384u32.to_be_bytes());
    k[5] = 0x01;
    k[6..].copy_from_slice(&(aid ^ (1 << 63)).to_be_bytes());
    k
}

/// Deterministic pseudo-random row numbers in 1..=ROWS (so runs are comparable).
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next_aid(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % ROWS + 1
    }
}

/// This thread's CPU time in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}
