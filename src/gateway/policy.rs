//! Room policy: which rooms a client may join, from glob patterns in the configuration and,
//! with JWT, from the token's claims.
//!
//! A pattern is a room name where `*` matches any run of characters (including none) and `?`
//! exactly one; every other character matches itself. Configured patterns may use `{user}`,
//! replaced by the client's user id *as literal text* (a user called `a*` does not get a
//! wildcard). A client may join a room when some allow pattern matches it and no deny pattern
//! does. The grant is computed once, at authentication, and kept until the client leaves.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::{Map, Value};

use super::config::{RoomRule, RoomsConfig};

/// Longest pattern, in characters (the longest room name).
pub const MAX_PATTERN_CHARS: usize = crate::protocol::MAX_ROOM_NAME_CHARS;
/// Most patterns a token's room claim may list; a token with more is refused.
pub const MAX_CLAIM_PATTERNS: usize = 64;
/// The placeholder for the user id in configured patterns.
pub const USER_PLACEHOLDER: &str = "{user}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `*`: any run of characters.
    Any,
    /// `?`: one character.
    One,
}

/// A compiled glob pattern over room names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    /// Compiles a pattern (no placeholders: `{` is literal).
    pub fn new(pattern: &str) -> Result<Self, String> {
        Self::build(pattern, None)
    }

    /// Checks a configured pattern: non-empty, not too long, and `{` only in `{user}`.
    pub fn check_template(template: &str) -> Result<(), String> {
        let mut rest = template;
        while let Some(i) = rest.find('{') {
            if !rest[i..].starts_with(USER_PLACEHOLDER) {
                return Err(format!(
                    "{template:?}: `{{` may only start the placeholder {USER_PLACEHOLDER}"
                ));
            }
            rest = &rest[i + USER_PLACEHOLDER.len()..];
        }
        Self::build(&template.replace(USER_PLACEHOLDER, "u"), None).map(|_| ())
    }

    /// Compiles a configured pattern for one user: `{user}` becomes the user id, literally.
    /// `None` when the pattern needs a user and the client has none.
    pub fn from_template(template: &str, user: Option<&str>) -> Option<Self> {
        if !template.contains(USER_PLACEHOLDER) {
            return Self::new(template).ok();
        }
        let user = user?;
        Self::build(template, Some(user)).ok()
    }

    fn build(pattern: &str, user: Option<&str>) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("a room pattern must not be empty".to_owned());
        }
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut rest = pattern;
        while let Some(c) = rest.chars().next() {
            if let Some(user) = user
                && let Some(after) = rest.strip_prefix(USER_PLACEHOLDER)
            {
                tokens.extend(user.chars().map(Token::Char));
                rest = after;
                continue;
            }
            tokens.push(match c {
                '*' => Token::Any,
                '?' => Token::One,
                c => Token::Char(c),
            });
            rest = &rest[c.len_utf8()..];
        }
        if tokens.len() > MAX_PATTERN_CHARS {
            return Err(format!(
                "{pattern:?} is longer than {MAX_PATTERN_CHARS} characters"
            ));
        }
        Ok(Self { tokens })
    }

    /// Whether `name` matches. Linear-time backtracking over the last `*` (no blow-up).
    pub fn matches(&self, name: &str) -> bool {
        let text: Vec<char> = name.chars().collect();
        let (mut t, mut p) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::Any) => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(Token::One) => {
                    p += 1;
                    t += 1;
                }
                Some(Token::Char(c)) if *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|tok| *tok == Token::Any)
    }
}

/// What one client may join.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    allow: Vec<Glob>,
    deny: Vec<Glob>,
}

impl Grant {
    /// Whether the client may join `room`.
    pub fn allows(&self, room: &str) -> bool {
        self.allow.iter().any(|g| g.matches(room)) && !self.deny.iter().any(|g| g.matches(room))
    }
}

/// The configured room policy, turned into a [`Grant`] per client at authentication.
#[derive(Debug, Clone)]
pub struct RoomPolicy {
    allow: Vec<String>,
    deny: Vec<String>,
    claim: Option<String>,
    rules: Vec<RoomRule>,
}

impl RoomPolicy {
    /// The policy of a validated `[rooms]` section.
    pub fn new(config: &RoomsConfig) -> Self {
        Self {
            allow: config.allow.clone().unwrap_or_default(),
            deny: config.deny.clone(),
            claim: config.claim.clone(),
            rules: config.rules.clone(),
        }
    }

    /// The grant of a client with this user id and (JWT) claims. Fails, naming the reason,
    /// when the room claim is malformed; the token is then refused.
    pub fn grant(
        &self,
        user: Option<&str>,
        claims: Option<&Map<String, Value>>,
    ) -> Result<Grant, String> {
        let templates = |list: &[String]| -> Vec<Glob> {
            list.iter()
                .filter_map(|t| Glob::from_template(t, user))
                .collect()
        };
        let mut allow = templates(&self.allow);
        let deny = templates(&self.deny);
        if let Some(claims) = claims {
            if let Some(name) = &self.claim {
                allow.extend(claim_patterns(name, claims.get(name))?);
            }
            for rule in &self.rules {
                if claims
                    .get(&rule.claim)
                    .is_some_and(|v| claim_equals(v, &rule.equals))
                {
                    allow.extend(templates(&rule.allow));
                }
            }
        }
        Ok(Grant { allow, deny })
    }
}

/// The patterns listed in a room claim: a string or an array of strings; absent is none.
fn claim_patterns(name: &str, value: Option<&Value>) -> Result<Vec<Glob>, String> {
    let list: Vec<&str> = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| format!("claim {name:?} must list strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(format!(
                "claim {name:?} must be a string or a list of strings"
            ));
        }
    };
    if list.len() > MAX_CLAIM_PATTERNS {
        return Err(format!(
            "claim {name:?} lists more than {MAX_CLAIM_PATTERNS} patterns"
        ));
    }
    list.into_iter()
        .map(|p| Glob::new(p).map_err(|e| format!("claim {name:?}: {e}")))
        .collect()
}

fn claim_equals(value: &Value, expected: &str) -> bool {
    match value {
        Value::String(s) => s == expected,
        Value::Bool(b) => b.to_string() == expected,
        Value::Number(n) => n.to_string() == expected,
        Value::Array(items) => items.iter().any(|v| claim_equals(v, expected)),
        Value::Null | Value::Object(_) => false,
    }
}

/// The grants of the clients on this instance, by client id.
///
/// Entries are added at authentication and removed when the client disconnects; a periodic
/// [`Grants::retain`] drops those of clients that never completed (e.g. closed during the
/// encryption handshake), so the map cannot grow without bound.
#[derive(Debug, Default)]
pub struct Grants {
    // std Mutex: held for one map operation, never across an await.
    map: Mutex<HashMap<String, Arc<Grant>>>,
}

impl Grants {
    /// Records a client's grant.
    pub fn insert(&self, client_id: &str, grant: Grant) {
        if let Ok(mut map) = self.map.lock() {
            map.insert(client_id.to_owned(), Arc::new(grant));
        }
    }

    /// A client's grant.
    pub fn get(&self, client_id: &str) -> Option<Arc<Grant>> {
        self.map.lock().ok()?.get(client_id).cloned()
    }

    /// Forgets a client.
    pub fn remove(&self, client_id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(client_id);
        }
    }

    /// Keeps only the clients for which `live` is true.
    pub fn retain(&self, mut live: impl FnMut(&str) -> bool) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|id, _| live(id));
        }
    }

    /// How many clients have a grant.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no client has a grant.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn glob(p: &str) -> Glob {
        Glob::new(p).unwrap()
    }

    #[test]
    fn globs_match_like_shell_patterns() {
        assert!(glob("chat-*").matches("chat-lobby"));
        assert!(glob("chat-*").matches("chat-"));
        assert!(!glob("chat-*").matches("chat"));
        assert!(!glob("chat-*").matches("xchat-lobby"));
        assert!(glob("*").matches(""));
        assert!(glob("a*b*c").matches("a-x-b-y-c"));
        assert!(!glob("a*b*c").matches("a-x-c-y-b"));
        assert!(glob("room-?").matches("room-7"));
        assert!(!glob("room-?").matches("room-77"));
        assert!(glob("é*ü").matches("é-ß-ü"));
        assert!(glob("exact").matches("exact") && !glob("exact").matches("exact2"));
        // Pathological input stays linear.
        let long = "a".repeat(256);
        assert!(!glob("*a*a*a*a*a*a*b").matches(&long));
    }

    #[test]
    fn user_placeholder_is_literal() {
        let g = Glob::from_template("user-{user}", Some("a*")).unwrap();
        assert!(g.matches("user-a*"));
        assert!(!g.matches("user-abc"));
        assert!(Glob::from_template("user-{user}", None).is_none());
        assert!(Glob::check_template("user-{user}-*").is_ok());
        assert!(Glob::check_template("user-{id}").is_err());
        assert!(Glob::check_template("").is_err());
    }

    #[test]
    fn grants_combine_config_claims_and_rules() {
        let policy = RoomPolicy::new(&RoomsConfig {
            allow: Some(vec!["public-*".into(), "user-{user}".into()]),
            deny: vec!["public-secret".into()],
            claim: Some("rooms".into()),
            rules: vec![RoomRule {
                claim: "role".into(),
                equals: "admin".into(),
                allow: vec!["admin-*".into()],
            }],
        });
        let claims = json!({"sub": "alice", "rooms": ["team-a-*"], "role": ["dev", "admin"]});
        let g = policy.grant(Some("alice"), claims.as_object()).unwrap();
        for ok in ["public-1", "user-alice", "team-a-x", "admin-ops"] {
            assert!(g.allows(ok), "{ok}");
        }
        for no in ["public-secret", "user-bob", "team-b-x", "other"] {
            assert!(!g.allows(no), "{no}");
        }
        let plain = policy
            .grant(Some("bob"), json!({"role": "dev"}).as_object())
            .unwrap();
        assert!(!plain.allows("admin-ops") && plain.allows("user-bob"));
        let bad = json!({"rooms": 5});
        assert!(policy.grant(Some("x"), bad.as_object()).is_err());
        let many: Vec<String> = (0..=MAX_CLAIM_PATTERNS).map(|i| format!("r{i}")).collect();
        let too_many = json!({ "rooms": many });
        assert!(policy.grant(Some("x"), too_many.as_object()).is_err());
    }
}
