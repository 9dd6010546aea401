//! A named object declared at start: `jobs=Queue`, `jobs=Queue(100)`,
//! `limits=dict`, `q=Queue(maxsize=10)` — what `mpserver serve --shared`
//! and the configuration file's `shared = [...]` take, one syntax for
//! both.
//!
//! The arguments are Python literals, positional then keyword: ints,
//! floats, `True`/`False`/`None`, and strings in single or double quotes
//! (no escapes, no nesting). A declaration is at most 4 KiB.

use mp_proto::message::Kwargs;
use mp_proto::Value;

use crate::args::Args;

/// The longest declaration, in bytes.
pub const MAX_DECLARATION_BYTES: usize = 4096;

/// An object to create and name when the server starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Declaration {
    /// The name it is published under.
    pub name: String,
    /// The typeid to create.
    pub typeid: String,
    /// The constructor's arguments.
    pub args: Args,
}

impl std::str::FromStr for Declaration {
    type Err = String;

    /// Reads `NAME=TYPEID` or `NAME=TYPEID(ARGS)`.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() > MAX_DECLARATION_BYTES {
            return Err(format!(
                "a shared object's declaration is at most {MAX_DECLARATION_BYTES} bytes"
            ));
        }
        let (name, rest) = text
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=TYPEID or NAME=TYPEID(ARGS), got {text:?}"))?;
        let name = name.trim();
        super::check_name(name).map_err(|e| e.message)?;
        let rest = rest.trim();
        let (typeid, args) = match rest.split_once('(') {
            None => (rest, Args::default()),
            Some((typeid, args)) => {
                let inner = args
                    .strip_suffix(')')
                    .ok_or_else(|| format!("missing ')' in {text:?}"))?;
                (typeid.trim(), arguments(inner)?)
            }
        };
        if typeid.is_empty() {
            return Err(format!("no typeid in {text:?}"));
        }
        Ok(Declaration {
            name: name.to_owned(),
            typeid: typeid.to_owned(),
            args,
        })
    }
}

/// `1, 'a', maxsize=3`: positional, then keyword, arguments.
fn arguments(text: &str) -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut keywords = Kwargs::new();
    for item in split_top_level(text)? {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let keyword = item.split_once('=').filter(|(k, _)| {
            k.trim()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        match keyword {
            Some((key, value)) => {
                keywords.insert(key.trim().to_owned(), literal(value.trim())?);
            }
            None if keywords.is_empty() => positional.push(literal(item)?),
            None => return Err(format!("positional argument {item:?} after a keyword one")),
        }
    }
    Ok(Args::new(positional, keywords))
}

/// Splits at commas outside quotes.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut quote = None;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ',') => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err(format!("an unclosed quote in {text:?}"));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

/// One Python literal.
fn literal(text: &str) -> Result<Value, String> {
    match text {
        "None" => return Ok(Value::None),
        "True" => return Ok(Value::Bool(true)),
        "False" => return Ok(Value::Bool(false)),
        _ => {}
    }
    for q in ['\'', '"'] {
        if let Some(s) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return Ok(Value::Str(s.to_owned()));
        }
    }
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::Int(i));
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Value::Float(f)),
        _ => Err(format!(
            "{text:?} is not an int, a float, a quoted string, True, False or None"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Declaration, String> {
        text.parse()
    }

    #[test]
    fn reads_names_typeids_and_arguments() {
        let d = read("jobs=Queue").unwrap();
        assert_eq!((d.name.as_str(), d.typeid.as_str()), ("jobs", "Queue"));
        assert!(d.args.is_empty());
        let d = read(" q = Queue(10) ").unwrap();
        assert_eq!(d.args.positional, vec![Value::Int(10)]);
        let d = read("v=Value('d', 2.5)").unwrap();
        assert_eq!(d.args.positional, vec!["d".into(), Value::Float(2.5)]);
        let d = read("q=Queue(maxsize=3)").unwrap();
        assert_eq!(d.args.keywords.get("maxsize"), Some(&Value::Int(3)));
        let d = read("s=Semaphore(\"a,b\", True, None)").unwrap();
        assert_eq!(
            d.args.positional,
            vec!["a,b".into(), Value::Bool(true), Value::None]
        );
    }

    #[test]
    fn refuses_with_a_reason() {
        assert!(read("jobs").unwrap_err().contains("NAME=TYPEID"));
        assert!(read("1x=Queue")
            .unwrap_err()
            .contains("invalid object name"));
        assert!(read("q=").unwrap_err().contains("no typeid"));
        assert!(read("q=Queue(1").unwrap_err().contains("missing ')'"));
        assert!(read("q=Queue('a)").unwrap_err().contains("unclosed quote"));
        assert!(read("q=Queue(os.system)")
            .unwrap_err()
            .contains("not an int"));
        assert!(read("q=Queue(a=1, 2)")
            .unwrap_err()
            .contains("after a keyword"));
        assert!(read(&format!("q=Queue({})", "1,".repeat(3000)))
            .unwrap_err()
            .contains("at most"));
    }
}
