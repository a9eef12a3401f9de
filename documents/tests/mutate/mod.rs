//! Byte-level mutations of valid files, as a fuzzer makes them: bit flips, overwritten bytes, truncation,
//! inserted bytes (including the format's own keywords), deleted and repeated ranges. Positions are drawn as
//! fractions of the length so one strategy fits every file.

use proptest::prelude::*;

/// One change to a file's bytes.
#[derive(Debug, Clone)]
pub enum Mutation {
    Flip { at: f64, bit: u8 },
    Set { at: f64, byte: u8 },
    Truncate { at: f64 },
    Insert { at: f64, bytes: Vec<u8> },
    Delete { at: f64, len: usize },
    Repeat { at: f64, len: usize, times: usize },
}

/// Mutations, `tokens` being pieces of the format worth inserting (keywords, numbers, delimiters).
pub fn mutation(tokens: &'static [&'static [u8]]) -> impl Strategy<Value = Mutation> {
    let at = 0.0..1.0f64;
    prop_oneof![
        (at.clone(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (at.clone(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        at.clone().prop_map(|at| Mutation::Truncate { at }),
        (at.clone(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (at.clone(), prop::sample::select(tokens)).prop_map(|(at, t)| Mutation::Insert { at, bytes: t.to_vec() }),
        (at.clone(), 1..64usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (at, 1..256usize, 1..64usize).prop_map(|(at, len, times)| Mutation::Repeat { at, len, times }),
    ]
}

/// `bytes` with `mutations` applied in order.
pub fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    let pos = |at: f64, len: usize| ((len as f64) * at) as usize;
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::Flip { at, bit } if len > 0 => bytes[pos(*at, len).min(len - 1)] ^= 1 << bit,
            Mutation::Set { at, byte } if len > 0 => bytes[pos(*at, len).min(len - 1)] = *byte,
            Mutation::Truncate { at } => bytes.truncate(pos(*at, len)),
            Mutation::Insert { at, bytes: new } => {
                let i = pos(*at, len);
                bytes.splice(i..i, new.iter().copied());
            }
            Mutation::Delete { at, len: n } => {
                let i = pos(*at, len);
                bytes.drain(i..(i + n).min(len));
            }
            Mutation::Repeat { at, len: n, times } => {
                let i = pos(*at, len);
                let range = bytes[i..(i + n).min(len)].to_vec();
                for _ in 0..*times {
                    bytes.splice(i..i, range.iter().copied());
                }
            }
            _ => {}
        }
    }
    bytes
}
