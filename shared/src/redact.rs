//! Keeps credentials out of logs: configuration `Debug` output shows URLs through this.

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
    fn urls_without_credentials_are_unchanged() {
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }
}
