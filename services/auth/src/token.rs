//! A bearer token: `treem_<id>_<secret>`, where `<id>` is 16 lowercase hex
//! digits (8 random bytes; it names the token in lists, revocations and the
//! audit log) and `<secret>` is 32 random bytes from the OS's CSPRNG in
//! unpadded base64url (43 characters, which may themselves contain `_`;
//! the token splits at its first two underscores only).
//!
//! Only the SHA-256 of the 32 secret bytes is ever stored. A plain,
//! unsalted hash is enough here, unlike for passwords: the secret has the
//! full 256 bits of entropy, so there is no dictionary to try.
//!
//! `Token` deliberately implements neither `Debug` with the secret nor
//! `Serialize`; [`Token::expose`] is the one way to the full text, called
//! where the token is shown once.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The fixed start of every token, so secret scanners can find leaked ones.
pub const PREFIX: &str = "treem";
/// Hex digits of a token id.
pub const ID_LEN: usize = 16;
/// Bytes of a token secret.
pub const SECRET_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Said only to the operator and the audit log, never in an HTTP answer.
    #[error("not a treem token (expected treem_<16 hex digits>_<43 base64url characters>)")]
    Malformed,
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
}

/// A token id: 16 lowercase hex digits.
pub fn valid_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    id: String,
    secret: [u8; SECRET_LEN],
}

impl Token {
    /// A new token with a random id and secret.
    pub fn generate() -> Result<Token, TokenError> {
        let mut secret = [0u8; SECRET_LEN];
        getrandom::fill(&mut secret).map_err(|e| TokenError::Random(e.to_string()))?;
        let id = getrandom::u64().map_err(|e| TokenError::Random(e.to_string()))?;
        Ok(Token { id: format!("{id:016x}"), secret })
    }

    /// Parses the text form; anything else, including surrounding spaces,
    /// is [`TokenError::Malformed`].
    pub fn parse(text: &str) -> Result<Token, TokenError> {
        let mut parts = text.splitn(3, '_');
        let (Some(PREFIX), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        if !valid_id(id) || secret.len() != 43 {
            return Err(TokenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD.decode(secret).map_err(|_| TokenError::Malformed)?;
        let secret: [u8; SECRET_LEN] = bytes.try_into().map_err(|_| TokenError::Malformed)?;
        Ok(Token { id: id.to_owned(), secret })
    }

    /// The token's public id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// SHA-256 of the secret, as stored.
    pub fn secret_hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret).into()
    }

    /// The full token text, secret included: only to show it once at
    /// creation or to send it in an `Authorization` header.
    pub fn expose(&self) -> String {
        format!("{PREFIX}_{}_{}", self.id, URL_SAFE_NO_PAD.encode(self.secret))
    }
}

/// Shows the id only.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({PREFIX}_{}_<secret>)", self.id)
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32 bytes of a 64-digit hex string.
pub fn from_hex_32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_parse_round_trip() {
        let t = Token::generate().unwrap();
        let text = t.expose();
        assert!(text.starts_with("treem_"));
        assert_eq!(text.len(), 6 + ID_LEN + 1 + 43);
        let back = Token::parse(&text).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.secret_hash(), t.secret_hash());
        assert_ne!(Token::generate().unwrap(), t, "two tokens differ");
        assert!(!format!("{t:?}").contains(&text[6 + ID_LEN + 1..]), "Debug hides the secret");
    }

    #[test]
    fn a_secret_with_underscores_parses() {
        // 0xff bytes encode as '_' in base64url.
        let t = Token { id: "0123456789abcdef".into(), secret: [0xff; 32] };
        let text = t.expose();
        assert!(text[23..].contains('_'), "{text}");
        assert_eq!(Token::parse(&text).unwrap(), t);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = Token::generate().unwrap().expose();
        let secret = &good[23..];
        for bad in [
            String::new(),
            "garbage".into(),
            "treem_".into(),
            format!("treem_0123456789abcdef_{}", &secret[1..]),
            format!("treem_0123456789abcdef_{secret}x"),
            format!("treem_0123456789ABCDEF_{secret}"),
            format!("treem_0123456789abcde_{secret}"),
            format!("trem_0123456789abcdef_{secret}"),
            format!(" {good}"),
            format!("{good}\n"),
            format!("treem_0123456789abcdef_{}", "!".repeat(43)),
        ] {
            assert!(matches!(Token::parse(&bad), Err(TokenError::Malformed)), "{bad:?}");
        }
    }

    #[test]
    fn hex_round_trip() {
        let h = Token::generate().unwrap().secret_hash();
        assert_eq!(from_hex_32(&to_hex(&h)), Some(h));
        assert_eq!(from_hex_32("zz"), None);
        assert_eq!(from_hex_32(&"é".repeat(32)), None);
    }
}
