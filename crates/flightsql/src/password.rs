//! Passwords of configured users: given in plain text (read from an environment variable) or as
//! a PBKDF2-HMAC-SHA256 hash, `pbkdf2-sha256$<iterations>$<salt, base64>$<hash, base64>` (the
//! format `flotilla hash-password` prints).

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Iterations `hash` uses: OWASP's 2023 advice for PBKDF2-HMAC-SHA256.
pub const DEFAULT_ITERATIONS: u32 = 600_000;

const PREFIX: &str = "pbkdf2-sha256";

/// A user's password as the server keeps it.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// The password itself (from an environment variable).
    Plain(String),
    /// A salted PBKDF2-HMAC-SHA256 hash.
    Pbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Password::Plain(_) => f.write_str("Password::Plain(…)"),
            Password::Pbkdf2 { iterations, .. } => write!(f, "Password::Pbkdf2({iterations})"),
        }
    }
}

impl From<&str> for Password {
    fn from(plain: &str) -> Self {
        Password::Plain(plain.to_string())
    }
}

impl From<String> for Password {
    fn from(plain: String) -> Self {
        Password::Plain(plain)
    }
}

impl Password {
    /// Reads a hash in the `pbkdf2-sha256$…` format.
    ///
    /// # Errors
    /// A message saying what is wrong with the text (never echoing it).
    pub fn parse_hash(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.trim().split('$').collect();
        let [prefix, iterations, salt, hash] = parts.as_slice() else {
            return Err(format!(
                "expected {PREFIX}$<iterations>$<salt>$<hash> (from `flotilla hash-password`)"
            ));
        };
        if *prefix != PREFIX {
            return Err(format!("unknown hash kind '{prefix}' (expected {PREFIX})"));
        }
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or("the iteration count is not a positive number")?;
        let salt = B64.decode(salt).map_err(|_| "the salt is not base64")?;
        let hash = B64.decode(hash).map_err(|_| "the hash is not base64")?;
        if hash.len() != 32 {
            return Err("the hash is not 32 bytes long".into());
        }
        Ok(Password::Pbkdf2 {
            iterations,
            salt,
            hash,
        })
    }

    /// Whether `candidate` is this password; compares in constant time. A hash is of the
    /// password as SCRAM normalizes it ([`normalized`]); a hash made before hashes were of the
    /// normalized password (its text differs only where normalization changes it) matches too.
    pub fn matches(&self, candidate: &str) -> bool {
        match self {
            Password::Plain(plain) => constant_time_eq(plain.as_bytes(), candidate.as_bytes()),
            Password::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => {
                let normal = normalized(candidate);
                let of = |text: &str| {
                    constant_time_eq(&pbkdf2_sha256(text.as_bytes(), salt, *iterations), hash)
                };
                of(&normal) || (normal != candidate && of(candidate))
            }
        }
    }
}

/// `password` as SCRAM-SHA-256 hashes it (RFC 5802): normalized by SASLprep (RFC 4013: spaces
/// of every kind become U+0020, characters that mean nothing are dropped, NFKC), or as it is
/// when SASLprep refuses it, as PostgreSQL does. So a hash from `flotilla hash-password` is
/// SCRAM's salted password whatever the characters, and the PostgreSQL port's clients, which
/// normalize before they hash, log in with it.
pub fn normalized(password: &str) -> std::borrow::Cow<'_, str> {
    stringprep::saslprep(password).unwrap_or(std::borrow::Cow::Borrowed(password))
}

/// A new hash of `password` in the `pbkdf2-sha256$…` format, with a random salt: of the
/// password as SCRAM normalizes it ([`normalized`]).
pub fn hash(password: &str, iterations: u32) -> String {
    let salt = *uuid::Uuid::new_v4().as_bytes();
    let derived = pbkdf2_sha256(normalized(password).as_bytes(), &salt, iterations);
    format!(
        "{PREFIX}${iterations}${}${}",
        B64.encode(salt),
        B64.encode(derived)
    )
}

/// PBKDF2 (RFC 8018) with HMAC-SHA256, one 32-byte block.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let Ok(key) = Hmac::<Sha256>::new_from_slice(password) else {
        // HMAC takes keys of any length; this cannot happen.
        return Vec::new();
    };
    let mut mac = key.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u = mac.finalize().into_bytes();
    let mut out = u;
    for _ in 1..iterations {
        let mut mac = key.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes();
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out.to_vec()
}

/// Compares two secrets in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn pbkdf2_matches_the_published_vectors() {
        // RFC 7914 §11 / the PBKDF2-HMAC-SHA256 test vectors.
        assert_eq!(
            hex(&pbkdf2_sha256(b"password", b"salt", 1)),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
        );
        assert_eq!(
            hex(&pbkdf2_sha256(b"password", b"salt", 2)),
            "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"
        );
        assert_eq!(
            hex(&pbkdf2_sha256(b"password", b"salt", 4096)),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"
        );
    }

    #[test]
    fn hashes_round_trip_and_check_passwords() {
        let text = hash("s3cret", 1000);
        let password = Password::parse_hash(&text).unwrap();
        assert!(password.matches("s3cret"));
        assert!(!password.matches("s3cret "));
        assert!(!password.matches(""));
        assert_ne!(hash("s3cret", 1000), text, "salts differ");
        assert!(Password::parse_hash("md5$1$x$y").is_err());
        assert!(Password::parse_hash("pbkdf2-sha256$0$AAAA$AAAA").is_err());
        assert!(!format!("{password:?}").contains("s3cret"));
    }

    #[test]
    fn hashes_are_of_the_password_as_scram_normalizes_it() {
        // A no-break space is a space, a soft hyphen nothing, the ligature "ﬁ" is "fi".
        let typed = "ﬁne\u{00A0}pass\u{00AD}word";
        assert_eq!(normalized(typed), "fine password");
        assert_eq!(normalized("s3cret"), "s3cret");
        // Refused by SASLprep (a control character): taken as it is.
        assert_eq!(normalized("a\u{0007}b"), "a\u{0007}b");
        let password = Password::parse_hash(&hash(typed, 1000)).unwrap();
        assert!(password.matches(typed));
        assert!(password.matches("fine password"));
        assert!(!password.matches("fine  password"));
        // A hash made of the text as typed (before normalization) still matches it.
        let salt = b"0123456789abcdef";
        let raw = Password::Pbkdf2 {
            iterations: 1000,
            salt: salt.to_vec(),
            hash: pbkdf2_sha256(typed.as_bytes(), salt, 1000),
        };
        assert!(raw.matches(typed));
    }
}
