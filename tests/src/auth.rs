//! API tokens for the scenarios. The town and province APIs need a bearer
//! token (auth is on by default, as in production; SECURITY.md), so every
//! scenario that reads them gives the one admin [`token`] of its test
//! process to the data dirs it starts services in ([`provision`]) and
//! talks through a [`client`] that sends it. The wards' API takes no token
//! and ignores the header.
//!
//! `tests/tests/e2e/http_auth.rs` is where the guard itself is attacked;
//! it makes tokens of every role with the real `token` commands.

use std::path::Path;
use std::sync::OnceLock;

use treem_auth::{Role, Token, TokenStore};

/// The admin token of this test process (each nextest test is a process).
pub fn token() -> &'static Token {
    static TOKEN: OnceLock<Token> = OnceLock::new();
    TOKEN.get_or_init(|| Token::generate().expect("a random token"))
}

/// `Bearer <token>`.
pub fn bearer() -> String {
    format!("Bearer {}", token().expose())
}

/// Gives [`token`] (admin) to the town or province whose data dir is
/// `data_dir`, creating the dir if needed; does nothing the second time.
/// Works before the service starts and while it runs.
pub fn provision(data_dir: &Path) {
    let store = TokenStore::open(&treem_auth::auth_dir(data_dir))
        .unwrap_or_else(|e| panic!("opening the token store of {}: {e}", data_dir.display()));
    if !store.list().expect("list tokens").iter().any(|t| t.id == token().id()) {
        store.add(token(), "treem tests", Role::Admin).expect("add the test token");
    }
}

/// The default headers that carry [`token`].
pub fn headers() -> reqwest::header::HeaderMap {
    let mut value = reqwest::header::HeaderValue::from_str(&bearer()).expect("a token is a valid header value");
    value.set_sensitive(true);
    reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)])
}

/// An HTTP client that sends [`token`] with every request.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().default_headers(headers()).build().expect("an HTTP client")
}
