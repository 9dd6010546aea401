//! Pickle's stack machine, run over the input without importing or
//! calling anything: each opcode pushes, pops or links arena nodes.
//!
//! Globals are checked against [`crate::policy`] the moment they are
//! named and again when they are used (called, instantiated); everything
//! else an object's arguments mean is decided when the graph becomes a
//! tree ([`super::tree`]).

use crate::error::UnpicklingError;
use crate::int::PyInt;
use crate::limits::Limits;
use crate::opcodes::{self as op, name};
use crate::policy;

use super::node::{Arena, Id, MakeNode, Node, EDGE_COST};
use super::text;

mod input;
mod objects;

use objects::{object, pairs, utf8};

/// A memo slot never written.
const VACANT: Id = Id::MAX;

/// The highest pickle protocol there is.
const HIGHEST_PROTOCOL: u8 = 5;

/// What running the machine leaves: the graph, its root and the protocol
/// the pickle declared (0 when it has no `PROTO`).
pub(super) struct Outcome {
    pub(super) arena: Arena,
    pub(super) root: Id,
    pub(super) protocol: u8,
}

pub(super) struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    arena: Arena,
    stack: Vec<Id>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    memo: Vec<Id>,
    /// Python's `len(memo)`: the index `MEMOIZE` writes.
    memo_count: usize,
    protocol: u8,
}

impl<'a> Machine<'a> {
    pub(super) fn new(data: &'a [u8], limits: &'a Limits) -> Self {
        Machine {
            data,
            pos: 0,
            limits,
            arena: Arena::new(limits.max_value_bytes),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Vec::new(),
            memo_count: 0,
            protocol: 0,
        }
    }

    pub(super) fn run(mut self) -> Result<Outcome, UnpicklingError> {
        loop {
            let code = self.byte()?;
            if code == op::STOP {
                break;
            }
            self.step(code)?;
        }
        if self.pos != self.data.len() {
            return Err(UnpicklingError::malformed(format!(
                "{} bytes of trailing data after STOP",
                self.data.len() - self.pos
            )));
        }
        let (&[root], true) = (self.stack.as_slice(), self.marks.is_empty()) else {
            return Err(UnpicklingError::malformed(format!(
                "pickle ends with {} items on the stack and {} open MARKs; expected one value",
                self.stack.len(),
                self.marks.len()
            )));
        };
        Ok(Outcome {
            root,
            arena: self.arena,
            protocol: self.protocol,
        })
    }

    fn step(&mut self, code: u8) -> Result<(), UnpicklingError> {
        match code {
            op::PROTO => {
                let v = self.byte()?;
                if v > HIGHEST_PROTOCOL {
                    return Err(UnpicklingError::Protocol(v));
                }
                self.protocol = v;
            }
            op::FRAME => {
                let len = self.u64()?;
                // Frames only group opcodes; the input is already in memory,
                // so a frame is checked against it and otherwise ignored.
                self.check_len(code, len)?;
            }
            op::MARK => self.mark()?,
            op::POP => {
                let floor = self.marks.last().copied().unwrap_or(0);
                if self.stack.len() > floor {
                    self.stack.pop();
                } else {
                    self.pop_mark()?;
                }
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let top = self.top()?;
                self.push_ref(top)?;
            }

            op::NONE => self.push(Node::None)?,
            op::NEWTRUE => self.push(Node::Bool(true))?,
            op::NEWFALSE => self.push(Node::Bool(false))?,
            op::BININT => {
                let v = i32::from_le_bytes(self.array()?);
                self.push(Node::Int(i64::from(v)))?;
            }
            op::BININT1 => {
                let v = self.byte()?;
                self.push(Node::Int(i64::from(v)))?;
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(self.array()?);
                self.push(Node::Int(i64::from(v)))?;
            }
            op::LONG1 => {
                let n = u64::from(self.byte()?);
                self.long(code, n)?;
            }
            op::LONG4 => {
                let n = i32::from_le_bytes(self.array()?);
                let n = u64::try_from(n).map_err(|_| {
                    UnpicklingError::malformed("LONG pickle has negative byte count")
                })?;
                self.long(code, n)?;
            }
            op::INT => {
                let line = self.line()?;
                let node = match line {
                    b"00" => Node::Bool(false),
                    b"01" => Node::Bool(true),
                    _ => int_node(text::int("INT", line, self.limits.max_int_bytes)?),
                };
                self.push(node)?;
            }
            op::LONG => {
                let line = self.line()?;
                let digits = line.strip_suffix(b"L").unwrap_or(line);
                let v = text::int("LONG", digits, self.limits.max_int_bytes)?;
                self.push(int_node(v))?;
            }
            op::BINFLOAT => {
                let v = f64::from_be_bytes(self.array()?);
                self.push(Node::Float(v))?;
            }
            op::FLOAT => {
                let v = text::float(self.line()?)?;
                self.push(Node::Float(v))?;
            }

            op::SHORT_BINUNICODE => {
                let n = u64::from(self.byte()?);
                self.unicode(code, n)?;
            }
            op::BINUNICODE => {
                let n = u64::from(u32::from_le_bytes(self.array()?));
                self.unicode(code, n)?;
            }
            op::BINUNICODE8 => {
                let n = self.u64()?;
                self.unicode(code, n)?;
            }
            op::UNICODE => {
                let s = text::raw_unicode_escape(self.line()?)?;
                self.push(Node::Str(s))?;
            }
            op::SHORT_BINSTRING => {
                let n = u64::from(self.byte()?);
                self.py2_str(code, n)?;
            }
            op::BINSTRING => {
                let n = i32::from_le_bytes(self.array()?);
                let n = u64::try_from(n).map_err(|_| {
                    UnpicklingError::malformed("BINSTRING pickle has negative byte count")
                })?;
                self.py2_str(code, n)?;
            }
            op::SHORT_BINBYTES => {
                let n = u64::from(self.byte()?);
                let b = self.sized(code, n)?.to_vec();
                self.push(Node::Bytes(b))?;
            }
            op::BINBYTES => {
                let n = u64::from(u32::from_le_bytes(self.array()?));
                let b = self.sized(code, n)?.to_vec();
                self.push(Node::Bytes(b))?;
            }
            op::BINBYTES8 => {
                let n = self.u64()?;
                let b = self.sized(code, n)?.to_vec();
                self.push(Node::Bytes(b))?;
            }
            op::BYTEARRAY8 => {
                let n = self.u64()?;
                let b = self.sized(code, n)?.to_vec();
                self.push(Node::ByteArray(b))?;
            }

            op::EMPTY_TUPLE => self.push(Node::Tuple(Vec::new()))?,
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(code - op::TUPLE1) + 1;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push_container(Node::Tuple(Vec::new()), items)?;
            }
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push_container(Node::Tuple(Vec::new()), items)?;
            }
            op::EMPTY_LIST => self.push(Node::List(Vec::new()))?,
            op::LIST => {
                let items = self.pop_mark()?;
                self.push_container(Node::List(Vec::new()), items)?;
            }
            op::EMPTY_DICT => self.push(Node::Dict(Vec::new()))?,
            op::DICT => {
                let items = self.pop_mark()?;
                let pairs = pairs(code, items)?;
                let id = self.arena.push(Node::Dict(Vec::new()))?;
                self.set_items(code, id, pairs)?;
                self.stack.push(id);
            }
            op::EMPTY_SET => self.push(Node::Set(Vec::new()))?,
            op::FROZENSET => {
                let items = self.pop_mark()?;
                self.push_container(Node::FrozenSet(Vec::new()), items)?;
            }
            op::APPEND => {
                let item = self.pop()?;
                let target = self.top()?;
                self.append(code, target, vec![item])?;
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                let target = self.top()?;
                self.append(code, target, items)?;
            }
            op::SETITEM => {
                let v = self.pop()?;
                let k = self.pop()?;
                let target = self.top()?;
                self.set_items(code, target, vec![(k, v)])?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                let target = self.top()?;
                self.set_items(code, target, pairs(code, items)?)?;
            }
            op::ADDITEMS => {
                let items = self.pop_mark()?;
                let target = self.top()?;
                for &i in &items {
                    self.arena.link(i);
                }
                match self.arena.get_mut(target) {
                    Some(Node::Set(v)) => v.extend(items),
                    _ => return Err(self.wrong_target(code, target, "a set")),
                }
            }

            op::MEMOIZE => {
                let index = self.memo_count as u64;
                self.put(index)?;
            }
            op::PUT => {
                let index = text::index("PUT", self.line()?)?;
                self.put(index)?;
            }
            op::BINPUT => {
                let index = u64::from(self.byte()?);
                self.put(index)?;
            }
            op::LONG_BINPUT => {
                let index = u64::from(u32::from_le_bytes(self.array()?));
                self.put(index)?;
            }
            op::GET => {
                let index = text::index("GET", self.line()?)?;
                self.get(index)?;
            }
            op::BINGET => {
                let index = u64::from(self.byte()?);
                self.get(index)?;
            }
            op::LONG_BINGET => {
                let index = u64::from(u32::from_le_bytes(self.array()?));
                self.get(index)?;
            }

            op::GLOBAL => {
                let module = utf8(self.line()?, "GLOBAL module")?;
                let name = utf8(self.line()?, "GLOBAL name")?;
                self.global(&module, &name)?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (self.arena.get(module), self.arena.get(name)) {
                    (Node::Str(m), Node::Str(n)) => {
                        let (m, n) = (m.clone(), n.clone());
                        self.global(&m, &n)?;
                    }
                    _ => return Err(UnpicklingError::malformed("STACK_GLOBAL requires str")),
                }
            }
            op::REDUCE => {
                let args = self.pop()?;
                let func = self.pop()?;
                let global = self.global_of(code, func)?;
                let node = self.call(global, args)?;
                self.push(node)?;
            }
            op::INST => {
                let module = utf8(self.line()?, "INST module")?;
                let name = utf8(self.line()?, "INST name")?;
                let global = policy::python3_name(&module, &name);
                policy::check_named(&global)?;
                let items = self.pop_mark()?;
                let args = self.new_container(Node::Tuple(Vec::new()), items)?;
                let node = self.call(global, args)?;
                self.push(node)?;
            }
            op::OBJ => {
                let mut items = self.pop_mark()?;
                if items.is_empty() {
                    return Err(UnpicklingError::malformed("OBJ needs a class"));
                }
                let class = items.remove(0);
                let global = self.global_of(code, class)?;
                let args = self.new_container(Node::Tuple(Vec::new()), items)?;
                let node = self.call(global, args)?;
                self.push(node)?;
            }
            op::NEWOBJ => {
                let args = self.pop()?;
                let class = self.pop()?;
                let global = self.global_of(code, class)?;
                policy::check_class(&global)?;
                let args = self.arena.link(args);
                self.push(object(global, MakeNode::NewObj { args }))?;
            }
            op::NEWOBJ_EX => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                let global = self.global_of(code, class)?;
                policy::check_class(&global)?;
                let args = self.arena.link(args);
                let kwargs = self.arena.link(kwargs);
                self.push(object(global, MakeNode::NewObjEx { args, kwargs }))?;
            }
            op::BUILD => {
                let state = self.pop()?;
                let target = self.top()?;
                let state = self.arena.link(state);
                match self.arena.get_mut(target) {
                    Some(Node::Object(o)) if o.state.is_none() => o.state = Some(state),
                    Some(Node::Object(o)) => {
                        return Err(UnpicklingError::malformed(format!(
                            "BUILD applied twice to a {} object",
                            o.global
                        )))
                    }
                    _ => return Err(self.wrong_target(code, target, "an object")),
                }
            }

            op::PERSID | op::BINPERSID => {
                return Err(UnpicklingError::Unsupported {
                    opcode: name(code),
                    why: "persistent IDs need a persistent_load, and this reader has none",
                })
            }
            op::EXT1 | op::EXT2 | op::EXT4 => {
                return Err(UnpicklingError::Unsupported {
                    opcode: name(code),
                    why: "the copyreg extension registry is not used by managers",
                })
            }
            op::NEXT_BUFFER | op::READONLY_BUFFER => {
                return Err(UnpicklingError::Unsupported {
                    opcode: name(code),
                    why: "out-of-band buffers are not sent over a connection",
                })
            }
            op::STRING => {
                return Err(UnpicklingError::Unsupported {
                    opcode: name(code),
                    why: "Python 2 quoted strs are not read; Python 3 never writes them",
                })
            }
            other => return Err(UnpicklingError::UnknownOpcode(other)),
        }
        Ok(())
    }

    // --- stack ---

    fn push(&mut self, node: Node) -> Result<(), UnpicklingError> {
        let id = self.arena.push(node)?;
        self.stack.push(id);
        Ok(())
    }

    /// Pushes one more reference to an existing node (`DUP`, memo reads).
    fn push_ref(&mut self, id: Id) -> Result<(), UnpicklingError> {
        self.arena.charge(EDGE_COST)?;
        self.stack.push(id);
        Ok(())
    }

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Id, UnpicklingError> {
        if self.stack.len() <= self.floor() {
            return Err(UnpicklingError::malformed("unpickling stack underflow"));
        }
        self.stack
            .pop()
            .ok_or_else(|| UnpicklingError::malformed("unpickling stack underflow"))
    }

    fn top(&self) -> Result<Id, UnpicklingError> {
        match self.stack.last() {
            Some(&id) if self.stack.len() > self.floor() => Ok(id),
            _ => Err(UnpicklingError::malformed("unpickling stack underflow")),
        }
    }

    fn mark(&mut self) -> Result<(), UnpicklingError> {
        if self.marks.len() >= self.limits.max_depth {
            return Err(UnpicklingError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        self.marks.push(self.stack.len());
        Ok(())
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, UnpicklingError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| UnpicklingError::malformed("could not find MARK"))?;
        Ok(self.stack.split_off(mark))
    }

    // --- building ---

    /// Makes a container node holding `items` (linked) and returns its id.
    fn new_container(&mut self, mut node: Node, items: Vec<Id>) -> Result<Id, UnpicklingError> {
        for &i in &items {
            self.arena.link(i);
        }
        match &mut node {
            Node::Tuple(v) | Node::List(v) | Node::FrozenSet(v) => *v = items,
            _ => return Err(UnpicklingError::malformed("not a sequence container")),
        }
        self.arena.push(node)
    }

    fn push_container(&mut self, node: Node, items: Vec<Id>) -> Result<(), UnpicklingError> {
        let id = self.new_container(node, items)?;
        self.stack.push(id);
        Ok(())
    }

    fn long(&mut self, code: u8, n: u64) -> Result<(), UnpicklingError> {
        if n > self.limits.max_int_bytes as u64 {
            return Err(UnpicklingError::IntTooLarge {
                bytes: n,
                limit: self.limits.max_int_bytes,
            });
        }
        let bytes = self.sized(code, n)?;
        self.push(int_node(PyInt::from_le_bytes(bytes)))
    }

    fn unicode(&mut self, code: u8, n: u64) -> Result<(), UnpicklingError> {
        let bytes = self.sized(code, n)?;
        let s = std::str::from_utf8(bytes).map_err(|e| {
            UnpicklingError::malformed(format!(
                "{} is not UTF-8 ({e}); a str with a lone surrogate is not supported",
                name(code)
            ))
        })?;
        self.push(Node::Str(s.to_owned()))
    }

    /// A Python 2 `str`, decoded as Python 3's unpickler does by default
    /// (ASCII).
    fn py2_str(&mut self, code: u8, n: u64) -> Result<(), UnpicklingError> {
        let bytes = self.sized(code, n)?;
        if !bytes.is_ascii() {
            return Err(UnpicklingError::malformed(format!(
                "{}: 'ascii' codec can't decode a Python 2 str with non-ASCII bytes",
                name(code)
            )));
        }
        self.push(Node::Str(String::from_utf8_lossy(bytes).into_owned()))
    }

    fn put(&mut self, index: u64) -> Result<(), UnpicklingError> {
        let top = self.top()?;
        let limit = self.limits.max_memo_entries;
        let i = usize::try_from(index)
            .ok()
            .filter(|&i| i < limit)
            .ok_or(UnpicklingError::MemoTooLarge { index, limit })?;
        if i >= self.memo.len() {
            self.memo.resize(i + 1, VACANT);
        }
        if self.memo[i] == VACANT {
            self.memo_count += 1;
        }
        self.memo[i] = top;
        Ok(())
    }

    fn get(&mut self, index: u64) -> Result<(), UnpicklingError> {
        let id = usize::try_from(index)
            .ok()
            .and_then(|i| self.memo.get(i).copied())
            .filter(|&id| id != VACANT)
            .ok_or(UnpicklingError::MemoMissing(index))?;
        self.push_ref(id)
    }
}

fn int_node(v: PyInt) -> Node {
    match v {
        PyInt::Small(i) => Node::Int(i),
        PyInt::Big(b) => Node::BigInt(b),
    }
}
