//! The web app at `/app/`: every file of `web/app/` is embedded and served with its type,
//! `/app/config.json` says where the WebSocket is and which currency, `/` leads to the app, and
//! none of it is an API route (the OpenAPI test lists those).

use crate::helpers::*;
use api_gateway::routes::web_app::ASSETS;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/app")
}

/// Every file under `dir`, as paths relative to it with `/` separators.
fn files_under(dir: &Path, prefix: &str, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("web/app is readable") {
        let entry = entry.expect("a directory entry");
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().expect("a file type").is_dir() {
            files_under(&entry.path(), &format!("{name}/"), found);
        } else {
            found.insert(name);
        }
    }
}

#[tokio::test]
async fn every_file_of_the_web_app_is_served_with_its_content_type() {
    let mut on_disk = BTreeSet::new();
    files_under(&app_dir(), "", &mut on_disk);
    let embedded: BTreeSet<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
    assert_eq!(
        embedded, on_disk,
        "routes/web_app.rs lists exactly web/app's files"
    );

    let app = spawn_app().await;
    for asset in ASSETS {
        let reply = app.get(&format!("/app/{}", asset.path)).await;
        assert_eq!(reply.status, 200, "{}: {}", asset.path, reply.text);
        assert_eq!(
            reply.headers["content-type"], asset.content_type,
            "{}",
            asset.path
        );
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        let on_disk = std::fs::read(app_dir().join(asset.path)).expect("the file");
        assert_eq!(
            reply.text.as_bytes(),
            on_disk.as_slice(),
            "{} as on disk",
            asset.path
        );
    }
    let index = app.get("/app/").await;
    assert_eq!(index.status, 200);
    assert!(
        index
            .text
            .contains(r#"<script type="module" src="js/main.js">"#)
    );
    let policy = index.headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("default-src 'self'") && policy.contains("ws://127.0.0.1:8081"),
        "{policy}"
    );
}

#[tokio::test]
async fn config_json_names_the_configured_websocket_and_currency() {
    let app = spawn_app().await;
    let reply = app.get("/app/config.json").await;
    let body = reply.assert_status(200);
    assert_eq!(body["ws_url"], "ws://127.0.0.1:8081/ws");
    assert_eq!(body["currency"], "USD");

    let mut config = shared_config();
    config.web_app.web_app_ws_url = "/ws".parse().unwrap();
    config.web_app.web_app_currency = "EUR".parse().unwrap();
    let app = spawn_app_with(config).await;
    let body = app.get("/app/config.json").await.body;
    assert_eq!(
        (body["ws_url"].as_str(), body["currency"].as_str()),
        (Some("/ws"), Some("EUR"))
    );
    let policy = app.get("/app/").await.headers["content-security-policy"].clone();
    assert!(
        policy.to_str().unwrap().contains("connect-src 'self';"),
        "{policy:?}"
    );
}

#[tokio::test]
async fn the_root_redirects_to_the_app_and_an_unknown_file_is_a_json_404() {
    let app = spawn_app().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/", "/app"] {
        let reply = no_redirects.get(app.url(path)).send().await.unwrap();
        assert_eq!(reply.status(), 307, "{path}");
        assert_eq!(reply.headers()["location"], "/app/", "{path}");
    }
    for path in ["/app/nope.js", "/app/js/../../Cargo.toml", "/app/js/"] {
        app.get(path).await.assert_error(404, "not_found");
    }
}
