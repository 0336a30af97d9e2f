//! Connect times in fixed memory: a log-linear histogram over all of u64 whose percentiles are
//! at most 6.25 % high and never low, so a long log costs no more than a short one.
#![forbid(unsafe_code)]

/// Sub-buckets per power of two: a bucket spans at most 1/16 (6.25 %) of its smallest value.
const SUB_BUCKET_BITS: u32 = 4;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;
/// Values below 16 get a bucket each; then 16 per power of two up to 2^64.
const BUCKETS: usize = ((64 - SUB_BUCKET_BITS as usize) + 1) * SUB_BUCKETS as usize;

/// A log-linear histogram of microseconds over all of u64, in 7.8 KiB. Percentiles are reported
/// as the upper bound of the bucket holding the nearest-rank value (capped at the largest value
/// seen): never below the true value, at most 6.25 % above it. The maximum is exact.
pub(super) struct Histogram {
    counts: Box<[u64]>,
    pub(super) total: u64,
    /// The largest value recorded (exact).
    pub(super) max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    pub(super) fn record(&mut self, value: u64) {
        self.counts[Self::bucket(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    fn bucket(value: u64) -> usize {
        if value < SUB_BUCKETS {
            return value as usize;
        }
        let shift = 63 - value.leading_zeros() - SUB_BUCKET_BITS;
        let sub_bucket = (value >> shift) & (SUB_BUCKETS - 1);
        ((u64::from(shift) + 1) * SUB_BUCKETS + sub_bucket) as usize
    }

    /// The largest value that falls into `bucket`.
    fn upper_bound(bucket: usize) -> u64 {
        let bucket = bucket as u64;
        if bucket < SUB_BUCKETS {
            return bucket;
        }
        let shift = bucket / SUB_BUCKETS - 1;
        let lowest = (SUB_BUCKETS + bucket % SUB_BUCKETS) << shift;
        lowest + ((1 << shift) - 1)
    }

    /// The `per_mille`th percentile (500: median), or `None` with no values.
    pub(super) fn percentile(&self, per_mille: u64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = (self.total * per_mille).div_ceil(1000).max(1);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Self::upper_bound(bucket).min(self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_cover_u64_and_bound_the_error() {
        for value in [0, 1, 15, 16, 17, 31, 32, 33, 1000, 123_456_789, u64::MAX] {
            let bucket = Histogram::bucket(value);
            assert!(bucket < BUCKETS);
            let upper = Histogram::upper_bound(bucket);
            assert!(upper >= value, "{value}");
            assert!(upper - value <= value / 16, "{value}: {upper}");
            if bucket > 0 {
                assert!(Histogram::upper_bound(bucket - 1) < value, "{value}");
            }
        }
        let mut h = Histogram::default();
        for value in 1..=1000 {
            h.record(value);
        }
        let p50 = h.percentile(500).unwrap();
        assert!((500..=500 + 500 / 16).contains(&p50), "{p50}");
        assert_eq!(h.percentile(1000), Some(1000));
    }
}
