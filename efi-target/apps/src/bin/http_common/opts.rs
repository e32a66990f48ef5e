//! The options file the host writes to the ESP (`\efisock-args.txt`).
//!
//! Why a file: the boot entry passes no arguments (`env::args()` is only the
//! image path in OVMF), so, like the conformance suite runner, the host puts
//! `--name value` pairs in a file the app reads with `std::fs`. Unknown
//! names are errors (a typo must not silently fall back to a default).

use std::collections::BTreeMap;

/// Parsed `--name value` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opts {
    values: BTreeMap<String, String>,
}

impl Opts {
    /// Parses whitespace-separated `--name value` pairs, accepting only
    /// `known` names; each name at most once.
    pub fn parse(text: &str, known: &[&str]) -> Result<Self, String> {
        let mut values = BTreeMap::new();
        let mut it = text.split_whitespace();
        while let Some(word) = it.next() {
            let name = word
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --name, got '{word}'"))?;
            if !known.contains(&name) {
                return Err(format!(
                    "unknown option --{name} (known: --{})",
                    known.join(", --")
                ));
            }
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            if values.insert(name.to_string(), value.to_string()).is_some() {
                return Err(format!("--{name} given twice"));
            }
        }
        Ok(Opts { values })
    }

    /// The raw value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// `--name` as a string; required.
    pub fn string(&self, name: &str) -> Result<String, String> {
        self.get(name)
            .map(str::to_string)
            .ok_or_else(|| format!("missing --{name}"))
    }

    /// `--name` as an unsigned integer in `range`, or `default` if absent.
    pub fn u64_in(
        &self,
        name: &str,
        range: core::ops::RangeInclusive<u64>,
        default: Option<u64>,
    ) -> Result<u64, String> {
        let Some(raw) = self.get(name) else {
            return default.ok_or_else(|| format!("missing --{name}"));
        };
        let v: u64 = raw
            .parse()
            .map_err(|_| format!("--{name}: not an unsigned integer: '{raw}'"))?;
        if !range.contains(&v) {
            return Err(format!(
                "--{name} {v} is outside {}..={}",
                range.start(),
                range.end()
            ));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_rejects_misuse() {
        let o = Opts::parse("--port 8000\n--len 12 ", &["port", "len", "x"]).unwrap();
        assert_eq!(o.u64_in("port", 1..=65535, None), Ok(8000));
        assert_eq!(
            o.u64_in("len", 0..=10, None).unwrap_err(),
            "--len 12 is outside 0..=10"
        );
        assert_eq!(o.u64_in("x", 0..=10, Some(3)), Ok(3));
        assert!(o.u64_in("x", 0..=10, None).is_err());
        assert!(
            Opts::parse("--nope 1", &["port"])
                .unwrap_err()
                .contains("unknown option")
        );
        assert!(
            Opts::parse("--port", &["port"])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(Opts::parse("port 1", &["port"]).is_err());
        assert!(
            Opts::parse("--port 1 --port 2", &["port"])
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            Opts::parse("--port x", &["port"])
                .unwrap()
                .u64_in("port", 1..=2, None)
                .is_err()
        );
    }
}
