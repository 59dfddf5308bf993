//! A JSON object read only one level deep: keys and the raw text of their values.
//!
//! Bodies that pass through the gateway unchanged (an OpenAI request's messages, an
//! OpenAI response's choices) are copied byte for byte instead of being parsed into a
//! tree and written out again.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

#[derive(Debug, Default)]
pub struct RawObject<'a>(pub Vec<(std::borrow::Cow<'a, str>, &'a RawValue)>);

impl<'a> RawObject<'a> {
    pub fn parse(json: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Writes the object back out, replacing or dropping fields with `edit`
    /// (`None` drops the field, `Some(text)` replaces its value), then appending `extra`
    /// fields (`(key, raw JSON text)`).
    pub fn write_with(
        &self,
        out: &mut Vec<u8>,
        mut edit: impl FnMut(&str) -> Option<Option<String>>,
        extra: &[(&str, &str)],
    ) {
        out.push(b'{');
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !first {
                out.push(b',');
            }
            first = false;
        };
        for (k, v) in &self.0 {
            let value = match edit(k) {
                None => Some(v.get().to_owned()),
                Some(replacement) => replacement,
            };
            if let Some(value) = value {
                sep(out);
                write_key(out, k);
                out.extend_from_slice(value.as_bytes());
            }
        }
        for (k, v) in extra {
            sep(out);
            write_key(out, k);
            out.extend_from_slice(v.as_bytes());
        }
        out.push(b'}');
    }
}

fn write_key(out: &mut Vec<u8>, k: &str) {
    // serde_json escapes the key exactly as JSON requires.
    if let Ok(s) = serde_json::to_string(k) {
        out.extend_from_slice(s.as_bytes());
    }
    out.push(b':');
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) =
                    m.next_entry::<std::borrow::Cow<'de, str>, &'de RawValue>()?
                {
                    v.push((k, val));
                }
                Ok(RawObject(v))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_edits_without_touching_other_values() {
        let body = br#"{"model":"x","messages":[{"role":"user","content":"hi \u00e9"}],"provider":{"a":1}}"#;
        let o = RawObject::parse(body).expect("object");
        let mut out = Vec::new();
        o.write_with(
            &mut out,
            |k| match k {
                "model" => Some(Some("\"gpt-4o\"".into())),
                "provider" => Some(None),
                _ => None,
            },
            &[("stream", "true")],
        );
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi \u00e9"}],"stream":true}"#
        );
    }
}
