//! The Redis Cluster slot of a key, for the limiter's breakers on a cluster: the CRC16
//! (XMODEM) of the key's hash tag (the bytes between its first `{` and the first `}` after
//! it, when there are any) or of the whole key, modulo 16384, as Redis Cluster computes it.

/// The number of slots of a Redis Cluster.
pub(crate) const SLOTS: u16 = 16384;

/// The slot of `key`.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    crc16_xmodem(hash_tag(key).unwrap_or(key)) % SLOTS
}

/// The bytes between the first `{` and the first `}` after it, if there are any.
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|b| *b == b'{')?;
    let rest = &key[open + 1..];
    let close = rest.iter().position(|b| *b == b'}')?;
    (close > 0).then(|| &rest[..close])
}

/// CRC16 with polynomial 0x1021, initial value 0, no reflection (XMODEM), bit by bit:
/// keys are short, and this runs once per decision on a cluster.
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_clusters() {
        // The CRC's check value, and slots `CLUSTER KEYSLOT` gives.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b"fo:hot"), 15699);
        assert_eq!(key_slot(b""), 0);
        // Hash tags: the first `{...}` with something inside; `{}` is no tag.
        assert_eq!(key_slot(b"rl:{hot}"), key_slot(b"hot"));
        assert_eq!(key_slot(b"{hot}:x{y}"), key_slot(b"hot"));
        assert_eq!(key_slot(b"a{}b"), crc16_xmodem(b"a{}b") % SLOTS);
        assert_eq!(key_slot(b"a{b"), crc16_xmodem(b"a{b") % SLOTS);
        assert_eq!(key_slot(b"a{{b}}"), key_slot(b"{b"));
    }

    /// The same slot as the `redis` crate's cluster client computes, for many keys.
    #[cfg(feature = "redis-cluster")]
    #[test]
    fn slots_equal_the_cluster_clients() {
        use redis::cluster_routing::Slot;
        let mut keys: Vec<Vec<u8>> = vec![b"{".to_vec(), b"}".to_vec(), b"{}".to_vec()];
        for i in 0..5000u32 {
            keys.push(format!("rl:customer-{i}").into_bytes());
            keys.push(format!("p{{t{}}}:{i}", i % 97).into_bytes());
            keys.push(i.to_le_bytes().to_vec());
        }
        for key in keys {
            assert_eq!(
                Slot::new(key_slot(&key)),
                Some(Slot::for_key(&key)),
                "{key:?}"
            );
        }
    }
}
