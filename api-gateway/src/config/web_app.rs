//! The web app's settings: where its pages find the broadcast WebSocket and which currency
//! they show (`routes::web_app` serves them in `/app/config.json`).

use std::fmt;
use std::str::FromStr;

/// `WEB_APP_WS_URL`: a `ws://` or `wss://` URL, or an absolute path on the app's origin.
#[derive(Clone, PartialEq, Eq)]
pub struct WebSocketUrl(String);

impl WebSocketUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `scheme://host[:port]` of an absolute URL, for the content security policy; `None` for
    /// a path on the app's own origin.
    pub(crate) fn origin(&self) -> Option<&str> {
        let (scheme, rest) = self.0.split_once("://")?;
        let host_end = rest.find('/').unwrap_or(rest.len());
        self.0.get(..scheme.len() + 3 + host_end)
    }
}

impl FromStr for WebSocketUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let valid_chars = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"\"'<>\\;`".contains(&b));
        let shape_ok = match text.split_once("://") {
            Some(("ws" | "wss", rest)) => !rest.is_empty() && !rest.starts_with('/'),
            Some(_) => false,
            None => text.starts_with('/') && !text.starts_with("//"),
        };
        if valid_chars && shape_ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "`{text}` is not a WebSocket URL: expected ws://host[:port]/path, \
                 wss://host/path or a path such as /ws"
            ))
        }
    }
}

impl fmt::Debug for WebSocketUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `WEB_APP_CURRENCY`: an ISO 4217 code (three capital letters).
#[derive(Clone, PartialEq, Eq)]
pub struct Currency(String);

impl Currency {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Currency {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "`{text}` is not an ISO 4217 currency code such as USD or EUR"
            ))
        }
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls_and_paths_are_accepted() {
        for ok in ["ws://127.0.0.1:8081/ws", "wss://auction.example/ws", "/ws"] {
            assert_eq!(ok.parse::<WebSocketUrl>().unwrap().as_str(), ok);
        }
    }

    #[test]
    fn other_schemes_protocol_relative_and_quoted_urls_are_rejected() {
        for bad in [
            "",
            "http://host/ws",
            "//host/ws",
            "ws:///ws",
            "ws",
            "ws://host/ws'; script-src *",
        ] {
            assert!(bad.parse::<WebSocketUrl>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn currency_is_three_capital_letters() {
        assert_eq!("EUR".parse::<Currency>().unwrap().as_str(), "EUR");
        for bad in ["usd", "US", "USDT", "U$D"] {
            assert!(bad.parse::<Currency>().is_err(), "{bad:?}");
        }
    }
}
