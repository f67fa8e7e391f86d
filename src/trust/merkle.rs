//! RFC 9162 (RFC 6962) Merkle inclusion proofs, as transparency logs use them.
//!
//! The `sigstore` crate has this algorithm but keeps it crate-private, so it lives here, small and tested
//! against real Rekor proofs from the corpus.

use sha2::{Digest, Sha256};

/// The RFC 6962 leaf hash: `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

fn node_hash(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Checks that `leaf` sits at `index` in the tree of `tree_size` leaves whose root is `root`
/// (RFC 9162 §2.1.3.2). Returns why not.
pub fn verify_inclusion(
    index: u64,
    tree_size: u64,
    leaf: &[u8; 32],
    proof: &[[u8; 32]],
    root: &[u8; 32],
) -> Result<(), String> {
    if index >= tree_size {
        return Err(format!(
            "leaf index {index} is not below the tree size {tree_size}"
        ));
    }
    let (mut f_n, mut s_n) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(format!(
                "the proof has {} hashes, more than a tree of {tree_size} needs",
                proof.len()
            ));
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(format!(
            "the proof has {} hashes, fewer than a tree of {tree_size} needs",
            proof.len()
        ));
    }
    if &r != root {
        return Err(format!(
            "the proof leads to root {}, not the recorded root {}",
            hex::encode(r),
            hex::encode(root)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The root of a tree built the obvious recursive way, to check proofs against.
    fn root_of(leaves: &[[u8; 32]]) -> [u8; 32] {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let k = leaves.len().next_power_of_two() / 2;
        node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
    }

    fn path_of(leaves: &[[u8; 32]], m: usize) -> Vec<[u8; 32]> {
        if leaves.len() == 1 {
            return Vec::new();
        }
        let k = leaves.len().next_power_of_two() / 2;
        if m < k {
            let mut p = path_of(&leaves[..k], m);
            p.push(root_of(&leaves[k..]));
            p
        } else {
            let mut p = path_of(&leaves[k..], m - k);
            p.push(root_of(&leaves[..k]));
            p
        }
    }

    #[test]
    fn every_leaf_of_every_small_tree_verifies_and_a_wrong_index_does_not() {
        for n in 1..=17usize {
            let leaves: Vec<[u8; 32]> = (0..n).map(|i| leaf_hash(&[i as u8])).collect();
            let root = root_of(&leaves);
            for m in 0..n {
                let path = path_of(&leaves, m);
                verify_inclusion(m as u64, n as u64, &leaves[m], &path, &root)
                    .unwrap_or_else(|e| panic!("n={n} m={m}: {e}"));
                if n > 1 {
                    let other = (m + 1) % n;
                    assert!(
                        verify_inclusion(other as u64, n as u64, &leaves[m], &path, &root).is_err(),
                        "n={n} m={m} verified at index {other}"
                    );
                }
            }
        }
    }

    #[test]
    fn index_beyond_the_tree_is_refused() {
        let leaf = leaf_hash(b"x");
        assert!(verify_inclusion(1, 1, &leaf, &[], &leaf).is_err());
    }
}
