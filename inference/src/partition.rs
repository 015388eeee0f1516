//! Splitting the detector's work between replicas.
//!
//! Every window and incident belongs to one (org, source ip), so partitioning by a stable
//! hash of that pair lets any number of replicas run while all events of one source still
//! meet in the same replica. Partition `i` of `n` owns the pairs with
//! `fnv1a64(org uuid bytes ‖ ip text) mod n == i`; the hash is fixed (not Rust's randomly
//! keyed `DefaultHasher`), so every process, version and restart agrees on it.

use std::fmt;
use std::net::IpAddr;
use xdr_domain::ids::OrgId;

/// One partition of the detector's work: `index` in `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition {
    index: u32,
    count: u32,
}

impl Default for Partition {
    /// The whole work (one replica).
    fn default() -> Self {
        Partition { index: 0, count: 1 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("the number of detector partitions must be at least 1")]
    NoPartitions,
    #[error("detector partition {index} does not exist: partitions are numbered 0..{count}")]
    OutOfRange { index: u32, count: u32 },
}

impl Partition {
    pub fn new(index: u32, count: u32) -> Result<Partition, PartitionError> {
        if count == 0 {
            return Err(PartitionError::NoPartitions);
        }
        if index >= count {
            return Err(PartitionError::OutOfRange { index, count });
        }
        Ok(Partition { index, count })
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether this partition handles the events of `ip` in `org`.
    pub fn owns(self, org: OrgId, ip: IpAddr) -> bool {
        self.count == 1 || partition_of(org, ip, self.count) == self.index
    }

    /// Whether this partition does the org-wide work of `org` (baseline training).
    pub fn owns_org(self, org: OrgId) -> bool {
        self.count == 1 || (fnv1a64(org.0.as_bytes(), FNV_OFFSET) % u64::from(self.count)) as u32 == self.index
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

fn fnv1a64(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The partition (of `count`) that owns `ip` in `org`.
pub fn partition_of(org: OrgId, ip: IpAddr, count: u32) -> u32 {
    let h = fnv1a64(ip.to_string().as_bytes(), fnv1a64(org.0.as_bytes(), FNV_OFFSET));
    (h % u64::from(count.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn every_source_has_exactly_one_owner() {
        let org = OrgId(Uuid::from_u128(7));
        for i in 0..200u8 {
            let ip: IpAddr = format!("10.1.{i}.{}", 255 - i).parse().unwrap();
            let owners = (0..3).filter(|p| Partition::new(*p, 3).unwrap().owns(org, ip)).count();
            assert_eq!(owners, 1, "{ip}");
            assert!(Partition::default().owns(org, ip));
        }
    }

    #[test]
    fn the_hash_is_stable_across_processes() {
        // Fixed values: a change here moves sources between running replicas.
        let org = OrgId(Uuid::from_u128(1));
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(partition_of(org, ip, 1_000_003), partition_of(org, ip, 1_000_003));
        let expected = fnv1a64(b"127.0.0.2", fnv1a64(&1u128.to_be_bytes(), FNV_OFFSET)) % 1_000_003;
        assert_eq!(u64::from(partition_of(org, ip, 1_000_003)), expected);
        assert_eq!(fnv1a64(b"a", FNV_OFFSET), 0xaf63_dc4c_8601_ec8c, "FNV-1a 64 reference vector");
    }

    #[test]
    fn the_work_is_spread() {
        let org = OrgId(Uuid::from_u128(9));
        let mut per = [0u32; 4];
        for i in 0..4000u32 {
            let ip: IpAddr = std::net::Ipv4Addr::from(0x0a00_0000 + i).into();
            per[partition_of(org, ip, 4) as usize] += 1;
        }
        assert!(per.iter().all(|n| (800..1200).contains(n)), "{per:?}");
    }

    #[test]
    fn invalid_partitions_are_refused() {
        assert_eq!(Partition::new(0, 0), Err(PartitionError::NoPartitions));
        assert_eq!(Partition::new(2, 2), Err(PartitionError::OutOfRange { index: 2, count: 2 }));
        assert_eq!(Partition::new(1, 2).unwrap().to_string(), "1/2");
    }
}
