//! `CORS_ORIGINS`: the web origins whose pages may call the API (`routes::cors` builds the
//! layer from them).

use axum::http::HeaderValue;
use std::fmt;
use std::str::FromStr;

/// The allowed origins (`CORS_ORIGINS`: comma-separated; empty for none), each
/// `scheme://host[:port]`, exactly as browsers send it in `Origin`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CorsOrigins(Vec<HeaderValue>);

impl FromStr for CorsOrigins {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(parse_origin)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

fn parse_origin(text: &str) -> Result<HeaderValue, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    let host_ok = rest.is_some_and(|host| {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    });
    if !host_ok {
        return Err(format!(
            "`{text}` is not an origin: expected scheme://host[:port] with no path, \
             e.g. https://auction.example"
        ));
    }
    HeaderValue::from_str(text).map_err(|e| format!("`{text}`: {e}"))
}

impl CorsOrigins {
    /// Each origin as browsers send it in `Origin`.
    pub fn list(&self) -> &[HeaderValue] {
        &self.0
    }
}

impl fmt::Debug for CorsOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origins = self.0.iter().map(|o| o.to_str().unwrap_or("<non-ASCII>"));
        f.debug_list().entries(origins).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_a_scheme_and_a_host_with_an_optional_port_separated_by_commas() {
        let origins: CorsOrigins =
            "https://auction.example, http://localhost:3000,http://[::1]:8080"
                .parse()
                .expect("valid");
        assert_eq!(
            format!("{origins:?}"),
            r#"["https://auction.example", "http://localhost:3000", "http://[::1]:8080"]"#
        );
        assert_eq!("".parse::<CorsOrigins>(), Ok(CorsOrigins::default()));
    }

    #[test]
    fn an_origin_with_a_path_a_wildcard_or_no_scheme_is_refused() {
        for bad in [
            "https://auction.example/",
            "https://auction.example/app",
            "*",
            "auction.example",
            "ftp://auction.example",
            "https://",
        ] {
            assert!(bad.parse::<CorsOrigins>().is_err(), "{bad}");
        }
    }
}
