//! The client side of the bearer-token flow, for the testkit's own helpers
//! ([`Pusher`](crate::Pusher) and the checks of
//! [`RegistryProcess`](crate::RegistryProcess)): deliberately minimal, and
//! independent of `ferry-registry`, the code under test.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::token::TokenAuth;

/// Client side of the flow for the testkit's own helpers: a token per scope,
/// fetched once from the realm with the account's basic credentials.
#[derive(Debug)]
pub(crate) struct BearerTokens {
    auth: TokenAuth,
    client: reqwest::blocking::Client,
    cache: Mutex<HashMap<String, String>>,
}

impl BearerTokens {
    pub(crate) fn new(auth: TokenAuth) -> BearerTokens {
        BearerTokens {
            auth,
            client: crate::push::test_client(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `Bearer TOKEN` for the request path `path` (`/v2/REPO/...`): all
    /// actions on the repository, or the catalog.
    pub(crate) fn header_for(&self, path: &str) -> String {
        let scope = scope_for_path(path);
        let mut cache = self.cache.lock().expect("token cache");
        if let Some(token) = cache.get(&scope) {
            return format!("Bearer {token}");
        }
        let mut request = self.client.get(&self.auth.realm).query(&[
            ("service", self.auth.service.as_str()),
            ("scope", scope.as_str()),
        ]);
        if let Some((user, password)) = &self.auth.account {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .unwrap_or_else(|e| panic!("token request to {}: {e}", self.auth.realm));
        assert!(
            response.status().is_success(),
            "token request to {} for {scope}: {}",
            self.auth.realm,
            response.status()
        );
        let body: serde_json::Value = response.json().expect("a JSON token answer");
        let token = body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .expect("a token in the answer")
            .to_string();
        cache.insert(scope, token.clone());
        format!("Bearer {token}")
    }
}

/// The scope a testkit request to `path` needs.
fn scope_for_path(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let path = match path.find("/v2/") {
        Some(i) => &path[i + 4..],
        None => path,
    };
    if path.starts_with("_catalog") {
        return "registry:catalog:*".to_string();
    }
    let repo = ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|marker| path.rfind(marker))
        .min()
        .map_or(path, |i| &path[..i]);
    format!("repository:{repo}:pull,push,delete")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_from_paths() {
        assert_eq!(
            scope_for_path("http://h:1/v2/a/b/blobs/uploads/x?state=1"),
            "repository:a/b:pull,push,delete"
        );
        assert_eq!(
            scope_for_path("/v2/fixtures/base/manifests/1"),
            "repository:fixtures/base:pull,push,delete"
        );
        assert_eq!(scope_for_path("/v2/_catalog?n=100"), "registry:catalog:*");
    }
}
