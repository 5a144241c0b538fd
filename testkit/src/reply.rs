//! What a service answered over HTTP, and the checks tests make on every answer, so each
//! check is one line that still shows the whole body when it fails.

use reqwest::header::HeaderMap;
use serde_json::Value;

/// One whole HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as sent (the probes' exact text, the metrics, the watch page).
    pub text: String,
    /// The body as JSON; `Null` when it is not JSON.
    pub body: Value,
}

impl Reply {
    /// Reads a response to its end.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            text,
            body,
        }
    }

    /// Asserts the status; returns the body.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        &self.body
    }

    /// Asserts an error answer, `{"error": code, "message": ...}` with `status`, as every
    /// service writes one; returns the body.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            (self.status, self.body["error"].as_str()),
            (status, Some(code)),
            "{}",
            self.text
        );
        &self.body
    }

    /// Asserts a processed request whose outcome is `code` (200 with `{"code": ...}`, as the
    /// gateway answers a bid, outbid included); returns the body.
    #[track_caller]
    pub fn assert_outcome(&self, code: &str) -> &Value {
        assert_eq!(
            (self.status, self.body["code"].as_str()),
            (200, Some(code)),
            "{}",
            self.text
        );
        &self.body
    }
}
