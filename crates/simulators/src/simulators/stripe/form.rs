//! Form bodies (`application/x-www-form-urlencoded`) in Stripe's bracket notation:
//! `line_items[0][price_data][product_data][name]=LLM+credits` becomes a tree of
//! hashes, and a hash whose keys are all integers is an array (the SDKs always send
//! indexed arrays). Keys may arrive with literal brackets or with `%5B` / `%5D`, since
//! the body is decoded before the keys are split.
//!
//! [`Fields`] reads one level of that tree the way Stripe checks it, naming each
//! parameter by its full path (`line_items[1][quantity]`) in the errors.

use std::collections::BTreeMap;

use super::ApiError;

/// One parameter: a string or a hash of parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Param {
    Value(String),
    Hash(BTreeMap<String, Param>),
}

/// The decoded `(key, value)` pairs of a form body or query string, in order (`+` is a
/// space; malformed escapes are kept as they are).
pub(super) fn pairs(body: &[u8]) -> Vec<(String, String)> {
    body.split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut parts = pair.splitn(2, |b| *b == b'=');
            let key = parts.next().unwrap_or_default();
            let value = parts.next().unwrap_or_default();
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(raw: &[u8]) -> String {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Builds the parameter tree. A later value for the same key replaces the earlier one.
pub(super) fn tree(pairs: &[(String, String)]) -> Result<BTreeMap<String, Param>, ApiError> {
    let mut root = BTreeMap::new();
    for (key, value) in pairs {
        let path = split_key(key).ok_or_else(|| {
            ApiError::invalid(format!("Invalid parameter name: {key}"), Some(key), None)
        })?;
        insert(&mut root, &path, value.clone()).map_err(|()| {
            ApiError::invalid(
                format!("Invalid request: {key} is given both as a value and as a hash"),
                Some(key),
                None,
            )
        })?;
    }
    Ok(root)
}

/// `a[b][c]` → `["a", "b", "c"]`; `None` for an empty name, empty brackets (`a[]`, the
/// unindexed array form the SDKs never send) or text after a closing bracket.
fn split_key(key: &str) -> Option<Vec<String>> {
    let (head, mut rest) = match key.find('[') {
        Some(i) => key.split_at(i),
        None => (key, ""),
    };
    if head.is_empty() || head.contains(']') {
        return None;
    }
    let mut path = vec![head.to_owned()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        let segment = &inner[..end];
        if segment.is_empty() || segment.contains('[') {
            return None;
        }
        path.push(segment.to_owned());
        rest = &inner[end + 1..];
    }
    Some(path)
}

fn insert(map: &mut BTreeMap<String, Param>, path: &[String], value: String) -> Result<(), ()> {
    let Some((first, rest)) = path.split_first() else {
        return Err(());
    };
    if rest.is_empty() {
        if matches!(map.get(first), Some(Param::Hash(_))) {
            return Err(());
        }
        map.insert(first.clone(), Param::Value(value));
        return Ok(());
    }
    match map
        .entry(first.clone())
        .or_insert_with(|| Param::Hash(BTreeMap::new()))
    {
        Param::Hash(inner) => insert(inner, rest, value),
        Param::Value(_) => Err(()),
    }
}

/// One level of parameters and the path that names them.
pub(super) struct Fields<'a> {
    path: String,
    map: &'a BTreeMap<String, Param>,
}

impl<'a> Fields<'a> {
    pub(super) fn root(map: &'a BTreeMap<String, Param>) -> Self {
        Fields {
            path: String::new(),
            map,
        }
    }

    /// The full name of `key` at this level, as Stripe writes it in `param`.
    pub(super) fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}[{key}]", self.path)
        }
    }

    /// The full name of this level (`metadata`, `line_items[0]`).
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// Refuses the first key that is not in `known` (Stripe's `parameter_unknown`).
    pub(super) fn reject_unknown(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(key) => {
                let name = self.name(key);
                Err(ApiError::invalid(
                    format!("Received unknown parameter: {name}"),
                    Some(&name),
                    Some("parameter_unknown"),
                ))
            }
            None => Ok(()),
        }
    }

    /// A string parameter; an empty string counts as absent (Stripe reads it as
    /// "unset"), a hash is refused.
    pub(super) fn string(&self, key: &str) -> Result<Option<&'a str>, ApiError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Param::Value(v)) if v.is_empty() => Ok(None),
            Some(Param::Value(v)) => Ok(Some(v)),
            Some(Param::Hash(_)) => {
                let name = self.name(key);
                Err(ApiError::invalid(
                    format!("Invalid string: {name} must be a string, not a hash"),
                    Some(&name),
                    None,
                ))
            }
        }
    }

    /// A required string parameter: absent → `parameter_missing`, empty →
    /// `parameter_invalid_empty`.
    pub(super) fn required_string(&self, key: &str) -> Result<&'a str, ApiError> {
        let name = self.name(key);
        if matches!(self.map.get(key), Some(Param::Value(v)) if v.is_empty()) {
            return Err(ApiError::invalid(
                format!(
                    "You passed an empty string for '{name}'. We assume empty values are an attempt to unset a parameter; however '{name}' cannot be unset. You should remove '{name}' from your request or supply a non-empty value."
                ),
                Some(&name),
                Some("parameter_invalid_empty"),
            ));
        }
        self.string(key)?.ok_or_else(|| ApiError::missing(&name))
    }

    /// A required integer parameter no lower than `min`.
    pub(super) fn required_integer(&self, key: &str, min: u64) -> Result<u64, ApiError> {
        let name = self.name(key);
        let text = self.required_string(key)?;
        let value: i64 = text.parse().map_err(|_| {
            ApiError::invalid(
                format!("Invalid integer: {text}"),
                Some(&name),
                Some("parameter_invalid_integer"),
            )
        })?;
        u64::try_from(value)
            .ok()
            .filter(|v| *v >= min)
            .ok_or_else(|| {
                ApiError::invalid(
                    format!("This value must be greater than or equal to {min}."),
                    Some(&name),
                    None,
                )
            })
    }

    /// A hash parameter; `key=` (empty) counts as absent, any other string is refused.
    pub(super) fn hash(&self, key: &str) -> Result<Option<Fields<'a>>, ApiError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Param::Value(v)) if v.is_empty() => Ok(None),
            Some(Param::Hash(map)) => Ok(Some(Fields {
                path: self.name(key),
                map,
            })),
            Some(Param::Value(_)) => {
                let name = self.name(key);
                Err(ApiError::invalid(
                    "Invalid hash".to_owned(),
                    Some(&name),
                    None,
                ))
            }
        }
    }

    /// An array parameter (a hash with integer keys), its items in index order.
    pub(super) fn array(&self, key: &str) -> Result<Option<Vec<Fields<'a>>>, ApiError> {
        let Some(hash) = self.hash(key)? else {
            return Ok(None);
        };
        let invalid = || ApiError::invalid("Invalid array".to_owned(), Some(&hash.path), None);
        let mut items = Vec::with_capacity(hash.map.len());
        for (index, value) in hash.map {
            let index: usize = index.parse().map_err(|_| invalid())?;
            let Param::Hash(map) = value else {
                return Err(invalid());
            };
            items.push((index, map));
        }
        items.sort_by_key(|(index, _)| *index);
        Ok(Some(
            items
                .into_iter()
                .map(|(index, map)| Fields {
                    path: format!("{}[{index}]", hash.path),
                    map,
                })
                .collect(),
        ))
    }

    /// The string values of a hash of strings (metadata); a nested hash is refused.
    pub(super) fn strings(&self) -> Result<BTreeMap<String, String>, ApiError> {
        let mut out = BTreeMap::new();
        for key in self.map.keys() {
            if let Some(value) = self.string(key)? {
                out.insert(key.clone(), value.to_owned());
            }
        }
        Ok(out)
    }
}
