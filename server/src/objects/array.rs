//! `Array`: a typed array of numbers (what `SyncManager.Array(typecode,
//! sequence)` makes: an `array.array`, served through `ArrayProxy`:
//! `__len__`, `__getitem__`, `__setitem__`).
//!
//! Every item is checked against the typecode as `array.array` checks it:
//! an integer out of range is `OverflowError`, a wrong type `TypeError`,
//! an unknown typecode `ValueError`. Slices read as lists and may be
//! assigned (a plain slice may change the length, as with `array.array`).

use std::sync::{Arc, Mutex};

use mp_proto::methods::builtin::ArrayMethod;
use mp_proto::methods::MethodSpec;
use mp_proto::value::{heap_block, sequence_bytes};
use mp_proto::{RemoteError, Value};

use crate::args::{str_arg, Args};
use crate::budget::{shrink_vec, Budget, Charge};
use crate::errors::{overflow_error, type_error, value_error};
use crate::held::Held;
use crate::lock;
use crate::object::{CallContext, Reply, Return, SharedObject};
use crate::objects::iterate;
use crate::slice::{self, position, Index};

/// What items of a typecode may hold.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Int { min: i64, max: i64 },
    Float { single: bool },
    Char,
}

fn kind(typecode: &str) -> Result<Kind, RemoteError> {
    let int = |min: i64, max: i64| Ok(Kind::Int { min, max });
    match typecode {
        "b" => int(i8::MIN.into(), i8::MAX.into()),
        "B" => int(0, u8::MAX.into()),
        "h" => int(i16::MIN.into(), i16::MAX.into()),
        "H" => int(0, u16::MAX.into()),
        "i" => int(i32::MIN.into(), i32::MAX.into()),
        "I" => int(0, u32::MAX.into()),
        // Values are 64-bit signed on the wire, so the unsigned 64-bit
        // codes top out at i64::MAX here.
        "l" | "q" => int(i64::MIN, i64::MAX),
        "L" | "Q" => int(0, i64::MAX),
        "f" => Ok(Kind::Float { single: true }),
        "d" => Ok(Kind::Float { single: false }),
        "u" => Ok(Kind::Char),
        _ => Err(value_error(
            "bad typecode (must be b, B, u, h, H, i, I, l, L, q, Q, f or d)",
        )),
    }
}

impl Kind {
    fn check(self, typecode: &str, v: Value) -> Result<Value, RemoteError> {
        match self {
            Kind::Int { min, max } => {
                let i = match &v {
                    Value::Float(_) => {
                        return Err(type_error(
                            "'float' object cannot be interpreted as an integer",
                        ))
                    }
                    other => other.as_int().ok_or_else(|| {
                        type_error(format!(
                            "an integer is required (got type {})",
                            other.type_name()
                        ))
                    })?,
                };
                if i < min {
                    Err(overflow_error(format!(
                        "array item {i} is less than minimum {min} of typecode '{typecode}'"
                    )))
                } else if i > max {
                    Err(overflow_error(format!(
                        "array item {i} is greater than maximum {max} of typecode '{typecode}'"
                    )))
                } else {
                    Ok(Value::Int(i))
                }
            }
            Kind::Float { single } => {
                let f = v.as_float().ok_or_else(|| {
                    type_error(format!("must be real number, not {}", v.type_name()))
                })?;
                Ok(Value::Float(if single { f as f32 as f64 } else { f }))
            }
            Kind::Char => match &v {
                Value::Str(s) if s.chars().count() == 1 => Ok(v),
                other => Err(type_error(format!(
                    "array item must be a unicode character, not {}",
                    other.type_name()
                ))),
            },
        }
    }
}

/// The items and what they are charged.
struct Items {
    items: Vec<Value>,
    charge: Charge,
}

/// A shared `array.array`.
pub struct ArrayObject {
    typecode: String,
    kind: Kind,
    items: Mutex<Items>,
    /// For `repr()` and `#GETVALUE`, which have no call context.
    budget: Arc<Budget>,
}

impl Kind {
    /// The bytes of one item: its slot, and a character's string.
    fn item_bytes(self) -> usize {
        let heap = match self {
            Kind::Char => heap_block(4),
            _ => 0,
        };
        std::mem::size_of::<Value>() + heap
    }

    /// The bytes of `n` items, stored.
    fn bytes(self, n: usize) -> usize {
        n.saturating_mul(self.item_bytes())
    }
}

/// Python's `array.array` iteration of an initialiser or an assigned
/// value, each item checked against the typecode.
fn items_of(
    budget: &Budget,
    kind: Kind,
    typecode: &str,
    value: Value,
) -> Result<Vec<Value>, RemoteError> {
    iterate(budget, value)?
        .into_iter()
        .map(|v| kind.check(typecode, v))
        .collect()
}

impl ArrayObject {
    /// `Array(typecode, sequence, lock=True)`.
    pub fn create(ctx: &CallContext<'_>, args: Args) -> Result<ArrayObject, RemoteError> {
        let [typecode, sequence, _lock] =
            args.bind("Array", ["typecode", "sequence", "lock"], 2)?;
        let typecode = typecode.unwrap_or_default();
        let typecode = str_arg(&typecode, "array() argument 1")?.to_owned();
        let kind = kind(&typecode)?;
        let items = match sequence.unwrap_or_default() {
            // `Array('i', 10)` is CPython's sharedctypes form; array.array
            // rejects it, and so do we, with its message.
            Value::Int(_) => return Err(type_error("cannot use a int to initialize an array")),
            v => items_of(ctx.budget(), kind, &typecode, v)?,
        };
        let bytes = kind.bytes(items.len());
        ctx.check_value(bytes)?;
        let charge = ctx.budget().charge(bytes)?;
        Ok(ArrayObject {
            typecode,
            kind,
            items: Mutex::new(Items { items, charge }),
            budget: Arc::clone(ctx.budget()),
        })
    }

    fn dispatch(
        &self,
        ctx: &CallContext<'_>,
        method: &str,
        args: Args,
    ) -> Result<Return, RemoteError> {
        let mut state = lock(&self.items);
        let Items { items, charge } = &mut *state;
        let Some(m) = ArrayMethod::from_name(method) else {
            return Err(crate::errors::attribute_error(format!(
                "'array.array' object has no attribute '{method}'"
            )));
        };
        let out = match m {
            ArrayMethod::Len => {
                args.none(method)?;
                Value::Int(items.len() as i64)
            }
            ArrayMethod::GetItem => {
                let [i] = args.bind(method, ["index"], 1)?;
                match Index::from_value(&i.unwrap_or_default(), "array")? {
                    Index::At(i) => items[position(i, items.len(), "array")?].clone(),
                    Index::Slice(s) => {
                        let r = s.indices(items.len())?;
                        ctx.check_value(sequence_bytes(r.len, self.kind.bytes(r.len)))?;
                        Value::List(r.positions().map(|p| items[p].clone()).collect())
                    }
                }
            }
            ArrayMethod::SetItem => {
                let [i, v] = args.bind(method, ["index", "value"], 2)?;
                let v = v.unwrap_or_default();
                match Index::from_value(&i.unwrap_or_default(), "array")? {
                    Index::At(i) => {
                        let p = position(i, items.len(), "array assignment")?;
                        items[p] = self.kind.check(&self.typecode, v)?;
                    }
                    Index::Slice(s) => {
                        let new = items_of(ctx.budget(), self.kind, &self.typecode, v)?;
                        ctx.check_value(self.kind.bytes(new.len()))?;
                        let r = s.indices(items.len())?;
                        // A plain slice changes the length; an extended
                        // one must keep it (slice::assign checks).
                        let len = if r.step == 1 {
                            (items.len() - r.len).saturating_add(new.len())
                        } else {
                            items.len()
                        };
                        charge.resize(self.kind.bytes(len))?;
                        slice::assign(items, &s, new)?;
                        shrink_vec(items);
                    }
                }
                Value::None
            }
        };
        Ok(out.into())
    }
}

impl SharedObject for ArrayObject {
    fn methods() -> &'static [MethodSpec] {
        ArrayMethod::TABLE
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        self.dispatch(ctx, method, args).into()
    }

    fn repr(&self) -> Option<String> {
        let state = lock(&self.items);
        let items = &state.items;
        let tc = Value::Str(self.typecode.clone()).repr();
        // As for a list: a repr too large to build falls back to the
        // default `<Array object at …>`.
        let bytes = self.kind.bytes(items.len()).saturating_mul(4);
        if self.budget.check_value(bytes).is_err() {
            return None;
        }
        Some(if items.is_empty() {
            format!("array({tc})")
        } else {
            let mut out = format!("array({tc}, [");
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&v.repr());
            }
            out.push_str("])");
            out
        })
    }

    fn get_value(&self) -> Result<Held, RemoteError> {
        let state = lock(&self.items);
        let n = state.items.len();
        self.budget
            .check_value(sequence_bytes(n, self.kind.bytes(n)))?;
        Ok(Held::plain(Value::List(state.items.clone())))
    }
}

/// An array persists its typecode and items.
impl crate::persist::Durable for ArrayObject {
    fn init(&self) -> Args {
        Args::positional(vec![
            Value::Str(self.typecode.clone()),
            Value::List(Vec::new()),
        ])
    }

    fn dump(&self) -> crate::persist::Dump {
        crate::persist::Dump {
            items: lock(&self.items).items.clone(),
            ..Default::default()
        }
    }

    fn fill(&self, _ctx: &CallContext<'_>, items: Vec<Value>) -> Result<(), RemoteError> {
        let items = items
            .into_iter()
            .map(|v| self.kind.check(&self.typecode, v))
            .collect::<Result<Vec<_>, _>>()?;
        let mut state = lock(&self.items);
        let len = state.items.len().saturating_add(items.len());
        state.charge.resize(self.kind.bytes(len))?;
        state.items.extend(items);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing::Harness;
    use mp_proto::ErrorKind;

    #[test]
    fn array_semantics() {
        let h = Harness::new();
        let seq = Value::List(vec![1.into(), 2.into(), 3.into()]);
        let a = ArrayObject::create(&h.ctx(), Args::positional(vec!["b".into(), seq])).unwrap();
        assert_eq!(h.ok(&a, "__len__", vec![]), Value::Int(3));
        h.ok(&a, "__setitem__", vec![(-1).into(), 100.into()]);
        assert_eq!(a.repr().unwrap(), "array('b', [1, 2, 100])");
        assert_eq!(
            h.err(&a, "__setitem__", vec![0.into(), 300.into()]).kind,
            ErrorKind::OverflowError
        );
        assert_eq!(
            h.err(&a, "__setitem__", vec![0.into(), "x".into()]).kind,
            ErrorKind::TypeError
        );
        assert_eq!(
            h.err(&a, "__getitem__", vec![3.into()]).kind,
            ErrorKind::IndexError
        );
        let bad = ArrayObject::create(
            &h.ctx(),
            Args::positional(vec!["z".into(), Value::List(vec![])]),
        );
        assert_eq!(bad.err().unwrap().kind, ErrorKind::ValueError);
        let d = ArrayObject::create(
            &h.ctx(),
            Args::positional(vec!["d".into(), Value::List(vec![1.into()])]),
        )
        .unwrap();
        assert_eq!(h.ok(&d, "__getitem__", vec![0.into()]), Value::Float(1.0));
    }
}
