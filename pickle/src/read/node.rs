//! The reader's working graph: the objects the stack machine builds,
//! linked by index, before they become a [`crate::Value`] tree.
//!
//! Pickle's memo makes values a graph: `BINGET` refers to an object
//! already built (and lists and dicts are filled after they are
//! memoized), so the machine builds nodes in an arena and stores indices.
//! Every node, every edge and every memo reference is charged to the value
//! budget ([`crate::Limits::max_value_bytes`]) as it is made, so the arena
//! itself is bounded; turning it into a tree ([`super::tree`]) charges
//! again for each copy of a shared node.

use crate::error::UnpicklingError;
use crate::int::BigInt;
use crate::policy::Callable;
use crate::value::Global;

/// A node's index in the arena.
pub(super) type Id = u32;

/// The charge for one reference on the stack or in a container.
pub(super) const EDGE_COST: usize = std::mem::size_of::<Id>();

/// The charge for one node, before its payload.
pub(super) const NODE_COST: usize = std::mem::size_of::<Node>() + std::mem::size_of::<u32>();

/// An object the machine built.
#[derive(Clone, Debug)]
pub(super) enum Node {
    /// Moved into the result already.
    Taken,
    None,
    Bool(bool),
    Int(i64),
    BigInt(BigInt),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    ByteArray(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    FrozenSet(Vec<Id>),
    /// A global as named (not yet known to be used as a value).
    Global(Box<Global>),
    /// The result of a call or instantiation.
    Object(Box<ObjectNode>),
}

impl Node {
    /// The Python type name, for messages.
    pub(super) fn type_name(&self) -> &str {
        match self {
            Node::Taken => "object",
            Node::None => "NoneType",
            Node::Bool(_) => "bool",
            Node::Int(_) | Node::BigInt(_) => "int",
            Node::Float(_) => "float",
            Node::Str(_) => "str",
            Node::Bytes(_) => "bytes",
            Node::ByteArray(_) => "bytearray",
            Node::Tuple(_) => "tuple",
            Node::List(_) => "list",
            Node::Dict(_) => "dict",
            Node::Set(_) => "set",
            Node::FrozenSet(_) => "frozenset",
            Node::Global(_) => "type",
            Node::Object(o) => &o.global.name,
        }
    }

    /// The bytes a node holds beyond its fixed size.
    pub(super) fn payload(&self) -> usize {
        match self {
            Node::Str(s) => s.len(),
            Node::Bytes(b) | Node::ByteArray(b) => b.len(),
            Node::BigInt(b) => b.as_le_bytes().len(),
            Node::Global(g) => g.module.len() + g.name.len(),
            Node::Object(o) => {
                std::mem::size_of::<ObjectNode>() + o.global.module.len() + o.global.name.len()
            }
            _ => 0,
        }
    }
}

/// A call or an instantiation, and what pickle applied to its result.
#[derive(Clone, Debug)]
pub(super) struct ObjectNode {
    pub(super) global: Global,
    pub(super) make: MakeNode,
    pub(super) list_items: Vec<Id>,
    pub(super) dict_items: Vec<(Id, Id)>,
    pub(super) state: Option<Id>,
}

/// How an object was made, by node.
#[derive(Clone, Debug)]
pub(super) enum MakeNode {
    /// `global(*args)`, `args` a tuple node.
    Call { callable: Callable, args: Id },
    /// `cls.__new__(cls, *args)`.
    NewObj { args: Id },
    /// `cls.__new__(cls, *args, **kwargs)`.
    NewObjEx { args: Id, kwargs: Id },
    /// `copyreg._reconstructor(cls, base, base_state)`.
    Reconstructor { base: Global, base_state: Id },
}

/// The nodes, how many container edges point at each, and the budget.
pub(super) struct Arena {
    pub(super) nodes: Vec<Node>,
    /// Edges from containers and objects into each node; a node with more
    /// than one is shared and is copied, not moved, into the result.
    pub(super) refs: Vec<u32>,
    spent: usize,
    limit: usize,
}

impl Arena {
    pub(super) fn new(limit: usize) -> Self {
        Arena {
            nodes: Vec::new(),
            refs: Vec::new(),
            spent: 0,
            limit,
        }
    }

    /// Charges `bytes` to the budget, failing past it.
    pub(super) fn charge(&mut self, bytes: usize) -> Result<(), UnpicklingError> {
        self.spent = self.spent.saturating_add(bytes);
        if self.spent > self.limit {
            return Err(UnpicklingError::ValueTooLarge { limit: self.limit });
        }
        Ok(())
    }

    /// Charges for `node` (whose payload the caller has already bounded by
    /// the input) and stores it.
    pub(super) fn push(&mut self, node: Node) -> Result<Id, UnpicklingError> {
        self.charge(NODE_COST + node.payload())?;
        let id = Id::try_from(self.nodes.len())
            .map_err(|_| UnpicklingError::ValueTooLarge { limit: self.limit })?;
        self.nodes.push(node);
        self.refs.push(0);
        Ok(id)
    }

    /// Records one more edge into `id`.
    pub(super) fn link(&mut self, id: Id) -> Id {
        if let Some(r) = self.refs.get_mut(id as usize) {
            *r = r.saturating_add(1);
        }
        id
    }

    pub(super) fn get(&self, id: Id) -> &Node {
        self.nodes.get(id as usize).unwrap_or(&Node::Taken)
    }

    pub(super) fn get_mut(&mut self, id: Id) -> Option<&mut Node> {
        self.nodes.get_mut(id as usize)
    }
}
