//! A minimal JSON object writer for the machine-readable result lines.
//!
//! The application prints one JSON object per line after a fixed prefix so
//! the host can parse results from a noisy serial log; pulling in serde for
//! a handful of flat objects would dominate the no_std build.

use alloc::string::String;
use core::fmt::Write;

/// Builds one JSON object, field by field, in insertion order.
#[derive(Debug, Default)]
pub struct JsonObject {
    buf: String,
}

impl JsonObject {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, key: &str) {
        self.buf.push(if self.buf.is_empty() { '{' } else { ',' });
        push_escaped(&mut self.buf, key);
        self.buf.push(':');
    }

    /// Adds a string field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        push_escaped(&mut self.buf, value);
        self
    }

    /// Adds an unsigned integer field.
    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        let _ = write!(self.buf, "{value}");
        self
    }

    /// Adds a boolean field.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.buf.push_str(if value { "true" } else { "false" });
        self
    }

    /// Adds an array of unsigned integers.
    pub fn u64_array(&mut self, key: &str, values: &[u64]) -> &mut Self {
        self.key(key);
        self.buf.push('[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            let _ = write!(self.buf, "{v}");
        }
        self.buf.push(']');
        self
    }

    /// Adds an already-serialised JSON value (e.g. a nested object).
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.buf.push_str(json);
        self
    }

    /// The finished object text.
    pub fn finish(&self) -> String {
        if self.buf.is_empty() {
            return String::from("{}");
        }
        let mut s = self.buf.clone();
        s.push('}');
        s
    }
}

fn push_escaped(buf: &mut String, s: &str) {
    buf.push('"');
    for c in s.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            '\t' => buf.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(buf, "\\u{:04x}", c as u32);
            }
            c => buf.push(c),
        }
    }
    buf.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_flat_object_in_order() {
        let mut o = JsonObject::new();
        o.str("step", "dhcp")
            .u64("ms", 3500)
            .bool("ok", true)
            .u64_array("sizes", &[1440, 7]);
        assert_eq!(
            o.finish(),
            r#"{"step":"dhcp","ms":3500,"ok":true,"sizes":[1440,7]}"#
        );
    }

    #[test]
    fn escapes_strings() {
        let mut o = JsonObject::new();
        o.str("k\"", "a\\b\n\u{1}");
        assert_eq!(o.finish(), r#"{"k\"":"a\\b\n\u0001"}"#);
    }

    #[test]
    fn empty_object_and_nesting() {
        let inner = JsonObject::new().finish();
        assert_eq!(inner, "{}");
        let mut o = JsonObject::new();
        o.raw("inner", &inner).u64_array("e", &[]);
        assert_eq!(o.finish(), r#"{"inner":{},"e":[]}"#);
    }
}
