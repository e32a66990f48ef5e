//! A case's recording as JSON (files) and as chunked serial lines (OVMF).
//!
//! File: one JSON object per line, `{"id","seed","dropped","steps":[str]}`,
//! each step in [`RawStep`]'s text form; a file may hold several cases.
//! Serial: `EFISOCK-CALLS {"id","seed","part","steps":[str]}` lines of at
//! most [`STEPS_PER_LINE`] steps each, then
//! `EFISOCK-CALLSEND {"id","seed","parts","steps","dropped"}`, so no console
//! line grows with the size of a transfer and a lost line is detected.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::step::RawStep;
use crate::error::ParseError;
use crate::guest::PREFIX;

/// Steps per `EFISOCK-CALLS` line.
pub const STEPS_PER_LINE: usize = 40;

/// The call-level recording of one case at one seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// `group/name`.
    pub id: String,
    /// The seed the case ran with.
    pub seed: u64,
    /// The steps, in order.
    pub steps: Vec<RawStep>,
    /// Steps not kept (over [`super::MAX_STEPS`]).
    pub dropped: u64,
}

/// Why a recording could not be read (or a replay could not start).
#[derive(Debug)]
pub enum CallLogError {
    /// The file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of the file is not a recording.
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        error: ParseError,
    },
    /// The file holds no recording.
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The recording names a case this build does not have.
    UnknownCase {
        /// The case id in the recording.
        id: String,
    },
}

impl fmt::Display for CallLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallLogError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CallLogError::Malformed { path, line, error } => {
                write!(f, "{}:{line}: {error}", path.display())
            }
            CallLogError::Empty { path } => write!(
                f,
                "{}: no call-level recording in the file (expected JSON lines \
                 {{\"id\",\"seed\",\"dropped\",\"steps\"}} as written by --record)",
                path.display()
            ),
            CallLogError::UnknownCase { id } => write!(
                f,
                "the recording is of case {id:?}, which this build does not have \
                 (see --list)"
            ),
        }
    }
}

impl std::error::Error for CallLogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallLogError::Io { source, .. } => Some(source),
            CallLogError::Malformed { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn steps_json(steps: &[RawStep]) -> serde_json::Value {
    serde_json::Value::Array(
        steps
            .iter()
            .map(|s| serde_json::Value::String(s.to_string()))
            .collect(),
    )
}

fn parse_steps(v: &serde_json::Value, body: &str) -> Result<Vec<RawStep>, ParseError> {
    let arr = v
        .get("steps")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| ParseError::new(body, "no \"steps\" array"))?;
    arr.iter()
        .map(|s| {
            s.as_str()
                .ok_or_else(|| ParseError::new(s.to_string(), format!("step {s} is not a string")))?
                .parse()
        })
        .collect()
}

fn field_u64(v: &serde_json::Value, k: &str, body: &str) -> Result<u64, ParseError> {
    v.get(k)
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| ParseError::new(body, format!("no number field {k:?}")))
}

fn field_str(v: &serde_json::Value, k: &str, body: &str) -> Result<String, ParseError> {
    v.get(k)
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ParseError::new(body, format!("no string field {k:?}")))
}

fn json(body: &str) -> Result<serde_json::Value, ParseError> {
    serde_json::from_str(body).map_err(|e| ParseError::new(body, format!("not JSON ({e})")))
}

impl Recording {
    /// The one-line JSON form (a line of a recording file).
    pub fn to_json_line(&self) -> String {
        serde_json::json!({
            "id": self.id,
            "seed": self.seed,
            "dropped": self.dropped,
            "steps": steps_json(&self.steps),
        })
        .to_string()
    }

    /// Parses one line of a recording file.
    pub fn from_json_line(body: &str) -> Result<Recording, ParseError> {
        let v = json(body)?;
        Ok(Recording {
            id: field_str(&v, "id", body)?,
            seed: field_u64(&v, "seed", body)?,
            dropped: field_u64(&v, "dropped", body)?,
            steps: parse_steps(&v, body)?,
        })
    }

    /// The serial lines that carry this recording out of OVMF.
    pub fn serial_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (part, chunk) in self.steps.chunks(STEPS_PER_LINE).enumerate() {
            let v = serde_json::json!({
                "id": self.id, "seed": self.seed, "part": part, "steps": steps_json(chunk),
            });
            out.push(format!("{PREFIX}CALLS {v}"));
        }
        let parts = self.steps.len().div_ceil(STEPS_PER_LINE);
        let v = serde_json::json!({
            "id": self.id, "seed": self.seed, "parts": parts,
            "steps": self.steps.len(), "dropped": self.dropped,
        });
        out.push(format!("{PREFIX}CALLSEND {v}"));
        out
    }

    /// A file name for this recording: `group.name.seed.jsonl`.
    pub fn file_name(&self) -> String {
        format!("{}.{:#x}.jsonl", self.id.replace('/', "."), self.seed)
    }

    /// Writes this recording as a one-line file named [`Self::file_name`]
    /// in `dir` (created if missing); returns the path.
    pub fn write_to(&self, dir: &Path) -> Result<PathBuf, CallLogError> {
        let path = dir.join(self.file_name());
        let io = |source| CallLogError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::write(&path, self.to_json_line() + "\n").map_err(io)?;
        Ok(path)
    }
}

/// Parses a recording file's text (JSON lines; blank lines are skipped).
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<Recording>, CallLogError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let rec = Recording::from_json_line(line).map_err(|error| CallLogError::Malformed {
            path: path.to_path_buf(),
            line: i + 1,
            error,
        })?;
        out.push(rec);
    }
    if out.is_empty() {
        return Err(CallLogError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Reads a recording file.
pub fn read_file(path: &Path) -> Result<Vec<Recording>, CallLogError> {
    let text = std::fs::read_to_string(path).map_err(|source| CallLogError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(path, &text)
}

#[derive(Debug, Default)]
struct Partial {
    steps: Vec<RawStep>,
    parts: usize,
}

/// Reassembles recordings from `EFISOCK-CALLS` / `EFISOCK-CALLSEND` line
/// bodies, checking that no part is missing or out of order.
#[derive(Debug, Default)]
pub struct SerialAssembler {
    open: BTreeMap<(String, u64), Partial>,
    /// Recordings completed so far, in order.
    pub done: Vec<Recording>,
    /// What went wrong (bad lines, missing parts).
    pub problems: Vec<String>,
}

impl SerialAssembler {
    /// Feeds the body of an `EFISOCK-CALLS` line.
    pub fn part(&mut self, body: &str) {
        let r = (|| -> Result<(), ParseError> {
            let v = json(body)?;
            let key = (field_str(&v, "id", body)?, field_u64(&v, "seed", body)?);
            let part = field_u64(&v, "part", body)?;
            let steps = parse_steps(&v, body)?;
            let p = self.open.entry(key.clone()).or_default();
            if part != p.parts as u64 {
                return Err(ParseError::new(
                    body,
                    format!(
                        "CALLS part {part} of {} seed {:#x} where part {} was due (a line was lost)",
                        key.0, key.1, p.parts
                    ),
                ));
            }
            p.parts += 1;
            p.steps.extend(steps);
            Ok(())
        })();
        if let Err(e) = r {
            self.problems.push(e.to_string());
        }
    }

    /// Feeds the body of an `EFISOCK-CALLSEND` line.
    pub fn end(&mut self, body: &str) {
        let r = (|| -> Result<(), ParseError> {
            let v = json(body)?;
            let key = (field_str(&v, "id", body)?, field_u64(&v, "seed", body)?);
            let parts = field_u64(&v, "parts", body)?;
            let steps = field_u64(&v, "steps", body)?;
            let dropped = field_u64(&v, "dropped", body)?;
            let p = self.open.remove(&key).unwrap_or_default();
            if p.parts as u64 != parts || p.steps.len() as u64 != steps {
                return Err(ParseError::new(
                    body,
                    format!(
                        "call log of {} seed {:#x}: got {} parts / {} steps, the guest sent \
                         {parts} / {steps}",
                        key.0,
                        key.1,
                        p.parts,
                        p.steps.len()
                    ),
                ));
            }
            self.done.push(Recording {
                id: key.0,
                seed: key.1,
                steps: p.steps,
                dropped,
            });
            Ok(())
        })();
        if let Err(e) = r {
            self.problems.push(e.to_string());
        }
    }
}
