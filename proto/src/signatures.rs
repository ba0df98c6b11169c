//! Checking many ed25519 signatures at once (DESIGN.md §9, issue 5).
//!
//! A town verifies every event of every ward: on two cores the single
//! checks were the largest share of its CPU while applying a stream
//! (BENCHMARKS.md). [`verify_all`] checks a whole batch with one
//! multi-scalar multiplication — about a quarter of the cost per signature
//! when a batch holds a few wards' events — and gives, for each signature,
//! exactly the answer [`verify_one`] gives it alone.
//!
//! # The rule
//!
//! A signature `(R, s)` of message `M` by key `A` is valid when `s` is a
//! canonical scalar, `R` decodes to a point that is not of small order, `A`
//! is not of small order, and RFC 8032's cofactored equation holds:
//! `[8][s]B = [8]R + [8][k]A` with `k = SHA-512(R ‖ A ‖ M)`. This is RFC
//! 8032 §5.1.7's check plus ed25519-dalek `verify_strict`'s refusal of weak
//! keys and small-order `R`; it differs from `verify_strict` only on a
//! signature whose `R` carries a small-order component, which only the
//! holder of the secret key can make and which changes nothing here: an
//! event's hash, which the chain links, is taken without its signature.
//!
//! # Why the answers do not depend on the batch
//!
//! The cofactored equation is what the batch checks, summed with random
//! 128-bit weights `z`: `[8](−(Σ z·s)B + Σ z·R + Σ_A (Σ z·k)A) = 0`.
//! If every signature of the batch is valid, each term is a point of small
//! order times 8, so the sum is the identity whatever the weights: the
//! batch passes. If one is not, the sum is the identity only with
//! probability about 2⁻¹²⁸, and then every signature is checked alone
//! ([`verify_one`]). So each signature's answer is its own, whatever else
//! shares its batch — a town rebuilt from the stream in other batches
//! reaches the same verdicts as the live one (invariant 3).
//!
//! The weights are derived from the whole batch by SHA-512 (no randomness,
//! as everything in `proto`): they are fixed only once every signature is,
//! so no signature can be made to cancel another's error.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity as _, VartimeMultiscalarMul as _};
use sha2::{Digest, Sha512};

use crate::provenance::PublicKey;

/// Domain separation of the batch weights.
const WEIGHTS_DOMAIN: &[u8] = b"treem ed25519 batch weights v1";

/// One signature to check: `signature` (64 bytes) of `message` by `key`.
#[derive(Debug, Clone, Copy)]
pub struct SignatureCheck<'a> {
    pub key: &'a PublicKey,
    pub message: &'a [u8],
    pub signature: &'a [u8],
}

/// A signature whose parts decoded and passed the per-signature rules:
/// what is left is the equation.
struct Decoded {
    a: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// Decodes a signature and checks everything but the equation; `None` if
/// it fails any of that (so it is invalid).
fn decode(check: &SignatureCheck<'_>) -> Option<Decoded> {
    let signature: &[u8; 64] = check.signature.try_into().ok()?;
    let (r_bytes, s_bytes) = signature.split_at(32);
    let r_bytes: [u8; 32] = r_bytes.try_into().ok()?;
    let s_bytes: [u8; 32] = s_bytes.try_into().ok()?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    if r.is_small_order() || check.key.is_weak() {
        return None;
    }
    let key = check.key.verifying_key();
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(key.as_bytes());
    h.update(check.message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    Some(Decoded { a: key.to_edwards(), r, s, k })
}

/// The cofactored equation for one signature.
fn equation_holds(d: &Decoded) -> bool {
    // [s]B − [k]A − R, times the cofactor.
    (EdwardsPoint::vartime_double_scalar_mul_basepoint(&d.k, &-d.a, &d.s) - d.r).mul_by_cofactor().is_identity()
}

/// Whether one signature is valid (see the module doc for the rule).
pub fn verify_one(check: &SignatureCheck<'_>) -> bool {
    decode(check).is_some_and(|d| equation_holds(&d))
}

/// Whether each signature is valid: for each, what [`verify_one`] answers,
/// checked together (see the module doc).
pub fn verify_all(checks: &[SignatureCheck<'_>]) -> Vec<bool> {
    let decoded: Vec<Option<Decoded>> = checks.iter().map(decode).collect();
    let candidates: Vec<(&SignatureCheck<'_>, &Decoded)> =
        checks.iter().zip(&decoded).filter_map(|(c, d)| d.as_ref().map(|d| (c, d))).collect();
    let batch_holds = match candidates.len() {
        0 => true,
        1 => equation_holds(candidates[0].1),
        _ => batch_equation_holds(&candidates),
    };
    if batch_holds {
        return decoded.iter().map(Option::is_some).collect();
    }
    decoded.iter().map(|d| d.as_ref().is_some_and(equation_holds)).collect()
}

/// The weighted sum of every candidate's equation, times the cofactor, is
/// the identity.
fn batch_equation_holds(candidates: &[(&SignatureCheck<'_>, &Decoded)]) -> bool {
    let mut transcript = Sha512::new();
    transcript.update(WEIGHTS_DOMAIN);
    transcript.update((candidates.len() as u64).to_le_bytes());
    for (check, d) in candidates {
        transcript.update(check.key.verifying_key().as_bytes());
        transcript.update(check.signature);
        transcript.update(d.k.as_bytes());
    }
    let seed: [u8; 64] = transcript.finalize().into();
    let weights: Vec<Scalar> = (0..candidates.len() as u64)
        .map(|i| {
            let digest: [u8; 64] = Sha512::new().chain_update(seed).chain_update(i.to_le_bytes()).finalize().into();
            let mut z = [0u8; 16];
            z.copy_from_slice(&digest[..16]);
            Scalar::from(u128::from_le_bytes(z))
        })
        .collect();
    // Events of one ward share its key: one term per distinct key.
    let mut keys: Vec<([u8; 32], EdwardsPoint, Scalar)> = Vec::new();
    let mut basepoint = Scalar::ZERO;
    for ((check, d), z) in candidates.iter().zip(&weights) {
        basepoint += z * d.s;
        let bytes = *check.key.verifying_key().as_bytes();
        match keys.iter_mut().find(|(b, _, _)| *b == bytes) {
            Some((_, _, c)) => *c += z * d.k,
            None => keys.push((bytes, d.a, z * d.k)),
        }
    }
    let scalars = std::iter::once(-basepoint).chain(weights.iter().copied()).chain(keys.iter().map(|(_, _, c)| *c));
    let points = std::iter::once(ED25519_BASEPOINT_POINT).chain(candidates.iter().map(|(_, d)| d.r)).chain(keys.iter().map(|(_, a, _)| *a));
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).mul_by_cofactor().is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer as _;

    struct Signer(ed25519_dalek::SigningKey);

    impl Signer {
        fn public_key(&self) -> PublicKey {
            let hex: String = self.0.verifying_key().as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            PublicKey::from_hex(&hex).expect("a valid key")
        }
        fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
            self.0.sign(message).to_bytes()
        }
    }

    fn keys(n: u8) -> Vec<Signer> {
        (1..=n).map(|i| Signer(ed25519_dalek::SigningKey::from_bytes(&[i; 32]))).collect()
    }

    #[test]
    fn a_batch_answers_as_each_signature_alone() {
        let signers = keys(3);
        let publics: Vec<PublicKey> = signers.iter().map(Signer::public_key).collect();
        let messages: Vec<Vec<u8>> = (0..40).map(|i| format!("{{\"seq\":{i}}}").into_bytes()).collect();
        let mut sigs: Vec<Vec<u8>> = messages.iter().enumerate().map(|(i, m)| signers[i % 3].sign_bytes(m).to_vec()).collect();
        // Altered: a flipped bit in s, in R, a signature of another message,
        // a non-canonical s, a short signature.
        sigs[3][40] ^= 1;
        sigs[11][3] ^= 0x10;
        sigs[17] = signers[17 % 3].sign_bytes(b"something else").to_vec();
        sigs[23][63] |= 0xf0;
        sigs[29].truncate(63);
        let checks: Vec<SignatureCheck<'_>> = messages
            .iter()
            .zip(&sigs)
            .enumerate()
            .map(|(i, (m, s))| SignatureCheck { key: &publics[i % 3], message: m, signature: s })
            .collect();
        let alone: Vec<bool> = checks.iter().map(verify_one).collect();
        assert_eq!(alone.iter().filter(|ok| !**ok).count(), 5, "exactly the altered ones fail alone: {alone:?}");
        assert_eq!(verify_all(&checks), alone);
        // In any split the answers are the same.
        for size in [1, 2, 7, 16] {
            let split: Vec<bool> = checks.chunks(size).flat_map(verify_all).collect();
            assert_eq!(split, alone, "batches of {size}");
        }
        let valid: Vec<SignatureCheck<'_>> = checks.iter().zip(&alone).filter(|(_, ok)| **ok).map(|(c, _)| *c).collect();
        assert!(verify_all(&valid).iter().all(|ok| *ok));
        assert!(verify_all(&[]).is_empty());
    }

    /// A key of small order "signs" any message: with `A` the identity,
    /// `R = [s]B` satisfies the equation whatever `k`. The rule refuses the
    /// key, alone and in a batch (the key's weakness is found once, when
    /// the key is read).
    #[test]
    fn a_weak_key_never_verifies() {
        let signers = keys(1);
        let good = signers[0].public_key();
        for torsion in curve25519_dalek::constants::EIGHT_TORSION {
            let hex: String = torsion.compress().to_bytes().iter().map(|b| format!("{b:02x}")).collect();
            let weak = PublicKey::from_hex(&hex).expect("a point of the curve");
            let s = Scalar::from(5u64);
            let mut forged = (ED25519_BASEPOINT_POINT * s).compress().to_bytes().to_vec();
            forged.extend_from_slice(s.as_bytes());
            let m = b"{\"seq\":1}".to_vec();
            let by_good = signers[0].sign_bytes(&m);
            let checks = [
                SignatureCheck { key: &weak, message: &m, signature: &forged },
                SignatureCheck { key: &good, message: &m, signature: &by_good },
            ];
            assert!(!verify_one(&checks[0]));
            assert_eq!(verify_all(&checks), vec![false, true]);
        }
    }

    #[test]
    fn a_signature_by_another_key_fails_in_a_batch() {
        let signers = keys(2);
        let publics: Vec<PublicKey> = signers.iter().map(Signer::public_key).collect();
        let m = b"{\"seq\":1}".to_vec();
        let by_first = signers[0].sign_bytes(&m).to_vec();
        let checks = [
            SignatureCheck { key: &publics[0], message: &m, signature: &by_first },
            SignatureCheck { key: &publics[1], message: &m, signature: &by_first },
        ];
        assert_eq!(verify_all(&checks), vec![true, false]);
    }

    /// A signature only the key's holder can make: `R` with a component of
    /// order 8. `verify_strict` refuses it, the cofactored rule takes it;
    /// what matters is that the batch agrees with the single check in every
    /// split, so the verdict cannot depend on the batch.
    #[test]
    fn a_torsioned_signature_gets_the_same_answer_in_every_batch() {
        let signers = keys(2);
        let publics: Vec<PublicKey> = signers.iter().map(Signer::public_key).collect();
        let a = signers[0].0.to_scalar();
        let m = b"{\"seq\":7}".to_vec();
        let r = Scalar::from(12345u64);
        let big_r = ED25519_BASEPOINT_POINT * r + curve25519_dalek::constants::EIGHT_TORSION[1];
        let r_bytes = big_r.compress().to_bytes();
        let k = Scalar::from_bytes_mod_order_wide(
            &Sha512::new().chain_update(r_bytes).chain_update(publics[0].verifying_key().as_bytes()).chain_update(&m).finalize().into(),
        );
        let s = r + k * a;
        let mut torsioned = r_bytes.to_vec();
        torsioned.extend_from_slice(s.as_bytes());
        let strict = publics[0].verifying_key().verify_strict(&m, &ed25519_dalek::Signature::from_slice(&torsioned).unwrap());
        assert!(strict.is_err(), "verify_strict refuses a torsioned R");
        let messages: Vec<Vec<u8>> = (0..9).map(|i| format!("{{\"seq\":{i}}}").into_bytes()).collect();
        let sigs: Vec<[u8; 64]> = messages.iter().enumerate().map(|(i, m)| signers[i % 2].sign_bytes(m)).collect();
        let mut checks: Vec<SignatureCheck<'_>> = messages
            .iter()
            .zip(&sigs)
            .enumerate()
            .map(|(i, (m, s))| SignatureCheck { key: &publics[i % 2], message: m, signature: s })
            .collect();
        checks.insert(4, SignatureCheck { key: &publics[0], message: &m, signature: &torsioned });
        let alone: Vec<bool> = checks.iter().map(verify_one).collect();
        assert!(alone.iter().all(|ok| *ok), "the cofactored rule takes it: {alone:?}");
        for size in [1, 2, 3, 5, 10] {
            let split: Vec<bool> = checks.chunks(size).flat_map(verify_all).collect();
            assert_eq!(split, alone, "batches of {size}");
        }
        // A small-order R alone is refused by both rules, alone and in a batch.
        let identity_r = curve25519_dalek::constants::EIGHT_TORSION[0].compress().to_bytes();
        let k0 = Scalar::from_bytes_mod_order_wide(
            &Sha512::new().chain_update(identity_r).chain_update(publics[0].verifying_key().as_bytes()).chain_update(&m).finalize().into(),
        );
        let mut small = identity_r.to_vec();
        small.extend_from_slice((k0 * a).as_bytes());
        checks[4] = SignatureCheck { key: &publics[0], message: &m, signature: &small };
        assert!(!verify_one(&checks[4]));
        assert_eq!(verify_all(&checks).iter().filter(|ok| !**ok).count(), 1);
    }
}
