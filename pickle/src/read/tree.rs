//! Turning the machine's graph into a [`Value`] tree, and deciding what
//! each call and instance means.
//!
//! A node with one incoming edge is moved into the tree; a shared one
//! (memo references) is copied each time it is reached, every copy charged
//! to the value budget, so a memo bomb fails at the budget instead of
//! growing the output. A node met again on the current path is a cycle,
//! which a tree cannot hold. Depth is bounded by
//! [`crate::Limits::max_depth`], which also bounds this module's
//! recursion.

use crate::error::UnpicklingError;
use crate::int::PyInt;
use crate::limits::Limits;
use crate::policy::{self, Callable, Special};
use crate::stack::StackGuard;
use crate::value::{
    Address, Global, Instance, Make, Proxy, ProxyKind, PyException, Range, Slice, Token, Value,
};

use super::node::{Arena, Id, MakeNode, Node, ObjectNode};

/// Builds the tree under a node.
pub(super) struct Tree {
    arena: Arena,
    on_path: Vec<bool>,
    max_depth: usize,
    stack: StackGuard,
}

impl Tree {
    pub(super) fn new(arena: Arena, limits: &Limits) -> Self {
        let on_path = vec![false; arena.nodes.len()];
        Tree {
            arena,
            on_path,
            max_depth: limits.max_depth,
            stack: StackGuard::new(),
        }
    }

    /// The value of node `id` at nesting `depth`; `copy` when an ancestor
    /// is shared, so this node must stay in the arena for its next use.
    ///
    /// This and the functions it recurses through keep their stack frames
    /// small (messages are built in cold functions), so that the depth
    /// bound keeps the recursion within a 2 MiB thread stack.
    pub(super) fn value(
        &mut self,
        id: Id,
        depth: usize,
        copy: bool,
    ) -> Result<Value, UnpicklingError> {
        if depth > self.max_depth || self.stack.exhausted() {
            return Err(UnpicklingError::TooDeep {
                limit: self.max_depth,
            });
        }
        let slot = id as usize;
        match self.on_path.get(slot) {
            Some(false) => {}
            Some(true) => return Err(UnpicklingError::Recursive),
            None => return Err(UnpicklingError::malformed("a reference to no object")),
        }
        let copy = copy || self.arena.refs.get(slot).is_some_and(|&r| r > 1);
        let node = if copy {
            // charged before the copy is made
            let payload = self.arena.get(id).payload();
            self.arena.charge(std::mem::size_of::<Value>() + payload)?;
            self.arena.get(id).clone()
        } else {
            match self.arena.get_mut(id) {
                Some(n) => std::mem::replace(n, Node::Taken),
                None => Node::Taken,
            }
        };
        self.mark(slot, true);
        let out = self.convert(node, depth + 1, copy);
        self.mark(slot, false);
        out
    }

    fn mark(&mut self, slot: usize, on: bool) {
        if let Some(m) = self.on_path.get_mut(slot) {
            *m = on;
        }
    }

    /// Dispatches a node to what converts it, its children at `depth`.
    fn convert(&mut self, node: Node, depth: usize, copy: bool) -> Result<Value, UnpicklingError> {
        match node {
            Node::Tuple(items) => self.values(&items, depth, copy).map(Value::Tuple),
            Node::List(items) => self.values(&items, depth, copy).map(Value::List),
            Node::Dict(pairs) => self.pairs(&pairs, depth, copy).map(Value::Dict),
            Node::Set(items) => self.hashables(&items, depth, copy).map(Value::Set),
            Node::FrozenSet(items) => self.hashables(&items, depth, copy).map(Value::FrozenSet),
            Node::Object(o) => self.object(o, depth, copy),
            leaf => leaf_value(leaf),
        }
    }

    #[inline(never)]
    fn values(
        &mut self,
        ids: &[Id],
        depth: usize,
        copy: bool,
    ) -> Result<Vec<Value>, UnpicklingError> {
        let mut out = Vec::with_capacity(ids.len());
        for &i in ids {
            out.push(self.value(i, depth, copy)?);
        }
        Ok(out)
    }

    #[inline(never)]
    fn hashables(
        &mut self,
        ids: &[Id],
        depth: usize,
        copy: bool,
    ) -> Result<Vec<Value>, UnpicklingError> {
        let items = self.values(ids, depth, copy)?;
        all_hashable(&items)?;
        Ok(items)
    }

    #[inline(never)]
    fn pairs(
        &mut self,
        pairs: &[(Id, Id)],
        depth: usize,
        copy: bool,
    ) -> Result<Vec<(Value, Value)>, UnpicklingError> {
        let mut out = Vec::with_capacity(pairs.len());
        for &(k, v) in pairs {
            let key = self.value(k, depth, copy)?;
            all_hashable(std::slice::from_ref(&key))?;
            out.push((key, self.value(v, depth, copy)?));
        }
        Ok(out)
    }

    /// The items of a tuple node (a call's arguments) at `depth`: the
    /// tuple itself is no level of its own, as in the [`Value`].
    #[inline(never)]
    fn tuple(
        &mut self,
        id: Id,
        depth: usize,
        copy: bool,
        what: &Global,
    ) -> Result<Vec<Value>, UnpicklingError> {
        match self.value(id, depth.saturating_sub(1), copy)? {
            Value::Tuple(items) => Ok(items),
            other => Err(not_a_tuple(what, &other)),
        }
    }

    /// A dict node whose keys are strs (keyword arguments), its values at
    /// `depth`.
    #[inline(never)]
    fn keywords(
        &mut self,
        id: Id,
        depth: usize,
        copy: bool,
        what: &Global,
    ) -> Result<Vec<(String, Value)>, UnpicklingError> {
        let v = self.value(id, depth.saturating_sub(1), copy)?;
        keywords_of(v, what)
    }

    #[inline(never)]
    fn opt(
        &mut self,
        id: Option<Id>,
        depth: usize,
        copy: bool,
    ) -> Result<Option<Value>, UnpicklingError> {
        match id {
            Some(i) => self.value(i, depth, copy).map(Some),
            None => Ok(None),
        }
    }

    /// Dispatches an object by how it was made.
    #[inline(never)]
    fn object(
        &mut self,
        o: Box<ObjectNode>,
        depth: usize,
        copy: bool,
    ) -> Result<Value, UnpicklingError> {
        match o.make {
            MakeNode::Call {
                callable: Callable::Special(Special::RebuildProxy),
                args,
            } => {
                no_items_or_state(&o)?;
                self.proxy(args, depth, copy)
            }
            MakeNode::Call {
                callable: Callable::Special(s),
                args,
            } => {
                no_items_or_state(&o)?;
                let args = self.tuple(args, depth, copy, &o.global)?;
                special(s, &o.global, args)
            }
            MakeNode::Call {
                callable: Callable::Exception,
                ..
            } => self.exception(*o, depth, copy),
            _ => self.instance(*o, depth, copy),
        }
    }

    #[inline(never)]
    fn exception(
        &mut self,
        o: ObjectNode,
        depth: usize,
        copy: bool,
    ) -> Result<Value, UnpicklingError> {
        let ObjectNode {
            global,
            make,
            list_items,
            dict_items,
            state,
        } = o;
        if !list_items.is_empty() || !dict_items.is_empty() {
            return Err(takes_no_items(&global));
        }
        let MakeNode::Call { args, .. } = make else {
            return Err(takes_no_items(&global));
        };
        let args = self.tuple(args, depth, copy, &global)?;
        let state = self.opt(state, depth, copy)?;
        Ok(Value::Exception(Box::new(PyException {
            class: global,
            args,
            state,
        })))
    }

    #[inline(never)]
    fn instance(
        &mut self,
        o: ObjectNode,
        depth: usize,
        copy: bool,
    ) -> Result<Value, UnpicklingError> {
        let ObjectNode {
            global,
            make,
            list_items,
            dict_items,
            state,
        } = o;
        let make = self.make(make, &global, depth, copy)?;
        let list_items = self.values(&list_items, depth, copy)?;
        let dict_items = self.pairs(&dict_items, depth, copy)?;
        let state = self.opt(state, depth, copy)?;
        let instance = Instance {
            global,
            make,
            list_items,
            dict_items,
            state,
        };
        if policy::is_token(&instance.global) {
            return token(instance).map(|t| Value::Token(Box::new(t)));
        }
        Ok(Value::Instance(Box::new(instance)))
    }

    #[inline(never)]
    fn make(
        &mut self,
        make: MakeNode,
        global: &Global,
        depth: usize,
        copy: bool,
    ) -> Result<Make, UnpicklingError> {
        Ok(match make {
            MakeNode::Call { args, .. } => Make::Call(self.tuple(args, depth, copy, global)?),
            MakeNode::NewObj { args } => Make::NewObj(self.tuple(args, depth, copy, global)?),
            MakeNode::NewObjEx { args, kwargs } => Make::NewObjEx {
                args: self.tuple(args, depth, copy, global)?,
                kwargs: self.keywords(kwargs, depth, copy, global)?,
            },
            MakeNode::Reconstructor { base, base_state } => Make::Reconstructor {
                base,
                base_state: self.value(base_state, depth, copy)?,
            },
        })
    }

    /// `RebuildProxy(func, token, serializer, kwds)`: `func` is a proxy
    /// class, which may be named only here.
    #[inline(never)]
    fn proxy(&mut self, args: Id, depth: usize, copy: bool) -> Result<Value, UnpicklingError> {
        let copy = copy || self.arena.refs.get(args as usize).is_some_and(|&r| r > 1);
        let (func, ids) = proxy_func(self.arena.get(args), &self.arena)?;
        let token = self.value(ids[1], depth, copy)?;
        let serializer = self.value(ids[2], depth, copy)?;
        let kwds = self.keywords(
            ids[3],
            depth,
            copy,
            &Global::new(policy::MANAGERS, "RebuildProxy"),
        )?;
        proxy_of(func, token, serializer, kwds)
    }
}

/// A node without children as a value.
#[inline(never)]
fn leaf_value(node: Node) -> Result<Value, UnpicklingError> {
    Ok(match node {
        Node::None => Value::None,
        Node::Bool(b) => Value::Bool(b),
        Node::Int(i) => Value::Int(i),
        Node::BigInt(b) => Value::BigInt(b),
        Node::Float(f) => Value::Float(f),
        Node::Str(s) => Value::Str(s),
        Node::Bytes(b) => Value::Bytes(b),
        Node::ByteArray(b) => Value::ByteArray(b),
        Node::Global(g) => {
            policy::check_value(&g)?;
            Value::Global(g)
        }
        Node::Taken
        | Node::Tuple(_)
        | Node::List(_)
        | Node::Dict(_)
        | Node::Set(_)
        | Node::FrozenSet(_)
        | Node::Object(_) => {
            return Err(UnpicklingError::malformed(
                "an object is reached twice where it was referenced once",
            ))
        }
    })
}

fn all_hashable(items: &[Value]) -> Result<(), UnpicklingError> {
    match items.iter().find_map(Value::unhashable_part) {
        Some(t) => Err(UnpicklingError::Unhashable(t)),
        None => Ok(()),
    }
}

#[cold]
#[inline(never)]
fn not_a_tuple(what: &Global, got: &Value) -> UnpicklingError {
    UnpicklingError::malformed(format!(
        "{what} takes a tuple of arguments, not {}",
        got.type_name()
    ))
}

#[cold]
#[inline(never)]
fn takes_no_items(global: &Global) -> UnpicklingError {
    UnpicklingError::malformed(format!("a {global} takes no items or state"))
}

fn no_items_or_state(o: &ObjectNode) -> Result<(), UnpicklingError> {
    if o.list_items.is_empty() && o.dict_items.is_empty() && o.state.is_none() {
        Ok(())
    } else {
        Err(takes_no_items(&o.global))
    }
}

#[inline(never)]
fn keywords_of(v: Value, what: &Global) -> Result<Vec<(String, Value)>, UnpicklingError> {
    let Value::Dict(pairs) = v else {
        return Err(UnpicklingError::malformed(format!(
            "{what} takes a dict of keyword arguments"
        )));
    };
    pairs
        .into_iter()
        .map(|(k, v)| match k {
            Value::Str(k) => Ok((k, v)),
            other => Err(UnpicklingError::malformed(format!(
                "{what}: keywords must be strings, not {}",
                other.type_name()
            ))),
        })
        .collect()
}

/// The proxy kind `RebuildProxy`'s first argument names, and the ids of
/// its four arguments.
#[inline(never)]
fn proxy_func(args: &Node, arena: &Arena) -> Result<(ProxyKind, Vec<Id>), UnpicklingError> {
    let bad = |why: String| UnpicklingError::malformed(format!("RebuildProxy: {why}"));
    let ids = match args {
        Node::Tuple(ids) if ids.len() == 4 => ids.clone(),
        _ => return Err(bad("takes a tuple of 4 arguments".into())),
    };
    let func = match arena.get(ids[0]) {
        Node::Global(g) => policy::proxy_kind(g)
            .ok_or_else(|| bad(format!("{g} is not a proxy type of {}", policy::MANAGERS)))?,
        other => {
            return Err(bad(format!(
                "func is a {}, not a proxy type",
                other.type_name()
            )))
        }
    };
    Ok((func, ids))
}

#[inline(never)]
fn proxy_of(
    func: ProxyKind,
    token: Value,
    serializer: Value,
    kwds: Vec<(String, Value)>,
) -> Result<Value, UnpicklingError> {
    let bad = |why: String| UnpicklingError::malformed(format!("RebuildProxy: {why}"));
    let token = match token {
        Value::Token(t) => *t,
        other => return Err(bad(format!("token is a {}", other.type_name()))),
    };
    let serializer = match serializer {
        Value::Str(s) => s,
        other => return Err(bad(format!("serializer is a {}", other.type_name()))),
    };
    Ok(Value::Proxy(Box::new(Proxy {
        func,
        token,
        serializer,
        kwds,
    })))
}

/// A `Token` from the instance pickle makes of it: no arguments, and the
/// state `(typeid, address, id)`.
fn token(i: Instance) -> Result<Token, UnpicklingError> {
    let bad = |why: String| UnpicklingError::malformed(format!("malformed Token: {why}"));
    let made_plainly = match &i.make {
        Make::NewObj(args) => args.is_empty(),
        Make::Reconstructor { base, base_state } => {
            base.is("builtins", "object") && *base_state == Value::None
        }
        _ => false,
    };
    if !made_plainly || !i.list_items.is_empty() || !i.dict_items.is_empty() {
        return Err(bad("it is made with arguments or items".into()));
    }
    let Some(Value::Tuple(state)) = i.state else {
        return Err(bad("its state is not a tuple".into()));
    };
    let [typeid, address, id] = <[Value; 3]>::try_from(state)
        .map_err(|s| bad(format!("its state has {} items, not 3", s.len())))?;
    let (Value::Str(typeid), Value::Str(id)) = (typeid, id) else {
        return Err(bad("typeid and id must be strs".into()));
    };
    let address = match address {
        Value::Str(path) => Address::Path(path),
        Value::Tuple(parts) => match <[Value; 2]>::try_from(parts) {
            Ok([Value::Str(host), Value::Int(port)]) => Address::Inet {
                host,
                port: u16::try_from(port)
                    .map_err(|_| bad(format!("port {port} is out of range")))?,
            },
            _ => return Err(bad("address must be (host, port)".into())),
        },
        other => {
            return Err(bad(format!(
                "address must be (host, port) or a path str, not {}",
                other.type_name()
            )))
        }
    };
    Ok(Token {
        typeid,
        address,
        id,
    })
}

/// The value a call of a built-in type (or `_codecs.encode`) makes.
fn special(s: Special, global: &Global, args: Vec<Value>) -> Result<Value, UnpicklingError> {
    let signature = args
        .iter()
        .map(Value::type_name)
        .collect::<Vec<_>>()
        .join(", ");
    let bad = || {
        UnpicklingError::malformed(format!(
            "{global} with arguments ({signature}) is not supported"
        ))
    };
    let n = args.len();
    let mut a = args.into_iter();
    let mut next = || a.next().unwrap_or(Value::None);
    Ok(match s {
        Special::Complex => {
            let part = |v: Value| match v {
                Value::Float(f) => Some(f),
                Value::Int(i) => Some(i as f64),
                Value::None => Some(0.0),
                _ => None,
            };
            match (n, part(next()), part(next())) {
                (0..=2, Some(re), Some(im)) => Value::Complex { re, im },
                _ => return Err(bad()),
            }
        }
        Special::Slice => {
            let (start, stop, step) = match n {
                1 => (Value::None, next(), Value::None),
                2 => (next(), next(), Value::None),
                3 => (next(), next(), next()),
                _ => return Err(bad()),
            };
            Value::Slice(Box::new(Slice { start, stop, step }))
        }
        Special::Range => {
            let mut int = || match next() {
                Value::Int(i) => Some(PyInt::Small(i)),
                Value::BigInt(b) => Some(PyInt::Big(b)),
                _ => None,
            };
            let (start, stop, step) = match n {
                1 => (Some(PyInt::Small(0)), int(), Some(PyInt::Small(1))),
                2 => (int(), int(), Some(PyInt::Small(1))),
                3 => (int(), int(), int()),
                _ => return Err(bad()),
            };
            let (Some(start), Some(stop), Some(step)) = (start, stop, step) else {
                return Err(bad());
            };
            if step == PyInt::Small(0) {
                return Err(UnpicklingError::malformed("range() arg 3 must not be zero"));
            }
            Value::Range(Box::new(Range { start, stop, step }))
        }
        Special::Set | Special::FrozenSet => {
            let items = match (n, next()) {
                (0, _) => Vec::new(),
                (1, Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v)) => v,
                _ => return Err(bad()),
            };
            if let Some(t) = items.iter().find_map(Value::unhashable_part) {
                return Err(UnpicklingError::Unhashable(t));
            }
            if s == Special::Set {
                Value::Set(items)
            } else {
                Value::FrozenSet(items)
            }
        }
        Special::ByteArray => match (n, next(), next()) {
            (0, _, _) => Value::ByteArray(Vec::new()),
            (1, Value::Bytes(b), _) => Value::ByteArray(b),
            (2, Value::Str(s), Value::Str(enc)) if is_latin1(&enc) => {
                Value::ByteArray(latin1(&s).ok_or_else(bad)?)
            }
            _ => return Err(bad()),
        },
        Special::Bytes => match (n, next()) {
            (0, _) => Value::Bytes(Vec::new()),
            (1, Value::Bytes(b)) => Value::Bytes(b),
            _ => return Err(bad()),
        },
        Special::CodecsEncode => match (n, next(), next()) {
            (2, Value::Str(s), Value::Str(enc)) if is_latin1(&enc) => {
                Value::Bytes(latin1(&s).ok_or_else(bad)?)
            }
            _ => return Err(bad()),
        },
        // Made into instances by the machine, or handled by the caller.
        Special::Reconstructor | Special::NewObj | Special::NewObjEx | Special::RebuildProxy => {
            return Err(bad())
        }
    })
}

fn is_latin1(encoding: &str) -> bool {
    matches!(
        encoding,
        "latin1" | "latin-1" | "latin_1" | "iso-8859-1" | "iso8859-1"
    )
}

/// A str of code points below 256 as its Latin-1 bytes.
fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}
