//! Keeps credentials out of logs: configuration `Debug` output shows URLs through this.
//!
//! [`SecretUrl`] holds a URL that may carry a password (`REDIS_URL`, `NATS_URL`,
//! `DATABASE_URL`). Its `Debug` and `Display` are redacted, so a configuration or an error
//! message that prints it cannot leak the secret; code that connects asks for the real text
//! with [`SecretUrl::expose`], which makes every such place easy to find.

use std::fmt;

/// A URL whose password never appears in `Debug` or `Display` output.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL with its credentials, for connecting. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&redact_url(&self.0), f)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// `scheme://user:secret@host/…` → `scheme://***@host/…`; URLs without credentials unchanged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_hidden() {
        assert_eq!(
            redact_url("redis://:pw@cache:6379"),
            "redis://***@cache:6379"
        );
        assert_eq!(
            redact_url("postgres://u:pw@db/auction"),
            "postgres://***@db/auction"
        );
    }

    #[test]
    fn a_secret_url_hides_its_password_in_debug_and_display() {
        let url = SecretUrl::from("postgres://app:hunter2@db:5432/auction");
        assert_eq!(url.to_string(), "postgres://***@db:5432/auction");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.expose(), "postgres://app:hunter2@db:5432/auction");
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }
}
