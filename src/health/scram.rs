//! SCRAM authentication as MongoDB speaks it (`saslStart` /
//! `saslContinue`): SCRAM-SHA-256 (RFC 7677), and SCRAM-SHA-1 (RFC 5802)
//! where the server offers only that, per MongoDB's authentication spec
//! (mongodb/specifications: source/auth/auth.md). The cryptography is
//! ring's (HMAC, PBKDF2, digests), already in the tree for TLS.
//!
//! The password lives in a [`Secret`]: it prints as `<redacted>` in every
//! Debug or Display, so no log line, report or API answer can carry it.
//! The salted password is derived once per (salt, iteration count) and
//! kept, as drivers do: a gate that probes thousands of containers does
//! not run PBKDF2 for each.

use ring::{digest, hmac, pbkdf2};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;

/// Why a SCRAM authentication could not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The playbook's credentials cannot be used (the password file or
    /// variable, an empty password, one that needs SASLprep).
    #[error("{0}")]
    Credentials(String),
    /// The server offers no mechanism rekindle speaks for this user.
    #[error("{0}")]
    Mechanism(String),
    /// The server refused (its `e=` attribute).
    #[error("the server refused: {0}")]
    Refused(String),
    /// A server message that does not follow the protocol.
    #[error("{0}")]
    Protocol(String),
    /// The server could not prove it holds the password.
    #[error("the server's signature does not match: not the server that holds this user")]
    ServerSignature,
}

/// A password: never printed.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A SCRAM variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// SCRAM-SHA-256 (RFC 7677).
    Sha256,
    /// SCRAM-SHA-1 (RFC 5802), for servers that offer nothing better.
    Sha1,
}

impl Mechanism {
    /// The name MongoDB gives it (`SCRAM-SHA-256`, `SCRAM-SHA-1`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha1 => "SCRAM-SHA-1",
        }
    }

    /// SHA-256 when offered, else SHA-1 (also when the server lists
    /// nothing: a user from before 4.0, as the spec says).
    pub fn pick(offered: Option<&[String]>) -> Result<Mechanism, ScramError> {
        match offered {
            None => Ok(Mechanism::Sha1),
            Some(list) if list.iter().any(|m| m == "SCRAM-SHA-256") => Ok(Mechanism::Sha256),
            Some(list) if list.iter().any(|m| m == "SCRAM-SHA-1") => Ok(Mechanism::Sha1),
            Some(list) => Err(ScramError::Mechanism(format!(
                "the server offers {list:?} for this user, neither SCRAM-SHA-256 nor SCRAM-SHA-1"
            ))),
        }
    }

    fn hmac_alg(self) -> hmac::Algorithm {
        match self {
            Mechanism::Sha256 => hmac::HMAC_SHA256,
            Mechanism::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        }
    }

    fn pbkdf2_alg(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Mechanism::Sha1 => pbkdf2::PBKDF2_HMAC_SHA1,
        }
    }

    fn digest_alg(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::Sha256 => &digest::SHA256,
            Mechanism::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        }
    }

    /// The spec's minimum iteration count (SHA-256: 4096).
    fn min_iterations(self) -> u32 {
        match self {
            Mechanism::Sha256 => 4096,
            Mechanism::Sha1 => 1,
        }
    }
}

/// (mechanism, salt, iterations): what one salted password depends on.
type KeyId = (Mechanism, Vec<u8>, u32);
/// (client key, server key).
type Keys = (Vec<u8>, Vec<u8>);

/// Who rekindle authenticates as. Its `Debug` shows the user and the
/// database only: neither the password nor a key derived from it.
pub struct Credentials {
    /// The user's name.
    pub user: String,
    /// The database holding the user (`auth_source`).
    pub source: String,
    password: Secret,
    keys: Mutex<HashMap<KeyId, Keys>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("source", &self.source)
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

/// (client key, server key) from a password as the mechanism hashes it
/// (RFC 5802 §3: SaltedPassword = Hi(password, salt, i)).
fn derive_keys(
    mech: Mechanism,
    hashed_password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<Keys, ScramError> {
    let mut salted = vec![0u8; mech.digest_alg().output_len()];
    pbkdf2::derive(
        mech.pbkdf2_alg(),
        NonZeroU32::new(iterations)
            .ok_or_else(|| ScramError::Protocol("iteration count 0".into()))?,
        salt,
        hashed_password,
        &mut salted,
    );
    let salted = hmac::Key::new(mech.hmac_alg(), &salted);
    let client = hmac::sign(&salted, b"Client Key").as_ref().to_vec();
    let server = hmac::sign(&salted, b"Server Key").as_ref().to_vec();
    Ok((client, server))
}

/// (ClientProof, ServerSignature) for an auth message (RFC 5802 §3).
fn proof_and_signature(mech: Mechanism, keys: &Keys, auth_message: &str) -> (Vec<u8>, Vec<u8>) {
    let (client_key, server_key) = keys;
    let stored = digest::digest(mech.digest_alg(), client_key);
    let signature = hmac::sign(
        &hmac::Key::new(mech.hmac_alg(), stored.as_ref()),
        auth_message.as_bytes(),
    );
    let proof = client_key
        .iter()
        .zip(signature.as_ref())
        .map(|(a, b)| a ^ b)
        .collect();
    let server = hmac::sign(
        &hmac::Key::new(mech.hmac_alg(), server_key),
        auth_message.as_bytes(),
    );
    (proof, server.as_ref().to_vec())
}

impl Credentials {
    /// Credentials for `user` in database `source`.
    pub fn new(user: String, password: Secret, source: String) -> Credentials {
        Credentials {
            user,
            source,
            password,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The playbook's `[mongo]` credentials, the password read now: the
    /// file's first line (its newline is not part of it) or the variable.
    pub fn load(auth: &crate::config::MongoAuth) -> Result<Credentials, ScramError> {
        use crate::config::PasswordSource;
        use ScramError::Credentials as Unusable;
        let password = match &auth.password {
            PasswordSource::File(p) => {
                crate::config::check_password_file(p).map_err(Unusable)?;
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Unusable(format!("{}: cannot read: {e}", p.display())))?;
                text.lines().next().unwrap_or("").to_string()
            }
            PasswordSource::Env(var) => std::env::var(var)
                .map_err(|_| Unusable(format!("environment variable {var} is not set")))?,
        };
        if password.is_empty() {
            return Err(Unusable(format!(
                "{}: the password is empty",
                auth.password.describe()
            )));
        }
        Ok(Credentials::new(
            auth.user.clone(),
            Secret::new(password),
            auth.auth_source.clone(),
        ))
    }

    /// `"<source>.<user>"`, as `hello`'s `saslSupportedMechs` asks.
    pub fn namespace(&self) -> String {
        format!("{}.{}", self.source, self.user)
    }

    /// The password as the mechanism hashes it: SHA-1 takes MongoDB's
    /// legacy digest hex(MD5("user:mongo:password")); SHA-256 the password
    /// itself, which SASLprep leaves unchanged when it is printable ASCII
    /// (the only kind accepted here).
    fn hashed_password(&self, mech: Mechanism) -> Result<Vec<u8>, ScramError> {
        let p = &self.password.0;
        match mech {
            Mechanism::Sha1 => {
                let d = md5::Md5::digest(format!("{}:mongo:{p}", self.user).as_bytes());
                Ok(hex(&d).into_bytes())
            }
            Mechanism::Sha256 => {
                if p.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    Ok(p.as_bytes().to_vec())
                } else {
                    Err(ScramError::Credentials("the password has characters outside printable ASCII, which would need SASLprep (not implemented)".into()))
                }
            }
        }
    }

    fn keys(
        &self,
        mech: Mechanism,
        salt: &[u8],
        iterations: u32,
    ) -> Result<(Vec<u8>, Vec<u8>), ScramError> {
        let key = (mech, salt.to_vec(), iterations);
        if let Some(k) = self.keys.lock().unwrap().get(&key) {
            return Ok(k.clone());
        }
        let (client, server) = derive_keys(mech, &self.hashed_password(mech)?, salt, iterations)?;
        self.keys
            .lock()
            .unwrap()
            .insert(key, (client.clone(), server.clone()));
        Ok((client, server))
    }
}

/// One SCRAM conversation, client side.
pub struct Conversation<'a> {
    creds: &'a Credentials,
    mech: Mechanism,
    nonce: String,
    expected_server_signature: Option<Vec<u8>>,
}

/// `=` and `,` in a user name are escaped (RFC 5802 §5.1).
fn sasl_name(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &str) -> Result<Vec<u8>, ScramError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| ScramError::Protocol(format!("bad base64 from the server: {e}")))
}

/// The attributes of a SCRAM message (`r=…,s=…,i=…`).
fn attributes(msg: &str) -> HashMap<char, &str> {
    msg.split(',')
        .filter_map(|part| {
            let mut chars = part.chars();
            let k = chars.next()?;
            part.get(1..)?.strip_prefix('=').map(|v| (k, v))
        })
        .collect()
}

impl<'a> Conversation<'a> {
    /// A conversation with a fresh random nonce.
    pub fn new(creds: &'a Credentials, mech: Mechanism) -> Conversation<'a> {
        let mut raw = [0u8; 24];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
            .expect("the system's random source");
        Self::with_nonce(creds, mech, b64(&raw))
    }

    /// A conversation with a given client nonce (base64; the RFC test vectors fix it).
    pub fn with_nonce(creds: &'a Credentials, mech: Mechanism, nonce: String) -> Conversation<'a> {
        Conversation {
            creds,
            mech,
            nonce,
            expected_server_signature: None,
        }
    }

    fn first_bare(&self) -> String {
        format!("n={},r={}", sasl_name(&self.creds.user), self.nonce)
    }

    /// The client-first message (gs2 header `n,,`: no channel binding).
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare()).into_bytes()
    }

    /// The client-final message, from the server-first one.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        use ScramError::Protocol;
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| Protocol("server-first message is not UTF-8".into()))?;
        let a = attributes(server_first);
        if let Some(e) = a.get(&'e') {
            return Err(ScramError::Refused(e.to_string()));
        }
        // RFC 5802 §5.1: "m" is reserved for a mandatory extension; a
        // client that does not know it must fail the authentication.
        if server_first.starts_with("m=") || a.contains_key(&'m') {
            return Err(Protocol(
                "the server-first message asks for a mandatory extension (m=) rekindle does not know".into(),
            ));
        }
        let (Some(r), Some(s), Some(i)) = (a.get(&'r'), a.get(&'s'), a.get(&'i')) else {
            return Err(Protocol(format!(
                "server-first message {server_first:?} lacks r, s or i"
            )));
        };
        if !r.starts_with(&self.nonce) || r.len() <= self.nonce.len() {
            return Err(Protocol("the server's nonce does not extend ours".into()));
        }
        let iterations: u32 = i
            .parse()
            .map_err(|_| Protocol(format!("iteration count {i:?} is not a number")))?;
        if iterations < self.mech.min_iterations() {
            return Err(Protocol(format!(
                "iteration count {iterations} is below {}'s minimum {}",
                self.mech.name(),
                self.mech.min_iterations()
            )));
        }
        let salt = unb64(s)?;
        let keys = self.creds.keys(self.mech, &salt, iterations)?;
        let without_proof = format!("c=biws,r={r}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare());
        let (proof, server_signature) = proof_and_signature(self.mech, &keys, &auth_message);
        self.expected_server_signature = Some(server_signature);
        Ok(format!("{without_proof},p={}", b64(&proof)).into_bytes())
    }

    /// Checks the server-final message: the server proves it knows the
    /// password too.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        use ScramError::Protocol;
        let text = std::str::from_utf8(server_final)
            .map_err(|_| Protocol("server-final message is not UTF-8".into()))?;
        let a = attributes(text);
        if let Some(e) = a.get(&'e') {
            return Err(ScramError::Refused(e.to_string()));
        }
        let v = a
            .get(&'v')
            .ok_or_else(|| Protocol(format!("server-final message {text:?} has no signature")))?;
        let expected = self
            .expected_server_signature
            .as_ref()
            .ok_or_else(|| Protocol("server-final before client-final".into()))?;
        if unb64(v)? != *expected {
            return Err(ScramError::ServerSignature);
        }
        Ok(())
    }
}

mod md5 {
    //! MD5 (RFC 1321), for SCRAM-SHA-1's legacy password digest only:
    //! ring has none, and it is a few lines.
    pub struct Md5;

    impl Md5 {
        pub fn digest(input: &[u8]) -> [u8; 16] {
            const S: [u32; 64] = [
                7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14,
                20, 5, 9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11,
                16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
            ];
            let k: Vec<u32> = (0..64)
                .map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32)
                .collect();
            let mut h: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
            let mut msg = input.to_vec();
            msg.push(0x80);
            while msg.len() % 64 != 56 {
                msg.push(0);
            }
            msg.extend_from_slice(&((input.len() as u64).wrapping_mul(8)).to_le_bytes());
            for chunk in msg.chunks(64) {
                let m: Vec<u32> = chunk
                    .chunks(4)
                    .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
                    .collect();
                let [mut a, mut b, mut c, mut d] = h;
                for i in 0..64 {
                    let (f, g) = match i / 16 {
                        0 => ((b & c) | (!b & d), i),
                        1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                        2 => (b ^ c ^ d, (3 * i + 5) % 16),
                        _ => (c ^ (b | !d), (7 * i) % 16),
                    };
                    let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
                    a = d;
                    d = c;
                    c = b;
                    b = b.wrapping_add(f.rotate_left(S[i]));
                }
                h[0] = h[0].wrapping_add(a);
                h[1] = h[1].wrapping_add(b);
                h[2] = h[2].wrapping_add(c);
                h[3] = h[3].wrapping_add(d);
            }
            let mut out = [0u8; 16];
            for (i, w) in h.iter().enumerate() {
                out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_rfc_1321_test_suite() {
        for (input, want) in [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ] {
            assert_eq!(hex(&md5::Md5::digest(input.as_bytes())), want, "{input:?}");
        }
    }

    /// RFC 7677 §3's example conversation: user "user", password
    /// "pencil", the client nonce given.
    #[test]
    fn sha256_conversation_is_rfc_7677s_example() {
        let creds = Credentials::new("user".into(), Secret::new("pencil".into()), "admin".into());
        let mut c =
            Conversation::with_nonce(&creds, Mechanism::Sha256, "rOprNGfwEbeRWgbNEkqO".into());
        assert_eq!(c.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = c.client_final(server_first).unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(c
            .verify_server_final(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .is_err());
    }

    /// MongoDB's SCRAM-SHA-1 example (auth spec): user "user", password
    /// "pencil", hashed as hex(MD5("user:mongo:pencil")).
    #[test]
    fn sha1_conversation_is_mongodbs_example() {
        let creds = Credentials::new("user".into(), Secret::new("pencil".into()), "admin".into());
        let mut c =
            Conversation::with_nonce(&creds, Mechanism::Sha1, "fyko+d2lbbFgONRv9qkxdawL".into());
        let client_final = c
            .client_final(b"r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,s=rQ9ZY3MntBeuP3E1TDVC4w==,i=10000")
            .unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,p=MC2T8BvbmWRckDw8oWl5IVghwCY="
        );
        c.verify_server_final(b"v=UMWeI25JD1yNYZRMpZ4VHvhZ9e0=")
            .unwrap();
    }

    #[test]
    fn a_server_that_does_not_extend_the_nonce_or_iterates_too_little_is_refused() {
        let creds = Credentials::new("u".into(), Secret::new("p".into()), "admin".into());
        let mut c = Conversation::with_nonce(&creds, Mechanism::Sha256, "abc".into());
        assert!(c.client_final(b"r=xyz123,s=AAAA,i=4096").is_err());
        assert!(c.client_final(b"r=abc123,s=AAAA,i=1000").is_err());
        assert!(c.client_final(b"e=other-error").is_err());
        assert!(c.client_final(b"garbage").is_err());
        assert!(!format!("{creds:?}").contains("\"p\""));
        assert!(format!("{creds:?}").contains("<redacted>"));
    }

    /// RFC 5802 §5's SCRAM-SHA-1 example, on the password itself (MongoDB
    /// hashes it first, which the conversation above covers): user "user",
    /// password "pencil".
    #[test]
    fn sha1_proof_and_signature_are_rfc_5802s_example() {
        let salt = unb64("QSXCR+Q6sek8bf92").unwrap();
        let keys = derive_keys(Mechanism::Sha1, b"pencil", &salt, 4096).unwrap();
        let auth = "n=user,r=fyko+d2lbbFgONRv9qkxdawL,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        let (proof, server) = proof_and_signature(Mechanism::Sha1, &keys, auth);
        assert_eq!(b64(&proof), "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
        assert_eq!(b64(&server), "rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    }

    #[test]
    fn a_mandatory_extension_is_refused() {
        let creds = Credentials::new("user".into(), Secret::new("pencil".into()), "admin".into());
        for first in [
            "m=ext,r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=abcdef,m=ext,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        ] {
            let mut c = Conversation::with_nonce(&creds, Mechanism::Sha256, "abc".into());
            match c.client_final(first.as_bytes()) {
                Err(ScramError::Protocol(m)) => assert!(m.contains("m="), "{m}"),
                other => panic!("{first}: {other:?}"),
            }
        }
    }

    /// After a conversation the derived keys are cached in the
    /// credentials; their Debug shows neither the password nor the keys.
    #[test]
    fn credentials_debug_shows_no_password_and_no_derived_key() {
        let creds = Credentials::new("user".into(), Secret::new("pencil".into()), "admin".into());
        let mut c =
            Conversation::with_nonce(&creds, Mechanism::Sha256, "rOprNGfwEbeRWgbNEkqO".into());
        c.client_final(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        let keys = creds
            .keys(
                Mechanism::Sha256,
                &unb64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
                4096,
            )
            .unwrap();
        let shown = format!("{creds:?} {creds:#?}");
        assert!(
            shown.contains("user") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert!(!shown.contains("pencil"), "{shown}");
        for key in [&keys.0, &keys.1] {
            // As Debug prints a Vec<u8>: its first bytes in decimal.
            let bytes = format!("{:?}", &key[..4]);
            assert!(!shown.contains(bytes.trim_end_matches(']')), "{shown}");
        }
    }

    #[test]
    fn mechanism_prefers_sha256() {
        let both = vec!["SCRAM-SHA-1".to_string(), "SCRAM-SHA-256".to_string()];
        assert_eq!(Mechanism::pick(Some(&both)), Ok(Mechanism::Sha256));
        assert_eq!(Mechanism::pick(Some(&both[..1])), Ok(Mechanism::Sha1));
        assert_eq!(Mechanism::pick(None), Ok(Mechanism::Sha1));
        assert!(Mechanism::pick(Some(&["PLAIN".to_string()])).is_err());
    }
}
